"""``/api/v1/health``, ``/api/v1/stats`` and the Prometheus ``/metrics``."""

from __future__ import annotations

from aiohttp import web

from vision_tutor_teacher import metrics
from vision_tutor_teacher.models import Health
from vision_tutor_teacher.storage.database import StorageError

from .base import SERVICE, model_response


async def health(request: web.Request) -> web.Response:
    """Always 200 while the service runs: `status` says whether it is healthy."""
    service = request.app[SERVICE]
    try:
        depth: int | None = await service.queue.queued_count()
    except StorageError:
        depth = None
    report = service.health()
    teacher = service.worker.health
    storage = service.storage
    return model_response(
        Health(
            status="ok" if report.ok else "degraded",
            reasons=report.reasons,
            teacher="reachable" if teacher.reachable else "unreachable",
            teacher_error=teacher.error,
            breaker=service.worker.breaker.state,
            storage=(
                "failing"
                if service.db.storage_error is not None
                else "low"
                if storage.problem() is not None
                else "ok"
            ),
            storage_free_bytes=storage.free_bytes,
            storage_needed_bytes=service.options.free_space_needed_bytes,
            queue_depth=depth,
            version=service.version,
            database_id=await service.events.database_id(),
            notes=list(service.teacher.notes),
        )
    )


async def stats(request: web.Request) -> web.Response:
    return model_response(await request.app[SERVICE].queue.stats())


async def prometheus(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    worker = service.worker
    text = metrics.render(
        await service.queue.stats(),
        metrics.Health(
            teacher_reachable=worker.health.reachable,
            healthy=service.health().ok,
            breaker_open=not worker.breaker.closed,
            breaker_opened=worker.breaker.opened,
            busy_answers=worker.busy_answers,
            storage_failing=service.db.storage_error is not None,
            storage_free_bytes=service.storage.free_bytes,
            restarts=service.parts.restarts,
        ),
    )
    return web.Response(text=text, headers={"Content-Type": metrics.CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/stats", stats)
    app.router.add_get("/metrics", prometheus)
