"""``/api/v1/reviews``: submit a review (JSON or multipart), list changes, read one, its frame."""

from __future__ import annotations

import math
from typing import Final

from aiohttp import BodyPartReader, web
from pydantic import ValidationError

from vision_tutor_teacher.images import NotAJpeg, jpeg_size
from vision_tutor_teacher.models import Accepted, ReviewMeta, ReviewRequest
from vision_tutor_teacher.options import summarise_validation_error
from vision_tutor_teacher.reviews.events import MAX_CURSOR

from .base import SERVICE, ApiError, error_response, model_response

META_MAX_BYTES: Final = 1024 * 1024
"""Everything but the image: prompt, schema and student answer fit easily."""
PAGE_DEFAULT: Final = 100
PAGE_MAX: Final = 1000


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the image exceeds the limit of {limit} bytes")


def _invalid(err: ValidationError) -> ApiError:
    return ApiError(400, f"invalid review: {summarise_validation_error(err)}")


def _check_jpeg(jpeg: bytes) -> bytes:
    """The frame, if its header decodes and its dimensions are within the limits."""
    try:
        jpeg_size(jpeg)
    except NotAJpeg as err:
        raise ApiError(400, f"invalid review: image: {err}") from None
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
    try:
        return await _read_multipart_review(request, limit)
    except ApiError:
        raise
    except Exception as err:  # aiohttp's parser raises ValueError, AssertionError, ...
        raise ApiError(
            400, f"invalid review: malformed multipart body ({err or type(err).__name__})"
        ) from None


async def _read_multipart_review(request: web.Request, limit: int) -> tuple[ReviewMeta, bytes]:
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
    if admission.outcome == "conflict":
        raise ApiError(
            409,
            f"the idempotency key {meta.idempotency_key!r} was already used for review "
            f"{admission.review_id} with a different body; nothing was stored",
            {"Location": f"/api/v1/reviews/{admission.review_id}"},
        )
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
    after = _query_int(request, "after", 0, 0, MAX_CURSOR)
    limit = _query_int(request, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
    return model_response(await service.queue.changed_after(after, limit))


async def get_review(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    review_id = request.match_info["id"]
    review = await service.queue.get(review_id)
    if review is None:
        raise ApiError(404, f"no review {review_id}")
    return model_response(review)


async def frame(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    review_id = request.match_info["id"]
    jpeg = await service.queue.frame(review_id)
    if jpeg is None:
        raise ApiError(404, f"no frame for review {review_id}")
    return web.Response(
        body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


async def get_frame(request: web.Request) -> web.Response:
    return await frame(request)


def client_max_size(max_image_bytes: int) -> int:
    """The largest JSON body accepted: the image in base64 plus room for the rest."""
    return math.ceil(max_image_bytes / 3) * 4 + META_MAX_BYTES


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/reviews", submit_review)
    app.router.add_get("/api/v1/reviews", list_reviews)
    app.router.add_get("/api/v1/reviews/{id}", get_review)
    app.router.add_get("/api/v1/reviews/{id}/frame", get_frame)
