"""The web pages (everything outside ``/api``): the queue page, frames, and the prompt lab.

Server-rendered by `vision_tutor_teacher.ui`. Forms on the lab page post to ``lab/<action>`` and
are answered with a redirect back to the page (post/redirect/get); every form carries a token
derived from the API token (`vision_tutor_teacher.ui.lab.form_token`), and an action without it is
refused.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any, Final
from urllib.parse import quote

from aiohttp import web
from pydantic import ValidationError

from vision_tutor_teacher.core import TeacherService
from vision_tutor_teacher.lab import examples, jobs, registry, suite
from vision_tutor_teacher.lab.models import (
    AcceptExample,
    JobKind,
    ScoreRequest,
    SynthesizeRequest,
    TaskSpec,
)
from vision_tutor_teacher.models import PENDING_STATUSES, ReviewStatus
from vision_tutor_teacher.options import summarise_validation_error
from vision_tutor_teacher.storage.database import Transaction
from vision_tutor_teacher.ui.lab import form_token, render_lab_page
from vision_tutor_teacher.ui.reviews import HostRow, render_page

from . import lab as lab_api, reviews
from .base import SERVICE, from_ingress

EXAMPLES_SHOWN: Final = 20


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
        teacher_error=service.worker.teacher_error,
        problems=service.health().reasons,
        pending=pending,
        verdicts=verdicts,
        dropped=dropped,
        hosts=[
            HostRow(
                url=host.url,
                model=host.config.model,
                error=host.health.error,
                breaker=host.breaker.state,
                in_flight=host.outstanding,
                concurrency=host.config.concurrency,
                reviewed=host.reviewed,
            )
            for host in service.worker.hosts
        ],
        # Only Home Assistant's signed-in users (through ingress) are shown the token.
        token=service.token if from_ingress(request) else None,
    )
    return web.Response(text=html, content_type="text/html")


def _service(request: web.Request) -> TeacherService:
    return request.app[SERVICE]


async def lab_page(request: web.Request) -> web.Response:
    service = _service(request)
    now = await service.lab.fingerprints()
    db = service.db
    status = await service.lab.finetune_status()

    def read(tx: Transaction) -> dict[str, Any]:
        return {
            "prompts": registry.all_prompts(tx, now),
            "jobs": jobs.recent_jobs(tx, jobs.JOBS_LISTED),
            "entries": registry.history(tx),
            "task": suite.task_spec(tx),
            "cases": suite.list_cases(tx),
            "listing": examples.list_examples(tx, EXAMPLES_SHOWN),
        }

    parts = await db.run(read)
    html = render_lab_page(
        token=form_token(service.token),
        **parts,
        status=status,
        minimum=service.options.lab_min_holdout,
        margin=service.options.lab_margin,
        diff=(request.query.get("a"), request.query.get("b")),
        message=request.query.get("msg"),
        job_id=request.query.get("job"),
    )
    return web.Response(text=html, content_type="text/html")


async def case_thumbnail(request: web.Request) -> web.Response:
    return await lab_api.case_image(request)


def _back(message: str, job_id: str | None = None) -> web.HTTPSeeOther:
    # Relative to lab/<action>: back to the lab page under whatever prefix ingress uses. A job
    # is followed by its id (the page says where it is), not by the words of its start.
    if job_id is not None:
        return web.HTTPSeeOther(f"../lab?job={quote(job_id)}")
    return web.HTTPSeeOther(f"../lab?msg={quote(message)}")


async def _form_data(request: web.Request) -> dict[str, str]:
    service = _service(request)
    data = await request.post()
    fields = {key: str(value) for key, value in data.items() if isinstance(value, str)}
    offered = fields.get("csrf", "")
    if not hmac.compare_digest(offered.encode(), form_token(service.token).encode()):
        raise web.HTTPForbidden(text="the form is stale or forged: reload the lab page")
    return fields


async def act(request: web.Request) -> web.Response:
    """Every form: do the action, then back to the page with what happened."""
    service = _service(request)
    action = request.match_info["action"]
    fields = await _form_data(request)
    db = service.db
    share = service.options.lab_holdout_share
    job_id: str | None = None
    try:
        match action:
            case "synthesize":
                body = SynthesizeRequest(
                    count=int(fields.get("count") or 5), notes=fields.get("notes", "")
                )
                job = await service.lab.submit(JobKind.SYNTHESIZE, body)
                message, job_id = f"synthesis job {job.job_id} started", job.job_id
            case "score":
                job = await service.lab.submit(JobKind.SCORE, ScoreRequest())
                message, job_id = f"scoring job {job.job_id} started", job.job_id
            case "promote":
                version = fields.get("version", "")
                prompt = await db.run(
                    lambda tx: registry.promote(tx, version, manual=True, detail="promoted by hand")
                )
                message = f"{prompt.version} is now the active prompt"
            case "rollback":
                prompt = await db.run(registry.rollback)
                message = f"rolled back to {prompt.version}"
            case "task":
                spec = TaskSpec.model_validate(
                    {
                        "text": fields.get("text", ""),
                        "user_prompt": fields.get("user_prompt") or "Analyse this camera frame.",
                        "schema": json.loads(fields.get("schema") or "null"),
                    }
                )
                await db.run(lambda tx: suite.set_task_spec(tx, spec))
                message = "task spec saved"
            case "accept":
                review_id = fields.get("id", "")
                await db.run(lambda tx: examples.accept(tx, review_id, AcceptExample(), share))
                message = "example added to the validation suite"
            case "delete-case":
                case_id = fields.get("id", "")
                await db.run(lambda tx: suite.delete_case(tx, case_id))
                message = "validation case deleted"
            case _:
                raise web.HTTPNotFound()
    except ValidationError as err:
        raise _back(f"not done: {summarise_validation_error(err)}") from None
    except (
        ValueError,
        registry.UnknownPrompt,
        registry.NothingToRollBack,
        examples.UnknownExample,
        suite.UnknownCase,
        suite.DuplicateCase,
    ) as err:
        raise _back(f"not done: {err}") from None
    raise _back(message, job_id)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", page)
    app.router.add_get("/frames/{id}.jpg", reviews.frame)
    app.router.add_get("/lab", lab_page)
    app.router.add_get("/lab/cases/{id}.jpg", case_thumbnail)
    app.router.add_get("/lab/suite.json", lab_api.export_suite)
    app.router.add_get("/lab/finetune.jsonl", lab_api.stream_finetune_export)
    app.router.add_post("/lab/{action}", act)
