"""The API described as OpenAPI 3.1, built from the pydantic models the server uses.

Served at ``GET /api/v1/openapi.json`` and committed as ``addon/vision_tutor/openapi.json`` (a test
keeps the two identical). Regenerate the file with ``python -m vision_tutor_teacher.api.openapi``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from vision_tutor_teacher import __version__
from vision_tutor_teacher.lab.models import (
    AcceptExample,
    ActivePrompt,
    CaseList,
    ExampleList,
    FinetuneStatus,
    ImportResult,
    JobAccepted,
    JobEvent,
    JobList,
    JobOut,
    PromptCreate,
    PromptEvent,
    PromptList,
    PromptOut,
    ScoreRequest,
    SuiteDocument,
    SynthesizeRequest,
    TaskSpec,
    ValidationCaseIn,
    ValidationCaseOut,
)
from vision_tutor_teacher.models import (
    Accepted,
    ErrorBody,
    Health,
    ReviewEvent,
    ReviewMeta,
    ReviewOut,
    ReviewPage,
    ReviewRequest,
    Stats,
    Verdict,
)
from vision_tutor_teacher.reviews.events import MAX_CURSOR

REF: Final = "#/components/schemas/{model}"

DESCRIPTION: Final = """\
The Vision Tutor add-on's API: the teacher review queue and the prompt lab. Every call needs
`Authorization: Bearer <token>`; the token is generated on first start into the data directory
(`/data/token` in the add-on) and announced to Home Assistant through Supervisor discovery.
Requests through the Supervisor's ingress proxy reach only the web page, never the API.
"""


_REQUEST_MODELS: Final[tuple[type[BaseModel], ...]] = (
    ReviewRequest,
    ReviewMeta,
    PromptCreate,
    SynthesizeRequest,
    ScoreRequest,
    ValidationCaseIn,
    SuiteDocument,
    AcceptExample,
)
_RESPONSE_MODELS: Final[tuple[type[BaseModel], ...]] = (
    Accepted,
    ErrorBody,
    Health,
    ReviewEvent,
    ReviewOut,
    ReviewPage,
    Stats,
    Verdict,
    ActivePrompt,
    PromptOut,
    PromptList,
    PromptEvent,
    JobAccepted,
    JobOut,
    JobList,
    JobEvent,
    TaskSpec,
    ValidationCaseOut,
    CaseList,
    ImportResult,
    ExampleList,
    FinetuneStatus,
)


def _schemas() -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    """References to each model's schema, and the schemas, named as pydantic names them."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((model, "validation") for model in _REQUEST_MODELS),
        *((model, "serialization") for model in _RESPONSE_MODELS),
    ]
    refs, schemas = models_json_schema(models, ref_template=REF)
    return {model: dict(refs[model, mode]) for model, mode in models}, schemas["$defs"]


_REFS, _DEFINITIONS = _schemas()


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return dict(_REFS[model])


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response = _json(ErrorBody, description)
    if headers:
        response["headers"] = headers
    return response


UNAUTHORIZED: Final = "Missing or wrong bearer token (nothing was done)."
FORBIDDEN: Final = "Called through the ingress proxy, which only reaches the web page."


STORAGE_FAILED: Final = "The database cannot be used now (I/O error); retry after Retry-After."
INSUFFICIENT_STORAGE: Final = (
    "The data directory is full: nothing was stored. Health says how much space it needs."
)
INTERNAL: Final = "An unexpected error (logged by the service)."


def _secured(responses: dict[str, Any]) -> dict[str, Any]:
    return {
        **responses,
        "401": _error(UNAUTHORIZED),
        "403": _error(FORBIDDEN),
        "500": _error(INTERNAL),
        "503": _error(
            STORAGE_FAILED,
            {"Retry-After": {"description": "Seconds.", "schema": {"type": "integer"}}},
        ),
    }


def _with_storage_errors(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation that writes can find the disk full."""
    for operations in paths.values():
        for method, operation in operations.items():
            if method in ("post", "put", "delete"):
                operation["responses"]["507"] = _error(INSUFFICIENT_STORAGE)
    return paths


def _paths() -> dict[str, Any]:
    cursor_param = {
        "name": "after",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_CURSOR},
    }
    review_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/api/v1/reviews": {
            "post": {
                "operationId": "submitReview",
                "summary": "Escalate one frame to the teacher",
                "description": (
                    "Priority follows the reason: safety > student_error > low_confidence > "
                    "temporal > audit. A 202 means the review is on disk. When the queue is full "
                    "the lowest-priority oldest queued review is shed (a `review` event with "
                    "status `shed` says so) if it is less important than this one; otherwise "
                    "this one is refused with 429. Within the batch window a newer review of the "
                    "same camera and reason supersedes a queued one. A repeated idempotency key "
                    "with the same body returns the existing review with 200; with a different "
                    "body it is refused with 409, naming the existing review. The image must be "
                    "a JPEG whose header decodes, at most 8192 pixels a side."
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref(ReviewRequest)},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["meta", "image"],
                                "properties": {
                                    "meta": _ref(ReviewMeta),
                                    "image": {"type": "string", "format": "binary"},
                                },
                            },
                            "encoding": {
                                "meta": {"contentType": "application/json"},
                                "image": {"contentType": "image/jpeg"},
                            },
                        },
                    },
                },
                "responses": _secured(
                    {
                        "200": _json(ReviewOut, "Duplicate idempotency key: the existing review."),
                        "202": _json(Accepted, "Queued (durably)."),
                        "400": _error(
                            "Invalid body (also malformed multipart, or an image that is not a "
                            "readable JPEG within the size limits); the message names the fields."
                        ),
                        "409": _error(
                            "The idempotency key was used for another review with a different "
                            "body; the message and Location name it.",
                            {
                                "Location": {
                                    "description": "The existing review.",
                                    "schema": {"type": "string"},
                                }
                            },
                        ),
                        "413": _error("The image exceeds the configured limit (max_image_mb)."),
                        "415": _error("Neither JSON nor multipart."),
                        "429": _error(
                            "The queue is full of reviews at least as important.",
                            {
                                "Retry-After": {
                                    "description": "Seconds until a retry may succeed.",
                                    "schema": {"type": "integer"},
                                }
                            },
                        ),
                    }
                ),
            },
            "get": {
                "operationId": "listChangedReviews",
                "summary": "Reviews changed after a cursor, oldest change first",
                "parameters": [
                    cursor_param,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 100,
                        },
                    },
                ],
                "responses": _secured(
                    {"200": _json(ReviewPage, "A page."), "400": _error("Bad cursor or limit.")}
                ),
            },
        },
        "/api/v1/reviews/{id}": {
            "get": {
                "operationId": "getReview",
                "summary": "One review, with its verdict when done",
                "parameters": [review_id],
                "responses": _secured(
                    {"200": _json(ReviewOut, "The review."), "404": _error("Unknown review.")}
                ),
            }
        },
        "/api/v1/reviews/{id}/frame": {
            "get": {
                "operationId": "getReviewFrame",
                "summary": "The reviewed frame, while it is retained",
                "parameters": [review_id],
                "responses": _secured(
                    {
                        "200": {
                            "description": "The JPEG.",
                            "content": {"image/jpeg": {"schema": {"type": "string"}}},
                        },
                        "404": _error("Unknown review, or its frame was deleted."),
                    }
                ),
            }
        },
        "/api/v1/events": {
            "get": {
                "operationId": "streamEvents",
                "summary": "Server-Sent Events: every status change, verdict and statistic",
                "description": (
                    "The first event is `event: hello` with no `id:` line and data "
                    '`{"database_id": "...", "last_seq": N}`: the database\'s identity '
                    "(also the `X-Vision-Tutor-Database` response header and in /api/v1/health) "
                    "and the log's newest sequence number. A client whose saved cursor belongs to "
                    "another database id, or is above `last_seq` (a database restored from an "
                    "older copy), starts again from 0. "
                    "Each other event has `id: <seq>` (a monotonic cursor), `event: review | "
                    "verdict | stats | prompt | job` and JSON `data` (ReviewEvent, Verdict, Stats, "
                    "PromptEvent: the active prompt changed, JobEvent: a lab job's progress). "
                    "Resume with "
                    "`?after=<last seq>` or the standard `Last-Event-ID` header (which wins): "
                    "every later event arrives exactly once, in order. Without either, the stream "
                    "starts with the next event. Comment lines are heartbeats."
                ),
                "parameters": [
                    cursor_param,
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_CURSOR},
                    },
                ],
                "responses": _secured(
                    {
                        "200": {
                            "description": "The stream.",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                            "headers": {
                                "X-Vision-Tutor-Database": {
                                    "description": "The database's id (as in the hello event).",
                                    "schema": {"type": "string"},
                                }
                            },
                            "x-event-data": {
                                "hello": {
                                    "type": "object",
                                    "properties": {
                                        "database_id": {"type": "string"},
                                        "last_seq": {"type": "integer", "minimum": 0},
                                    },
                                    "required": ["database_id", "last_seq"],
                                },
                                "review": _ref(ReviewEvent),
                                "verdict": _ref(Verdict),
                                "stats": _ref(Stats),
                                "prompt": _ref(PromptEvent),
                                "job": _ref(JobEvent),
                            },
                        },
                        "400": _error("Bad cursor."),
                    }
                ),
            }
        },
        "/api/v1/health": {
            "get": {
                "operationId": "getHealth",
                "summary": "Whether the service and its teacher are working",
                "description": (
                    "200 also when degraded: `status` is `ok` only when nothing is failing; "
                    "otherwise `reasons` lists what is (teacher unreachable, circuit breaker "
                    "open, storage failing or low, a background part restarting). The queue "
                    "still accepts while degraded, unless the disk is full (507)."
                ),
                "responses": _secured({"200": _json(Health, "Health.")}),
            }
        },
        "/api/v1/stats": {
            "get": {
                "operationId": "getStats",
                "summary": "Queue and teacher statistics",
                "responses": _secured({"200": _json(Stats, "Statistics.")}),
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": _secured({"200": {"description": "OpenAPI 3.1 JSON."}}),
            }
        },
        "/metrics": {
            "get": {
                "operationId": "getMetrics",
                "summary": "The statistics in Prometheus' text format",
                "responses": _secured(
                    {
                        "200": {
                            "description": "Prometheus text exposition format 0.0.4.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    }
                ),
            }
        },
    }


def _request(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(model)}}}


def _lab_paths() -> dict[str, Any]:
    """The prompt lab: registry, jobs, task spec, validation suite, examples, fine-tuning."""
    version = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": r"^v[1-9][0-9]{0,8}$"},
    }
    case_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    job_started = {
        "202": _json(JobAccepted, "The job is queued; follow it at /api/v1/jobs/{job_id}."),
    }
    return {
        "/api/v1/prompts/active": {
            "get": {
                "operationId": "getActivePrompt",
                "summary": "The prompt the integration's student should use",
                "description": (
                    "The seed prompt (v1, a plain starting prompt) is active from the first start. "
                    "Every change of the active prompt is also announced as a `prompt` event."
                ),
                "responses": _secured({"200": _json(ActivePrompt, "The active prompt.")}),
            }
        },
        "/api/v1/prompts": {
            "get": {
                "operationId": "listPrompts",
                "summary": "Every prompt version with its scores, newest first",
                "responses": _secured({"200": _json(PromptList, "The registry.")}),
            },
            "post": {
                "operationId": "createPrompt",
                "summary": "Add a manual candidate",
                "requestBody": _request(PromptCreate),
                "responses": _secured(
                    {
                        "201": _json(PromptOut, "The candidate."),
                        "400": _error("Invalid body or unknown parent."),
                    }
                ),
            },
        },
        "/api/v1/prompts/{version}": {
            "get": {
                "operationId": "getPrompt",
                "summary": "One prompt version: scores per split and method, per-case breakdown",
                "parameters": [version],
                "responses": _secured(
                    {"200": _json(PromptOut, "The prompt."), "404": _error("Unknown version.")}
                ),
            }
        },
        "/api/v1/prompts/synthesize": {
            "post": {
                "operationId": "synthesizePrompts",
                "summary": "The teacher writes candidates; they are scored; the gate may promote",
                "description": (
                    "Runs as a job: teacher references, the active prompt's scores, synthesis "
                    "(OPRO-style meta-prompt, `format` array schema), rejection of candidates that "
                    "drop the contract and of near-duplicates, minibatch screening, train scores "
                    "for the survivors, holdout scores for the finalists, then the gate: the "
                    "finalist with the best train score is promoted when its holdout score is at "
                    "least `lab_min_holdout` and beats the active prompt's (measured again in the "
                    "same round) by `lab_margin` and by `lab_gate_sigmas` standard errors."
                ),
                "requestBody": _request(SynthesizeRequest, required=False),
                "responses": _secured({**job_started, "400": _error("Invalid body.")}),
            }
        },
        "/api/v1/prompts/score": {
            "post": {
                "operationId": "scorePrompts",
                "summary": "Score prompt versions (then the gate may promote)",
                "description": (
                    "`versions: null` scores the active prompt where its scores are stale and "
                    "every candidate not yet scored on the current suite."
                ),
                "requestBody": _request(ScoreRequest, required=False),
                "responses": _secured(
                    {
                        **job_started,
                        "400": _error("Invalid body."),
                        "404": _error("Unknown version."),
                    }
                ),
            }
        },
        "/api/v1/prompts/{version}/promote": {
            "post": {
                "operationId": "promotePrompt",
                "summary": "Make a version active by hand (logged, announced)",
                "parameters": [version],
                "responses": _secured(
                    {"200": _json(PromptOut, "The now active prompt."), "404": _error("Unknown.")}
                ),
            }
        },
        "/api/v1/prompts/rollback": {
            "post": {
                "operationId": "rollbackPrompt",
                "summary": "Return to the prompt active before the last promotion (logged)",
                "responses": _secured(
                    {
                        "200": _json(PromptOut, "The now active prompt."),
                        "409": _error("Nothing to roll back to."),
                    }
                ),
            }
        },
        "/api/v1/prompts/log": {
            "get": {
                "operationId": "getPromptLog",
                "summary": "Promotions and rollbacks, newest first",
                "responses": _secured({"200": {"description": '`{"entries": [...]}`.'}}),
            }
        },
        "/api/v1/jobs": {
            "get": {
                "operationId": "listJobs",
                "summary": "The newest lab jobs",
                "responses": _secured({"200": _json(JobList, "Jobs, newest first.")}),
            }
        },
        "/api/v1/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "A lab job's state, progress and result",
                "parameters": [
                    {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": _secured(
                    {"200": _json(JobOut, "The job."), "404": _error("Unknown job.")}
                ),
            }
        },
        "/api/v1/task": {
            "get": {
                "operationId": "getTaskSpec",
                "summary": "The task spec: what the student must do, and the output contract",
                "responses": _secured({"200": _json(TaskSpec, "The task spec.")}),
            },
            "put": {
                "operationId": "putTaskSpec",
                "summary": "Replace the task spec (cached teacher references are dropped)",
                "requestBody": _request(TaskSpec),
                "responses": _secured(
                    {"200": _json(TaskSpec, "Saved."), "400": _error("Invalid task spec.")}
                ),
            },
        },
        "/api/v1/validation/cases": {
            "get": {
                "operationId": "listValidationCases",
                "summary": "The validation suite",
                "responses": _secured({"200": _json(CaseList, "The cases.")}),
            },
            "post": {
                "operationId": "addValidationCase",
                "summary": "Add a case: a frame (base64 JPEG) or a text description",
                "requestBody": _request(ValidationCaseIn),
                "responses": _secured(
                    {
                        "201": _json(ValidationCaseOut, "The case."),
                        "400": _error("Invalid case; the message names the field."),
                        "409": _error("A case with this name exists."),
                        "413": _error("The image exceeds max_image_mb."),
                    }
                ),
            },
        },
        "/api/v1/validation/cases/{id}": {
            "get": {
                "operationId": "getValidationCase",
                "summary": "One case",
                "parameters": [case_id],
                "responses": _secured(
                    {"200": _json(ValidationCaseOut, "The case."), "404": _error("Unknown.")}
                ),
            },
            "delete": {
                "operationId": "deleteValidationCase",
                "summary": "Remove a case",
                "parameters": [case_id],
                "responses": _secured(
                    {"204": {"description": "Deleted."}, "404": _error("Unknown.")}
                ),
            },
        },
        "/api/v1/validation/cases/{id}/image": {
            "get": {
                "operationId": "getValidationCaseImage",
                "summary": "An image case's frame",
                "parameters": [case_id],
                "responses": _secured(
                    {
                        "200": {
                            "description": "The JPEG.",
                            "content": {"image/jpeg": {"schema": {"type": "string"}}},
                        },
                        "404": _error("Unknown case, or a text case."),
                    }
                ),
            }
        },
        "/api/v1/validation/import": {
            "post": {
                "operationId": "importValidationSuite",
                "summary": "Import a suite: all or nothing",
                "description": (
                    "The whole document is validated first; any invalid case is a 400 naming it "
                    "and nothing is imported. A case whose name exists replaces it, so importing "
                    "an export again changes nothing. A `task` replaces the task spec."
                ),
                "requestBody": _request(SuiteDocument),
                "responses": _secured(
                    {
                        "200": _json(ImportResult, "Imported."),
                        "400": _error("Invalid suite; nothing was imported."),
                        "413": _error("An image or the body is too large; nothing was imported."),
                    }
                ),
            }
        },
        "/api/v1/validation/export": {
            "get": {
                "operationId": "exportValidationSuite",
                "summary": "The task spec and every case (splits pinned), as import takes it",
                "responses": _secured({"200": _json(SuiteDocument, "The suite.")}),
            }
        },
        "/api/v1/examples": {
            "get": {
                "operationId": "listExamples",
                "summary": "Curated examples: teacher verdicts with their frames, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    }
                ],
                "responses": _secured(
                    {"200": _json(ExampleList, "Examples."), "400": _error("Bad limit.")}
                ),
            }
        },
        "/api/v1/examples/{id}/accept": {
            "post": {
                "operationId": "acceptExample",
                "summary": "Make an example a validation case (reference = the teacher's verdict)",
                "parameters": [case_id],
                "requestBody": _request(AcceptExample, required=False),
                "responses": _secured(
                    {
                        "201": _json(ValidationCaseOut, "The new case."),
                        "400": _error("Invalid overrides."),
                        "404": _error("No such example, or its frame is no longer kept."),
                        "409": _error("Already accepted, or the name is taken."),
                    }
                ),
            }
        },
        "/api/v1/finetune": {
            "get": {
                "operationId": "getFinetuneStatus",
                "summary": "Whether prompting has plateaued and fine-tuning is justified",
                "responses": _secured({"200": _json(FinetuneStatus, "The status.")}),
            }
        },
        "/api/v1/finetune/export.jsonl": {
            "get": {
                "operationId": "exportFinetuneSet",
                "summary": "The curated examples as JSONL for SFT (chat format with images)",
                "responses": _secured(
                    {
                        "200": {
                            "description": (
                                'One `{"messages": [system, user (image, text), assistant]}` '
                                "object per line; the image as a data:image/jpeg;base64 URL."
                            ),
                            "content": {"application/jsonl": {"schema": {"type": "string"}}},
                        }
                    }
                ),
            }
        },
    }


def build_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Vision Tutor add-on API",
            "version": __version__,
            "description": DESCRIPTION,
        },
        "servers": [{"url": "http://{host}:8765", "variables": {"host": {"default": "localhost"}}}],
        "security": [{"bearer": []}],
        "paths": _with_storage_errors({**_paths(), **_lab_paths()}),
        "components": {
            "schemas": _DEFINITIONS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def render() -> str:
    return json.dumps(build_spec(), indent=2, sort_keys=False) + "\n"


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_spec())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi)


if __name__ == "__main__":
    sys.stdout.write(render())
