"""``/api/v1/health``, ``/api/v1/stats`` and the Prometheus ``/metrics``."""

from __future__ import annotations

from aiohttp import web

from vision_tutor_teacher import metrics
from vision_tutor_teacher.models import Health, TeacherHostHealth
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
    worker = service.worker
    storage = service.storage
    return model_response(
        Health(
            status="ok" if report.ok else "degraded",
            reasons=report.reasons,
            teacher="reachable" if worker.reachable else "unreachable",
            teacher_error=worker.teacher_error,
            breaker=worker.breaker_state,
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
            notes=[note for host in worker.hosts for note in host.teacher.notes],
            teachers=[
                TeacherHostHealth(
                    url=host.url,
                    model=host.config.model,
                    status="reachable" if host.health.reachable else "unreachable",
                    error=host.health.error,
                    breaker=host.breaker.state,
                    in_flight=host.outstanding,
                    concurrency=host.config.concurrency,
                    weight=host.config.weight,
                    reviewed=host.reviewed,
                    moved=host.moved,
                    notes=list(host.teacher.notes),
                )
                for host in worker.hosts
            ],
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
            teacher_reachable=worker.reachable,
            healthy=service.health().ok,
            breaker_open=worker.breaker_state != "closed",
            breaker_opened=worker.breaker_opened,
            busy_answers=worker.busy_answers,
            storage_failing=service.db.storage_error is not None,
            storage_free_bytes=service.storage.free_bytes,
            restarts=service.parts.restarts,
            hosts=[
                metrics.HostMetrics(
                    url=host.url,
                    up=host.health.reachable,
                    breaker_open=not host.breaker.closed,
                    in_flight=host.outstanding,
                    reviewed=host.reviewed,
                    failed_attempts=host.failed_attempts,
                    busy_answers=host.busy_answers,
                    moved=host.moved,
                )
                for host in worker.hosts
            ],
        ),
    )
    return web.Response(text=text, headers={"Content-Type": metrics.CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/stats", stats)
    app.router.add_get("/metrics", prometheus)
