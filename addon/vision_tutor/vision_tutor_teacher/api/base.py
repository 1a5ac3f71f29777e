"""What every handler shares: the service's key in the app, errors as JSON bodies, JSON replies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from pydantic import BaseModel

from vision_tutor_teacher.core import TeacherService
from vision_tutor_teacher.models import ErrorBody

SERVICE: Final = web.AppKey[TeacherService]("service")

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


def from_ingress(request: web.Request) -> bool:
    """The request came through the Supervisor's ingress proxy (Home Assistant signed the user
    in; only when running as an add-on)."""
    proxy = request.app[SERVICE].ingress_proxy
    return proxy is not None and request.remote == proxy


def is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path == "/metrics"
