"""The HTTP API (``/api/v1``), ``/metrics`` and the ingress web page, on one aiohttp application.

Access rules, checked by `access_middleware` before any handler runs:

* ``/api/*`` and ``/metrics`` need ``Authorization: Bearer <token>`` (401 otherwise, and nothing
  is done). Requests relayed by the Supervisor's ingress proxy (172.30.32.2, only when running as
  an add-on) are refused (403) even with a token: ingress is for the web page.
* The web page (everything else) is open to the ingress proxy; anyone else needs the token, as a
  bearer token or as the password of HTTP basic authentication (so a browser can open it when the
  port is published or the service runs standalone). It shows camera frames: never open it up.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
import hmac
import logging
import math
from typing import TYPE_CHECKING, Final

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ValidationError

from . import metrics
from .events import parse_cursor, stream
from .models import (
    PENDING_STATUSES,
    Accepted,
    ErrorBody,
    Health,
    ReviewMeta,
    ReviewRequest,
    ReviewStatus,
)
from .openapi import build_spec
from .options import summarise_validation_error
from .ui import render_page

if TYPE_CHECKING:
    from .service import TeacherService

_LOGGER = logging.getLogger(__name__)

INGRESS_PROXY: Final = "172.30.32.2"
"""The Supervisor's address on the add-on network, from which ingress requests arrive."""
JPEG_MAGIC: Final = b"\xff\xd8\xff"
META_MAX_BYTES: Final = 1024 * 1024
"""Everything but the image: prompt, schema and student answer fit easily."""
PAGE_DEFAULT: Final = 100
PAGE_MAX: Final = 1000
RETRY_AFTER_DEFAULT_S: Final = 10

SERVICE: Final = web.AppKey["TeacherService"]("service")

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Answered as ``{"error": message}`` with `status`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(ErrorBody(error=message).model_dump(), status=status, headers=headers)


def model_response(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/metrics"


def _has_token(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        offered = credentials
    elif scheme.lower() == "basic" and not _is_api(request):
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except binascii.Error, UnicodeDecodeError:
            return False
        offered = decoded.partition(":")[2]
    else:
        return False
    return hmac.compare_digest(offered.encode(), token.encode())


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    service = request.app[SERVICE]
    from_ingress = service.ingress_proxy is not None and request.remote == service.ingress_proxy
    if _is_api(request):
        if from_ingress:
            return error_response(403, "the API is not available through ingress")
        if not _has_token(request, service.token):
            return error_response(
                401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )
    elif not from_ingress and not _has_token(request, service.token):
        return web.Response(
            status=401,
            text="Vision Tutor: sign in with any user name and the API token as password.",
            headers={"WWW-Authenticate": 'Basic realm="Vision Tutor", charset="UTF-8"'},
        )
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API errors as JSON bodies, including aiohttp's own (404, 405, 413)."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.message, err.headers)
    except web.HTTPException as exc:
        if not _is_api(request) or exc.status < 400:
            raise
        headers = {key: value for key, value in exc.headers.items() if key.lower() == "allow"}
        return error_response(exc.status, exc.reason.lower(), headers)


# --- Reading a review ---------------------------------------------------------------------------


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the image exceeds the limit of {limit} bytes")


def _invalid(err: ValidationError) -> ApiError:
    return ApiError(400, f"invalid review: {summarise_validation_error(err)}")


def _check_jpeg(jpeg: bytes) -> bytes:
    if not jpeg.startswith(JPEG_MAGIC):
        raise ApiError(400, "invalid review: image: not a JPEG")
    return jpeg


async def read_json_review(request: web.Request, limit: int) -> tuple[ReviewMeta, bytes]:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(limit) from None
    try:
        review = ReviewRequest.model_validate_json(body)
    except ValidationError as err:
        raise _invalid(err) from None
    if len(review.image) > limit:
        raise _too_large(limit)
    # A ReviewRequest is a ReviewMeta that also carries the frame.
    return review, _check_jpeg(review.image)


async def _read_part(part: BodyPartReader, limit: int, too_large: ApiError) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise too_large
    return bytes(data)


async def read_multipart_review(request: web.Request, limit: int) -> tuple[ReviewMeta, bytes]:
    meta: ReviewMeta | None = None
    jpeg: bytes | None = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "invalid review: nested multipart is not supported")
        if part.name == "meta":
            raw = await _read_part(
                part, META_MAX_BYTES, ApiError(413, "the meta part is too large")
            )
            try:
                meta = ReviewMeta.model_validate_json(raw)
            except ValidationError as err:
                raise _invalid(err) from None
        elif part.name == "image":
            jpeg = await _read_part(part, limit, _too_large(limit))
        else:
            await part.release()
    if meta is None or jpeg is None:
        missing = " and ".join(
            name for name, value in (("meta", meta), ("image", jpeg)) if value is None
        )
        raise ApiError(400, f"invalid review: missing multipart part {missing}")
    return meta, _check_jpeg(jpeg)


# --- Handlers -----------------------------------------------------------------------------------


async def submit_review(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    limit = service.options.max_image_bytes
    if request.content_type == "multipart/form-data":
        meta, jpeg = await read_multipart_review(request, limit)
    elif request.content_type == "application/json":
        meta, jpeg = await read_json_review(request, limit)
    else:
        raise ApiError(415, "send the review as application/json or multipart/form-data")
    admission = await service.queue.submit(meta, jpeg)
    if admission.outcome == "refused":
        return error_response(
            429,
            f"the review queue is full ({service.options.queue_limit}) of reviews at least as "
            f"important as this {meta.reason.value} one",
            {"Retry-After": str(await service.retry_after_s())},
        )
    assert admission.review_id is not None
    if admission.outcome == "duplicate":
        existing = await service.queue.get(admission.review_id)
        assert existing is not None
        return model_response(existing, 200)
    service.worker.wake()
    return model_response(
        Accepted(id=admission.review_id, cursor=admission.cursor),
        202,
        headers={"Location": f"/api/v1/reviews/{admission.review_id}"},
    )


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value


async def list_reviews(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    after = _query_int(request, "after", 0, 0, 2**63 - 1)
    limit = _query_int(request, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
    return model_response(await service.queue.changed_after(after, limit))


async def get_review(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    review_id = request.match_info["id"]
    review = await service.queue.get(review_id)
    if review is None:
        raise ApiError(404, f"no review {review_id}")
    return model_response(review)


async def _frame(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    review_id = request.match_info["id"]
    jpeg = await service.queue.frame(review_id)
    if jpeg is None:
        raise ApiError(404, f"no frame for review {review_id}")
    return web.Response(
        body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


async def get_frame(request: web.Request) -> web.Response:
    return await _frame(request)


async def events(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    try:
        # Last-Event-ID wins: an EventSource reconnects with the original URL plus this header.
        cursor = parse_cursor(request.headers.get("Last-Event-ID"))
        if cursor is None:
            cursor = parse_cursor(request.query.get("after"))
    except ValueError:
        raise ApiError(400, "the cursor must be a non-negative integer") from None
    if cursor is None:
        cursor = await service.events.last_seq()
    return await stream(request, service.events, cursor, service.options.heartbeat_s)


async def health(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    teacher = service.worker.health
    return model_response(
        Health(
            status="ok" if teacher.reachable else "degraded",
            teacher="reachable" if teacher.reachable else "unreachable",
            teacher_error=teacher.error,
            queue_depth=await service.queue.queued_count(),
            version=service.version,
        )
    )


async def stats(request: web.Request) -> web.Response:
    return model_response(await request.app[SERVICE].queue.stats())


async def prometheus(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    text = metrics.render(await service.queue.stats(), service.worker.health.reachable)
    return web.Response(text=text, headers={"Content-Type": metrics.CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_spec())


async def page(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    queue = service.queue
    current, pending, verdicts, dropped = await asyncio.gather(
        queue.stats(),
        queue.recent(PENDING_STATUSES, 100),
        queue.recent((ReviewStatus.DONE,), 20),
        queue.recent((ReviewStatus.FAILED, ReviewStatus.SHED, ReviewStatus.SUPERSEDED), 20),
    )
    pending.sort(key=lambda review: (-review.priority, review.created_at))
    html = render_page(
        version=service.version,
        stats=current,
        teacher_error=service.worker.health.error,
        pending=pending,
        verdicts=verdicts,
        dropped=dropped,
    )
    return web.Response(text=html, content_type="text/html")


def client_max_size(max_image_bytes: int) -> int:
    """The largest JSON body accepted: the image in base64 plus room for the rest."""
    return math.ceil(max_image_bytes / 3) * 4 + META_MAX_BYTES


def create_app(service: TeacherService) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, access_middleware],
        client_max_size=client_max_size(service.options.max_image_bytes),
    )
    app[SERVICE] = service
    app.router.add_post("/api/v1/reviews", submit_review)
    app.router.add_get("/api/v1/reviews", list_reviews)
    app.router.add_get("/api/v1/reviews/{id}", get_review)
    app.router.add_get("/api/v1/reviews/{id}/frame", get_frame)
    app.router.add_get("/api/v1/events", events)
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/stats", stats)
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/", page)
    app.router.add_get("/frames/{id}.jpg", _frame)
    # Imported here: the lab's modules use this one's helpers.
    from . import lab_api, lab_ui

    lab_api.add_routes(app)
    lab_ui.add_routes(app)
    return app
