"""The add-on's HTTP API over loopback, with the simulator as the teacher: every endpoint, the
access rules and every error path the integration can meet."""

from __future__ import annotations

import base64
import json
from pathlib import Path
import re
from typing import Any

import aiohttp
import pytest

from simulator.server import RunningSimulator
from tests.addon.conftest import (
    ADDON,
    OBSERVATION_SCHEMA,
    StartService,
    jpeg,
    review_body,
    statuses,
)
from tests.addon.test_lab_api import LAB_ROUTES
from vision_tutor_teacher import __version__
from vision_tutor_teacher.api.openapi import build_spec

API_ROUTES = [
    ("POST", "/api/v1/reviews"),
    ("GET", "/api/v1/reviews"),
    ("GET", "/api/v1/reviews/some-id"),
    ("GET", "/api/v1/reviews/some-id/frame"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/metrics"),
    *LAB_ROUTES,
]


# --- Access --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", "Basic dXNlcjp3cm9uZw==", "Token x"]
)
async def test_every_api_route_refuses_a_missing_or_wrong_token(
    start_service: StartService, simulator: RunningSimulator, authorization: str | None
) -> None:
    client = await start_service(simulator.url)
    headers = {"Authorization": authorization} if authorization else {}
    async with aiohttp.ClientSession() as anonymous:
        for method, path in API_ROUTES:
            body = review_body("sneaky") if method == "POST" else None
            async with anonymous.request(
                method, client.url + path, json=body, headers=headers
            ) as response:
                assert response.status == 401, path
                assert response.headers["WWW-Authenticate"] == "Bearer"
                assert (await response.json())["error"] == "missing or wrong bearer token"

    stats = await client.stats()
    assert stats["accepted"] == 0
    assert stats["queued"] == 0


async def test_basic_auth_with_the_token_opens_the_page_but_not_the_api(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    async with aiohttp.ClientSession() as browser:
        async with browser.get(client.url + "/") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith('Basic realm="Vision Tutor"')
        login = {"Authorization": aiohttp.encode_basic_auth("anyone", client.token)}
        async with browser.get(client.url + "/", headers=login) as response:
            assert response.status == 200
            assert "Vision Tutor teacher" in await response.text()
        async with browser.get(client.url + "/api/v1/stats", headers=login) as response:
            assert response.status == 401


async def test_the_sign_in_answer_says_where_the_token_is(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    service = client.running.service
    async with aiohttp.ClientSession() as browser:
        # Standalone: the token's file, which does hold the token.
        async with browser.get(client.url + "/lab") as response:
            assert response.status == 401
            text = await response.text()
        path = service.data_dir / "token"
        assert f"The token is in {path}" in text
        assert path.read_text().strip() == client.token
        assert client.token not in text

        # As an add-on (the Supervisor's proxy is some other address): ingress, then the page.
        service.ingress_proxy = "172.30.32.2"
        async with browser.get(client.url + "/") as response:
            assert response.status == 401
            text = await response.text()
        assert "Settings > Add-ons > Vision Tutor > Open web UI" in text
        assert "under 'Direct access'" in text
        assert client.token not in text

        # A browser signed in with the token is not shown it again; ingress users are.
        login = {"Authorization": aiohttp.encode_basic_auth("anyone", client.token)}
        async with browser.get(client.url + "/", headers=login) as response:
            assert response.status == 200
            assert "Direct access" not in await response.text()
        service.ingress_proxy = "127.0.0.1"
        async with browser.get(client.url + "/") as response:
            assert response.status == 200
            page = await response.text()
        assert '<h2 id="direct-access">Direct access</h2>' in page
        assert f'<code class="token">{client.token}</code>' in page


async def test_ingress_reaches_the_page_without_a_token_and_never_the_api(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    # Over loopback every request comes from 127.0.0.1: let that stand for the ingress proxy.
    client.running.service.ingress_proxy = "127.0.0.1"
    async with aiohttp.ClientSession() as proxy:
        async with proxy.get(client.url + "/") as response:
            assert response.status == 200
        for method, path in API_ROUTES:
            headers = {"Authorization": f"Bearer {client.token}"}
            async with proxy.request(method, client.url + path, headers=headers) as response:
                assert response.status == 403, path
                assert "ingress" in (await response.json())["error"]


async def test_only_an_addon_trusts_the_ingress_address(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    assert client.running.service.ingress_proxy is None
    async with aiohttp.ClientSession() as stranger, stranger.get(client.url + "/") as response:
        assert response.status == 401


# --- Submitting ----------------------------------------------------------------------------------


async def test_a_review_is_accepted_then_visible_by_id_and_by_cursor(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    reply = await client.submit(review_body("frame-1", reason="safety", scene="fire_kitchen_pan"))

    assert reply.status == 202
    assert reply.body["status"] == "queued"
    assert reply.body["cursor"] >= 1
    review_id = reply.body["id"]
    assert reply.headers["Location"] == f"/api/v1/reviews/{review_id}"

    await client.wait_settled({review_id})
    review = await client.review(review_id)
    assert review["idempotency_key"] == "frame-1"
    assert review["camera"] == "camera.front_door"
    assert review["reason"] == "safety"
    assert review["priority"] == 5
    assert review["status"] == "done"
    assert review["attempts"] == 1
    assert review["verdict"]["verdict"]["safety_flags"]
    assert review["verdict"]["teacher_model"] == "gemma4:26b"

    page = await client.get("/api/v1/reviews", params={"after": "0"})
    assert [r["id"] for r in page.body["reviews"]] == [review_id]
    assert page.body["cursor"] == review["cursor"]
    later = await client.get("/api/v1/reviews", params={"after": str(page.body["cursor"])})
    assert later.body == {"reviews": [], "cursor": page.body["cursor"]}


async def test_a_repeated_idempotency_key_returns_the_existing_review(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    first = await client.submit(review_body("same-key"))
    again = await client.submit(review_body("same-key"))
    meta = review_body("same-key")
    del meta["image"]
    form = aiohttp.FormData()
    form.add_field("meta", json.dumps(meta), content_type="application/json")
    form.add_field("image", jpeg(), content_type="image/jpeg", filename="frame.jpg")
    as_multipart = await client.request("POST", "/api/v1/reviews", data=form)

    assert first.status == 202
    assert (again.status, again.body["id"]) == (200, first.body["id"])
    assert (as_multipart.status, as_multipart.body["id"]) == (200, first.body["id"])
    events = await client.wait_settled({first.body["id"]})
    assert statuses(events, first.body["id"]) == ["queued", "in_progress", "done"]
    assert (await client.stats())["accepted"] == 1
    assert len(simulator.stats.scenes) == 1  # the teacher saw the frame once


@pytest.mark.parametrize(
    "change",
    [
        {"camera": "camera.garage", "reason": "safety"},
        {"image": base64.b64encode(jpeg("fire_kitchen_pan")).decode()},
    ],
    ids=["other-camera", "other-frame"],
)
async def test_a_reused_idempotency_key_with_another_body_is_a_409_naming_the_review(
    start_service: StartService, simulator: RunningSimulator, change: dict[str, Any]
) -> None:
    client = await start_service(simulator.url)
    first = await client.accepted(review_body("reused-key"))

    conflict = await client.submit({**review_body("reused-key"), **change})

    assert conflict.status == 409
    assert first in conflict.body["error"]
    assert "'reused-key'" in conflict.body["error"]
    assert conflict.headers["Location"] == f"/api/v1/reviews/{first}"
    assert (await client.stats())["accepted"] == 1
    assert (await client.review(first))["camera"] == "camera.front_door"


async def test_a_multipart_review_with_meta_and_image_parts(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    meta = review_body("multipart-1", scene="porch_package")
    del meta["image"]
    form = aiohttp.FormData()
    form.add_field("meta", json.dumps(meta), content_type="application/json")
    form.add_field("note", "ignored")
    form.add_field("image", jpeg("porch_package"), content_type="image/jpeg", filename="frame.jpg")

    reply = await client.request("POST", "/api/v1/reviews", data=form)

    assert reply.status == 202, reply.body
    await client.wait_settled({reply.body["id"]})
    frame = await client.get(f"/api/v1/reviews/{reply.body['id']}/frame")
    assert frame.status == 200
    assert frame.headers["Content-Type"] == "image/jpeg"
    assert frame.body == jpeg("porch_package")
    assert simulator.stats.scenes == {"porch_package": 1}


def huge_jpeg() -> bytes:
    """A JPEG header claiming 20000 x 100 pixels (the header is all that is read)."""
    frame_header = (
        b"\xff\xc0\x00\x0b\x08" + (100).to_bytes(2) + (20000).to_bytes(2) + b"\x01\x01\x11\x00"
    )
    return b"\xff\xd8" + frame_header + b"\xff\xda\x00\x02" + b"\x00" * 64 + b"\xff\xd9"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.pop("camera"), "camera: Field required"),
        (lambda b: b.update(reason="curiosity"), "reason: Input should be 'safety'"),
        (
            lambda b: b.update(idempotency_key="k" * 129),
            "idempotency_key: String should have at most 128",
        ),
        (lambda b: b.update(image="not base64!"), "image: Data should be valid base64"),
        (lambda b: b.update(image=base64.b64encode(b"GIF89a...").decode()), "image: not a JPEG"),
        (
            lambda b: b.update(image=base64.b64encode(b"\xff\xd8\xff").decode()),
            "image: not a JPEG: the file is cut short",
        ),
        (
            lambda b: b.update(image=base64.b64encode(huge_jpeg()).decode()),
            "image: the JPEG is 20000 x 100 pixels; at most 8192 pixels a side",
        ),
        (
            lambda b: b.update(captured_at="yesterday"),
            "captured_at: Input should be a valid datetime",
        ),
        (lambda b: b["contract"].update(schema={"type": "array"}), "contract.schema: Value error"),
        (lambda b: b["student"]["answer"].update(confidence=1.5), "student.answer.confidence"),
    ],
)
async def test_an_invalid_review_is_a_400_naming_the_field(
    start_service: StartService, simulator: RunningSimulator, change, message: str
) -> None:
    client = await start_service(simulator.url)
    body = review_body("bad")
    change(body)

    reply = await client.submit(body)

    assert reply.status == 400
    assert reply.body["error"].startswith("invalid review: ")
    assert message in reply.body["error"]
    assert (await client.stats())["accepted"] == 0


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n\r\n"),  # no boundary
        ("multipart/form-data; boundary=x", b"not multipart at all"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n"),
        ("multipart/form-data; boundary=x", b"--x\r\n\xff\xfe: \x00\r\n\r\nbody\r\n--x--\r\n"),
    ],
    ids=["no-boundary", "no-parts", "cut-short", "garbled-headers"],
)
async def test_a_malformed_multipart_body_is_a_400_as_json(
    start_service: StartService, simulator: RunningSimulator, content_type: str, body: bytes
) -> None:
    client = await start_service(simulator.url)

    reply = await client.request(
        "POST", "/api/v1/reviews", data=body, headers={"Content-Type": content_type}
    )

    assert reply.status == 400, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.body["error"].startswith("invalid review: ")
    assert (await client.stats())["accepted"] == 0


async def test_cursors_and_query_parameters_outside_the_document_are_400s(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    for path, params, headers in (
        ("/api/v1/reviews", {"after": str(2**63)}, {}),
        ("/api/v1/reviews", {"after": "-1"}, {}),
        ("/api/v1/events", {"after": str(2**64)}, {}),
        ("/api/v1/events", {}, {"Last-Event-ID": str(2**63)}),
        ("/api/v1/reviews", {"afterr": "5"}, {}),
    ):
        reply = await client.get(path, params=params, headers=headers)
        assert reply.status == 400, (path, params, reply.body)
        assert set(reply.body) == {"error"}
    assert (await client.get("/api/v1/reviews", params={"after": str(2**63 - 1)})).status == 200


async def test_a_body_that_is_not_json_is_a_400_and_an_unknown_type_a_415(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    broken = await client.request(
        "POST",
        "/api/v1/reviews",
        data=b'{"camera": ',
        headers={"Content-Type": "application/json"},
    )
    assert broken.status == 400
    assert "invalid review" in broken.body["error"]

    text = await client.request("POST", "/api/v1/reviews", data="hello")
    assert text.status == 415
    assert "application/json or multipart/form-data" in text.body["error"]

    form = aiohttp.FormData()
    form.add_field("meta", json.dumps(review_body("no-image")), content_type="application/json")
    missing = await client.request("POST", "/api/v1/reviews", data=form)
    assert missing.status == 400
    assert missing.body["error"] == "invalid review: missing multipart part image"

    form = aiohttp.FormData()
    form.add_field("meta", "{", content_type="application/json")
    form.add_field("image", jpeg(), content_type="image/jpeg", filename="frame.jpg")
    invalid_meta = await client.request("POST", "/api/v1/reviews", data=form)
    assert invalid_meta.status == 400


async def test_an_image_over_the_limit_is_a_413_as_json_or_multipart(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, max_image_mb=1)
    real = jpeg()
    big = real + bytes(1024 * 1024 + 1 - len(real))  # a readable JPEG, padded past the limit

    as_json = await client.submit(review_body("big-json", image=big))
    assert as_json.status == 413
    assert as_json.body == {"error": "the image exceeds the limit of 1048576 bytes"}

    form = aiohttp.FormData()
    meta = review_body("big-multipart")
    del meta["image"]
    form.add_field("meta", json.dumps(meta), content_type="application/json")
    form.add_field("image", big, content_type="image/jpeg", filename="frame.jpg")
    as_multipart = await client.request("POST", "/api/v1/reviews", data=form)
    assert as_multipart.status == 413

    # Far beyond the limit the body is refused before it is parsed.
    huge = await client.submit(review_body("huge", image=big * 3))
    assert huge.status == 413
    assert "error" in huge.body

    # Exactly at the limit is fine.
    at_limit = await client.submit(review_body("at-limit", image=big[: 1024 * 1024]))
    assert at_limit.status == 202
    stats = await client.stats()
    assert stats["accepted"] == 1


async def test_a_full_queue_answers_429_with_retry_after(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    # The teacher holds nothing: the batch window keeps audits queued for a minute.
    client = await start_service(simulator.url, queue_limit=2, batch_window_ms=60_000)
    for number in range(2):
        await client.accepted(
            review_body(f"audit-{number}", camera=f"camera.{number}", reason="audit")
        )

    refused = await client.submit(review_body("one-too-many", camera="camera.9", reason="audit"))

    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "full" in refused.body["error"]
    stats = await client.stats()
    assert stats["refused"] == 1
    assert stats["queued"] == 2
    # The refused key was not stored: sending it again later is a fresh attempt, not a duplicate.
    assert (
        await client.submit(review_body("one-too-many", camera="camera.9", reason="audit"))
    ).status == 429


# --- Reading -------------------------------------------------------------------------------------


async def test_unknown_reviews_paths_and_methods_answer_json_errors(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    assert (await client.get("/api/v1/reviews/nope")).body == {"error": "no review nope"}
    assert (await client.get("/api/v1/reviews/nope/frame")).status == 404
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status == 404
    assert missing.body == {"error": "not found"}
    wrong_method = await client.request("DELETE", "/api/v1/stats")
    assert wrong_method.status == 405
    assert "error" in wrong_method.body
    for query in ({"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"limit": "1001"}):
        assert (await client.get("/api/v1/reviews", params=query)).status == 400


async def test_health_stats_metrics_and_openapi(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, teacher_concurrency=2)
    ids = {
        await client.accepted(review_body(f"k{n}", camera=f"camera.{n}", scene=scene))
        for n, scene in enumerate(("kitchen_empty_day", "garden_day", "smoke_hallway"))
    }
    await client.wait_settled(ids)

    health = await client.get("/api/v1/health")
    assert health.status == 200
    database_id = health.body.pop("database_id")
    free = health.body.pop("storage_free_bytes")
    assert free > 0
    # One teacher host, the default pool: it did the three reviews.
    assert health.body.pop("teachers") == [
        {
            "url": simulator.url,
            "model": "gemma4:26b",
            "status": "reachable",
            "error": None,
            "breaker": "closed",
            "in_flight": 0,
            "concurrency": 2,
            "weight": 1,
            "reviewed": 3,
            "moved": 0,
            "notes": [],
        }
    ]
    assert health.body == {
        "status": "ok",
        "reasons": [],
        "teacher": "reachable",
        "teacher_error": None,
        "breaker": "closed",
        "storage": "ok",
        "storage_needed_bytes": 2 * 20 * 8 * 1024 * 1024 + 16 * 1024 * 1024,
        "queue_depth": 0,
        "version": __version__,
        "notes": [],  # the simulator is a current Ollama with a vision teacher
    }
    assert len(database_id) == 32

    stats = await client.stats()
    assert stats["processed"] == 3
    assert stats["queue_depth"] == {
        "safety": 0,
        "student_error": 0,
        "low_confidence": 0,
        "temporal": 0,
        "audit": 0,
    }
    assert 0 < stats["teacher_latency_ms"]["p50"] <= stats["teacher_latency_ms"]["p95"]
    assert 0 <= stats["agreement_rate"] <= 1

    metrics = await client.get("/metrics")
    assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = metrics.body.decode()
    assert 'vision_tutor_reviews_total{outcome="processed"} 3' in text
    assert 'vision_tutor_queue_depth{reason="safety"} 0' in text
    assert "vision_tutor_teacher_up 1" in text
    assert re.search(r'vision_tutor_teacher_latency_ms\{quantile="0.95"\} [\d.]+', text)
    assert "vision_tutor_agreement_rate" in text

    spec = await client.get("/api/v1/openapi.json")
    assert spec.body == build_spec()
    assert spec.body["info"]["version"] == __version__


def test_the_committed_openapi_document_is_up_to_date() -> None:
    committed = json.loads((ADDON / "openapi.json").read_text())
    assert committed == build_spec(), "regenerate: python -m vision_tutor_teacher.api.openapi"


def test_the_openapi_document_covers_every_route() -> None:
    spec = build_spec()
    concrete = {"{version}": "v1", "{job_id}": "some-id", "{id}": "some-id"}
    documented = {
        (method.upper(), re.sub(r"\{\w+\}", lambda m: concrete[m.group(0)], path))
        for path, operations in spec["paths"].items()
        for method in operations
    }
    assert documented == set(API_ROUTES)
    assert spec["components"]["schemas"]["ReviewRequest"]["properties"]["contract"]
    assert OBSERVATION_SCHEMA["required"] == [
        "summary",
        "observations",
        "safety_flags",
        "confidence",
    ]


async def test_the_page_names_cameras_and_says_what_the_agreement_rests_on(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    named = await client.accepted(
        review_body("named", camera="camera.kitchen_2", camera_name="Kitchen <east>")
    )
    unnamed = await client.accepted(review_body("unnamed", camera="camera.garage"))
    await client.wait_settled({named, unnamed})
    assert (await client.review(named))["camera_name"] == "Kitchen <east>"
    assert (await client.review(unnamed))["camera_name"] == ""

    html = (await client.get("/")).body.decode()
    # The name the integration sent, with the entity id beside it; an older client's review
    # shows the entity id alone.
    assert 'Kitchen &lt;east&gt;<br><span class="muted">camera.kitchen_2</span>' in html
    assert "<td>camera.garage<br>" in html
    # No raw labels: what the agreement rests on, in words.
    assert "flags_and_summary" not in html
    assert re.search(r"on the flags and the summary, summaries \d{1,3}% alike", html)


async def test_the_page_shows_the_queue_verdicts_and_dead_letters(
    start_service: StartService, simulator: RunningSimulator, tmp_path: Path
) -> None:
    client = await start_service(simulator.url)
    review_id = await client.accepted(review_body("page-1", camera="camera.<b>porch</b>"))
    await client.wait_settled({review_id})

    page = await client.get("/")
    html = page.body.decode()
    assert page.headers["Content-Type"].startswith("text/html")
    assert "camera.&lt;b&gt;porch&lt;/b&gt;" in html  # escaped, never markup
    assert f'src="frames/{review_id}.jpg"' in html
    thumbnail = await client.get(f"/frames/{review_id}.jpg")
    assert thumbnail.status == 200
    assert thumbnail.body == jpeg()
