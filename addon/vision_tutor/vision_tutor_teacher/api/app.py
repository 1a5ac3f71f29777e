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

import base64
import binascii
import hmac
import logging
import math
import re

from aiohttp import web
from aiohttp.typedefs import Middleware

from vision_tutor_teacher.core import TeacherService
from vision_tutor_teacher.storage.database import StorageError, StorageFull
from vision_tutor_teacher.storage.datadir import TOKEN_FILE

from . import events, health, lab, openapi, pages, reviews
from .base import SERVICE, ApiError, Handler, error_response, from_ingress, is_api

_LOGGER = logging.getLogger(__name__)


def _has_token(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        offered = credentials
    elif scheme.lower() == "basic" and not is_api(request):
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except binascii.Error, UnicodeDecodeError:
            return False
        offered = decoded.partition(":")[2]
    else:
        return False
    return hmac.compare_digest(offered.encode(), token.encode())


def sign_in_text(service: TeacherService) -> str:
    """What the page's 401 says: how to get in, and where the token is."""
    if service.ingress_proxy is not None:
        return (
            "Vision Tutor: open this page from Home Assistant instead, with no password: "
            "Vision Tutor in the sidebar, or Settings > Add-ons > Vision Tutor > Open web UI.\n"
            "To sign in here, use any user name and the add-on's API token as password. "
            "The add-on's page in Home Assistant shows the token under 'Direct access'.\n"
        )
    return (
        "Vision Tutor: sign in with any user name and the service's API token as password.\n"
        f"The token is in {service.data_dir / TOKEN_FILE} on the machine that runs the "
        "service (written on its first start; the same token the integration was set up with).\n"
    )


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    service = request.app[SERVICE]
    ingress = from_ingress(request)
    if is_api(request):
        if ingress:
            return error_response(403, "the API is not available through ingress")
        if not _has_token(request, service.token):
            return error_response(
                401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )
    elif not ingress and not _has_token(request, service.token):
        return web.Response(
            status=401,
            text=sign_in_text(service),
            headers={"WWW-Authenticate": 'Basic realm="Vision Tutor", charset="UTF-8"'},
        )
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API errors as JSON bodies, including aiohttp's own (404, 405, 413).

    A full disk is 507 (nothing of the request was stored), any other storage failure 503 with
    Retry-After; an unexpected error is logged and answered 500, as JSON like every other.
    """
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.message, err.headers)
    except web.HTTPException as exc:
        if not is_api(request) or exc.status < 400:
            raise
        headers = {key: value for key, value in exc.headers.items() if key.lower() == "allow"}
        return error_response(exc.status, exc.reason.lower(), headers)
    except StorageFull as err:
        return error_response(507, str(err))
    except StorageError as err:
        retry = str(math.ceil(request.app[SERVICE].options.storage_retry_s))
        return error_response(503, str(err), {"Retry-After": retry})
    except Exception:
        if not is_api(request):
            raise
        _LOGGER.exception("Unexpected error answering %s %s", request.method, request.path)
        return error_response(500, "internal error (logged by the service)")


def _query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    """The query parameters the OpenAPI document lists, by (method, path)."""
    allowed: dict[tuple[str, str], frozenset[str]] = {}
    for path, operations in openapi.build_spec()["paths"].items():
        for method, operation in operations.items():
            names = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"}
            allowed[method.upper(), path] = frozenset(names)
    return allowed


def query_middleware(allowed: dict[tuple[str, str], frozenset[str]]) -> Middleware:
    """An API request with a query parameter its operation does not take is refused (400),
    rather than silently ignored: a misspelt ``after=`` would otherwise restart a sync."""

    @web.middleware
    async def check_query(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_api(request) and request.query:
            info = request.match_info
            path = info.route.resource.canonical if info.route.resource is not None else ""
            # aiohttp spells a constrained parameter {version:regex}; the document {version}.
            path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)
            known = allowed.get((request.method, path))
            if known is not None and (unknown := sorted(set(request.query) - known)):
                raise ApiError(400, f"unknown query parameter {unknown[0]!r}")
        return await handler(request)

    return check_query


def create_app(service: TeacherService) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, access_middleware, query_middleware(_query_parameters())],
        client_max_size=reviews.client_max_size(service.options.max_image_bytes),
    )
    app[SERVICE] = service
    for resource in (reviews, events, health, openapi, lab, pages):
        resource.add_routes(app)
    return app
