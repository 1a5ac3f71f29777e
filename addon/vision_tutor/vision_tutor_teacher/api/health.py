"""``/api/v1/health``, ``/api/v1/stats`` and the Prometheus ``/metrics``."""

from __future__ import annotations

from aiohttp import web

from vision_tutor_teacher import metrics
from vision_tutor_teacher.models import Health

from .base import SERVICE, model_response


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
            notes=list(service.teacher.notes),
        )
    )


async def stats(request: web.Request) -> web.Response:
    return model_response(await request.app[SERVICE].queue.stats())


async def prometheus(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    text = metrics.render(await service.queue.stats(), service.worker.health.reachable)
    return web.Response(text=text, headers={"Content-Type": metrics.CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/stats", stats)
    app.router.add_get("/metrics", prometheus)
