"""The API fuzzed against its own OpenAPI document with schemathesis (bounded: 30 examples each).

The service runs as the add-on runs it (``python -m vision_tutor_teacher`` from the add-on
folder) with a teacher that is not there, so every review queues and every lab job fails fast:
what is checked is the HTTP layer, the validation and the document, not the teacher. Every
schemathesis check runs, positive and negative data alike, with two exclusions:

* ``GET /api/v1/events`` is left out: it is an endless Server-Sent Events stream, which a
  request-and-response fuzzer would wait on forever (its cursor validation is tested in
  test_events.py).
* `positive_data_acceptance` (a request valid by the document must be accepted) is not checked
  for the operations in `SEMANTIC_RULES`, whose acceptance depends on what JSON Schema cannot
  say; their documented 400 and 404 answers are still checked like every other response.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import json
import re
import subprocess
import time

from hypothesis import HealthCheck, settings
import pytest
import schemathesis
from schemathesis.checks import positive_data_acceptance

from tests.addon.conftest import ADDON, FAST, PYTHON, WAIT_S, service_env
from vision_tutor_teacher.api.openapi import build_spec

ENTRY_POINT = (PYTHON, "-m", "vision_tutor_teacher", "--host", "127.0.0.1", "--port", "0")
NO_TEACHER = "http://127.0.0.1:9"
"""The discard port: nothing answers there."""

schema = schemathesis.openapi.from_dict(build_spec()).exclude(path="/api/v1/events")
SEMANTIC_RULES = {
    "POST /api/v1/reviews": "the image must decode as a JPEG; random bytes never do",
    "POST /api/v1/validation/cases": "an image must decode as a JPEG; exactly one of image, text",
    "POST /api/v1/validation/import": "the same, for every case of the suite",
    "POST /api/v1/prompts": "a parent must name a prompt that exists",
}


@dataclass(frozen=True, slots=True)
class LiveService:
    url: str
    token: str


@pytest.fixture(scope="module")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    root = tmp_path_factory.mktemp("schemathesis")
    options = root / "options.json"
    options.write_text(json.dumps({"teacher_url": NO_TEACHER, **FAST, "queue_limit": 50}))
    log = root / "service.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(  # our own interpreter and module
            [*ENTRY_POINT, "--config", str(options), "--data", str(root / "data")],
            cwd=ADDON,
            env=service_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + WAIT_S
        while not (found := re.search(r"listening on (http://\S+)", log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        token = (root / "data" / "token").read_text().strip()
        yield LiveService(found.group(1), token)
    finally:
        process.terminate()
        process.wait(WAIT_S)


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    # socket_enabled may be shared by the examples; the service is slow next to a pure function.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
    database=None,
)
def test_the_api_does_what_its_openapi_document_says(
    case: schemathesis.Case, live_service: LiveService, socket_enabled: None
) -> None:
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    case.call_and_validate(
        base_url=live_service.url,
        headers={"Authorization": f"Bearer {live_service.token}"},
        excluded_checks=[positive_data_acceptance] if operation in SEMANTIC_RULES else [],
        timeout=WAIT_S,
    )
