"""The prompt lab's routes under ``/api/v1``: registry, jobs, validation suite, examples, fine-tune.

Registered by `vision_tutor_teacher.api.app.create_app`, behind the same bearer-token middleware as
the rest of the API. Bodies are validated with the models of `vision_tutor_teacher.lab.models`;
errors are ``{"error": message}`` with a message that names the field.
"""

from __future__ import annotations

from functools import partial
from typing import Final

from aiohttp import web
from pydantic import BaseModel, ValidationError

from vision_tutor_teacher.core import TeacherService
from vision_tutor_teacher.lab import examples, finetune, jobs, registry, suite
from vision_tutor_teacher.lab.models import (
    AcceptExample,
    CaseList,
    JobAccepted,
    JobKind,
    PromptCreate,
    PromptList,
    PromptOut,
    PromptSource,
    ScoreRequest,
    SuiteDocument,
    SynthesizeRequest,
    TaskSpec,
    ValidationCaseIn,
    ValidationCaseOut,
)
from vision_tutor_teacher.options import summarise_validation_error
from vision_tutor_teacher.storage.database import Transaction

from .base import SERVICE, ApiError, model_response

SUITE_MAX_BYTES: Final = 128 * 1024 * 1024
"""An imported suite carries its frames; far more than one review's body limit."""
EXAMPLES_DEFAULT: Final = 50
EXAMPLES_MAX: Final = 500
EXPORT_PAGE: Final = 50
VERSION_PATTERN: Final = r"v[1-9][0-9]{0,8}"
"""A prompt version in a path, so ``/prompts/synthesize`` and the like are never one."""


def _service(request: web.Request) -> TeacherService:
    return request.app[SERVICE]


async def _read(request: web.Request, limit: int | None = None) -> bytes:
    if limit is None:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "the body is too large") from None
    data = bytearray()
    while chunk := await request.content.read(1024 * 1024):
        data += chunk
        if len(data) > limit:
            raise ApiError(413, f"the body exceeds {limit} bytes")
    return bytes(data)


async def _body[M: BaseModel](
    request: web.Request, model: type[M], what: str, *, optional: bool = False
) -> M:
    """The JSON body as `model`; an empty body is the model's defaults when `optional`."""
    raw = await _read(request)
    if not raw.strip() and optional:
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        raise ApiError(400, f"invalid {what}: {summarise_validation_error(err)}") from None


async def _fingerprints(service: TeacherService) -> registry.Fingerprints:
    return await service.lab.fingerprints()


# --- Prompts -------------------------------------------------------------------------------------


async def active_prompt(request: web.Request) -> web.Response:
    return model_response(await _service(request).db.run(registry.active_prompt))


async def list_prompts(request: web.Request) -> web.Response:
    service = _service(request)
    now = await _fingerprints(service)
    prompts = await service.db.run(lambda tx: registry.all_prompts(tx, now))
    return model_response(PromptList(prompts=prompts))


async def get_prompt(request: web.Request) -> web.Response:
    service = _service(request)
    version = request.match_info["version"]
    now = await _fingerprints(service)
    try:
        prompt = await service.db.run(lambda tx: registry.get(tx, version, now))
    except registry.UnknownPrompt as err:
        raise ApiError(404, str(err)) from None
    return model_response(prompt)


async def create_prompt(request: web.Request) -> web.Response:
    service = _service(request)
    body = await _body(request, PromptCreate, "prompt")

    def create(tx: Transaction) -> PromptOut:
        return registry.create(
            tx,
            body.text,
            parent=body.parent,
            source=PromptSource.MANUAL,
            student_model=service.options.student_model,
        )

    try:
        prompt = await service.db.run(create)
    except registry.UnknownPrompt as err:
        raise ApiError(400, f"invalid prompt: parent: {err}") from None
    return model_response(prompt, 201, headers={"Location": f"/api/v1/prompts/{prompt.version}"})


def _job_accepted(job_id: str) -> web.Response:
    return model_response(
        JobAccepted(job_id=job_id), 202, headers={"Location": f"/api/v1/jobs/{job_id}"}
    )


async def synthesize(request: web.Request) -> web.Response:
    service = _service(request)
    body = await _body(request, SynthesizeRequest, "synthesis request", optional=True)
    job = await service.lab.submit(JobKind.SYNTHESIZE, body)
    return _job_accepted(job.job_id)


async def score(request: web.Request) -> web.Response:
    service = _service(request)
    body = await _body(request, ScoreRequest, "score request", optional=True)
    if body.versions is not None:
        versions = body.versions

        def check(tx: Transaction) -> None:
            for version in versions:
                registry.get(tx, version)

        try:
            await service.db.run(check)
        except registry.UnknownPrompt as err:
            raise ApiError(404, str(err)) from None
    job = await service.lab.submit(JobKind.SCORE, body)
    return _job_accepted(job.job_id)


async def promote(request: web.Request) -> web.Response:
    service = _service(request)
    version = request.match_info["version"]
    try:
        prompt = await service.db.run(
            lambda tx: registry.promote(tx, version, manual=True, detail="promoted by hand")
        )
    except registry.UnknownPrompt as err:
        raise ApiError(404, str(err)) from None
    return model_response(prompt)


async def rollback(request: web.Request) -> web.Response:
    service = _service(request)
    try:
        prompt = await service.db.run(registry.rollback)
    except registry.NothingToRollBack as err:
        raise ApiError(409, str(err)) from None
    return model_response(prompt)


async def prompt_log(request: web.Request) -> web.Response:
    entries = await _service(request).db.run(registry.history)
    return web.json_response({"entries": [entry.model_dump(mode="json") for entry in entries]})


# --- Jobs ----------------------------------------------------------------------------------------


async def get_job(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    job = await _service(request).db.run(lambda tx: jobs.get_job(tx, job_id))
    if job is None:
        raise ApiError(404, f"no job {job_id}")
    return model_response(job)


async def list_jobs(request: web.Request) -> web.Response:
    return model_response(
        await _service(request).db.run(lambda tx: jobs.recent_jobs(tx, jobs.JOBS_LISTED))
    )


# --- Task spec and validation suite --------------------------------------------------------------


async def get_task(request: web.Request) -> web.Response:
    return model_response(await _service(request).db.run(suite.task_spec))


async def put_task(request: web.Request) -> web.Response:
    spec = await _body(request, TaskSpec, "task spec")
    return model_response(await _service(request).db.run(lambda tx: suite.set_task_spec(tx, spec)))


def _check_image(service: TeacherService, image: bytes | None) -> None:
    limit = service.options.max_image_bytes
    if image is not None and len(image) > limit:
        raise ApiError(413, f"the image exceeds the limit of {limit} bytes")


async def add_case(request: web.Request) -> web.Response:
    service = _service(request)
    case = await _body(request, ValidationCaseIn, "validation case")
    _check_image(service, case.image)
    share = service.options.lab_holdout_share

    def add(tx: Transaction) -> ValidationCaseOut:
        case_id, _ = suite.insert_case(tx, case, "manual", share)
        added = suite.get_case(tx, case_id)
        assert added is not None
        return added

    try:
        added = await service.db.run(add)
    except suite.DuplicateCase as err:
        raise ApiError(409, str(err)) from None
    return model_response(added, 201, headers={"Location": f"/api/v1/validation/cases/{added.id}"})


async def list_cases(request: web.Request) -> web.Response:
    cases: CaseList = await _service(request).db.run(suite.list_cases)
    return model_response(cases)


async def get_case(request: web.Request) -> web.Response:
    case_id = request.match_info["id"]
    case = await _service(request).db.run(lambda tx: suite.get_case(tx, case_id))
    if case is None:
        raise ApiError(404, f"no validation case {case_id}")
    return model_response(case)


async def delete_case(request: web.Request) -> web.Response:
    case_id = request.match_info["id"]
    try:
        await _service(request).db.run(lambda tx: suite.delete_case(tx, case_id))
    except suite.UnknownCase as err:
        raise ApiError(404, str(err)) from None
    return web.Response(status=204)


async def case_image(request: web.Request) -> web.Response:
    case_id = request.match_info["id"]
    jpeg = await _service(request).db.run(lambda tx: suite.case_image(tx, case_id))
    if jpeg is None:
        raise ApiError(404, f"no image for validation case {case_id}")
    return web.Response(
        body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


async def import_suite(request: web.Request) -> web.Response:
    service = _service(request)
    raw = await _read(request, SUITE_MAX_BYTES)
    try:
        document = SuiteDocument.model_validate_json(raw)
    except ValidationError as err:
        raise ApiError(
            400, f"invalid suite, nothing imported: {summarise_validation_error(err)}"
        ) from None
    for index, case in enumerate(document.cases):
        if case.image is not None and len(case.image) > service.options.max_image_bytes:
            raise ApiError(
                413, f"invalid suite, nothing imported: cases.{index}.image exceeds the limit"
            )
    share = service.options.lab_holdout_share
    # One transaction: every case goes in, or (on any error) none does.
    result = await service.db.run(lambda tx: suite.import_suite(tx, document, share))
    return model_response(result)


async def export_suite(request: web.Request) -> web.Response:
    document = await _service(request).db.run(suite.export_suite)
    return web.Response(
        body=document.model_dump_json(by_alias=True).encode(),
        content_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="vision-tutor-suite.json"'},
    )


# --- Curated examples and fine-tuning ------------------------------------------------------------


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(EXAMPLES_DEFAULT))
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "limit must be an integer") from None
    if not 1 <= value <= EXAMPLES_MAX:
        raise ApiError(400, f"limit must be between 1 and {EXAMPLES_MAX}")
    return value


async def list_examples(request: web.Request) -> web.Response:
    limit = _limit(request)
    return model_response(
        await _service(request).db.run(lambda tx: examples.list_examples(tx, limit))
    )


async def accept_example(request: web.Request) -> web.Response:
    service = _service(request)
    review_id = request.match_info["id"]
    overrides = await _body(request, AcceptExample, "example acceptance", optional=True)
    share = service.options.lab_holdout_share

    def accept(tx: Transaction) -> ValidationCaseOut:
        case_id = examples.accept(tx, review_id, overrides, share)
        case = suite.get_case(tx, case_id)
        assert case is not None
        return case

    try:
        case = await service.db.run(accept)
    except examples.UnknownExample as err:
        raise ApiError(404, str(err)) from None
    except suite.DuplicateCase as err:
        raise ApiError(409, str(err)) from None
    return model_response(case, 201, headers={"Location": f"/api/v1/validation/cases/{case.id}"})


async def finetune_status(request: web.Request) -> web.Response:
    return model_response(await _service(request).lab.finetune_status())


async def stream_finetune_export(request: web.Request) -> web.StreamResponse:
    """The curated examples as JSONL, read from the database a page at a time."""
    service = _service(request)
    prompt = await service.db.run(registry.active_prompt)
    task = await service.db.run(suite.task_spec)
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/jsonl; charset=utf-8",
            "Content-Disposition": 'attachment; filename="vision-tutor-sft.jsonl"',
        }
    )
    await response.prepare(request)
    after: str | None = ""
    while after is not None:
        page = partial(
            finetune.export_page,
            after=after,
            limit=EXPORT_PAGE,
            system_prompt=prompt.text,
            user_prompt=task.user_prompt,
        )
        lines, after = await service.db.run(page)
        if lines:
            await response.write("".join(line + "\n" for line in lines).encode())
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    router = app.router
    # Fixed paths before the {version} pattern, which would otherwise take them.
    router.add_get("/api/v1/prompts/active", active_prompt)
    router.add_get("/api/v1/prompts/log", prompt_log)
    router.add_post("/api/v1/prompts/synthesize", synthesize)
    router.add_post("/api/v1/prompts/score", score)
    router.add_post("/api/v1/prompts/rollback", rollback)
    router.add_get("/api/v1/prompts", list_prompts)
    router.add_post("/api/v1/prompts", create_prompt)
    router.add_get(f"/api/v1/prompts/{{version:{VERSION_PATTERN}}}", get_prompt)
    router.add_post(f"/api/v1/prompts/{{version:{VERSION_PATTERN}}}/promote", promote)
    router.add_get("/api/v1/jobs", list_jobs)
    router.add_get("/api/v1/jobs/{job_id}", get_job)
    router.add_get("/api/v1/task", get_task)
    router.add_put("/api/v1/task", put_task)
    router.add_get("/api/v1/validation/cases", list_cases)
    router.add_post("/api/v1/validation/cases", add_case)
    router.add_get("/api/v1/validation/cases/{id}", get_case)
    router.add_delete("/api/v1/validation/cases/{id}", delete_case)
    router.add_get("/api/v1/validation/cases/{id}/image", case_image)
    router.add_post("/api/v1/validation/import", import_suite)
    router.add_get("/api/v1/validation/export", export_suite)
    router.add_get("/api/v1/examples", list_examples)
    router.add_post("/api/v1/examples/{id}/accept", accept_example)
    router.add_get("/api/v1/finetune", finetune_status)
    router.add_get("/api/v1/finetune/export.jsonl", stream_finetune_export)
