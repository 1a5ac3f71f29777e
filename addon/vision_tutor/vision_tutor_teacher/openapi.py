"""The API described as OpenAPI 3.1, built from the pydantic models the server uses.

Served at ``GET /api/v1/openapi.json`` and committed as ``addon/vision_tutor/openapi.json`` (a test
keeps the two identical). Regenerate the file with ``python -m vision_tutor_teacher.openapi``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from . import __version__
from .models import (
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

REF: Final = "#/components/schemas/{model}"

DESCRIPTION: Final = """\
The Vision Tutor add-on's API: the teacher review queue. Every call needs
`Authorization: Bearer <token>`; the token is generated on first start into the data directory
(`/data/token` in the add-on) and announced to Home Assistant through Supervisor discovery.
Requests through the Supervisor's ingress proxy reach only the web page, never the API.
"""


_REQUEST_MODELS: Final[tuple[type[BaseModel], ...]] = (ReviewRequest, ReviewMeta)
_RESPONSE_MODELS: Final[tuple[type[BaseModel], ...]] = (
    Accepted,
    ErrorBody,
    Health,
    ReviewEvent,
    ReviewOut,
    ReviewPage,
    Stats,
    Verdict,
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


def _secured(responses: dict[str, Any]) -> dict[str, Any]:
    return {**responses, "401": _error(UNAUTHORIZED), "403": _error(FORBIDDEN)}


def _paths() -> dict[str, Any]:
    cursor_param = {
        "name": "after",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0},
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
                    "returns the existing review with 200."
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
                        "400": _error("Invalid body; the message names the fields."),
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
                    "Each event has `id: <seq>` (a monotonic cursor), `event: review | verdict | "
                    "stats` and JSON `data` (ReviewEvent, Verdict, Stats). Resume with "
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
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": _secured(
                    {
                        "200": {
                            "description": "The stream.",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                            "x-event-data": {
                                "review": _ref(ReviewEvent),
                                "verdict": _ref(Verdict),
                                "stats": _ref(Stats),
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
                "description": "200 also when degraded (teacher down): the queue still accepts.",
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
        "paths": _paths(),
        "components": {
            "schemas": _DEFINITIONS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def render() -> str:
    return json.dumps(build_spec(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
