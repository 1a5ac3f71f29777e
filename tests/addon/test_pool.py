"""The teacher pool: options, the dispatch rule, and the real service with several hosts.

The hosts are small scripted Ollama servers on loopback, so a test decides when each answers,
fails, hangs up or lacks its model; the service, queue and database are the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
import json
import re
from typing import Any

from aiohttp import web
import pytest

from tests.addon.conftest import AddonClient, StartService, review_body
from vision_tutor_teacher.options import Options, OptionsError, TeacherHost, parse_options
from vision_tutor_teacher.reviews.pool import HostLoad, pick

TEACHER = "gemma4:26b"
ANSWER = {
    "summary": "An empty kitchen in daylight.",
    "observations": ["fridge"],
    "safety_flags": [],
    "confidence": 0.9,
}


# --- Options --------------------------------------------------------------------------------------


def test_the_single_teacher_options_are_a_pool_of_one() -> None:
    options = Options(teacher_url="http://gpu1:11434", teacher_concurrency=2)
    assert options.teacher_hosts == (TeacherHost("http://gpu1:11434", TEACHER, 1, 2),)


def test_more_teacher_hosts_follow_the_first_with_its_defaults() -> None:
    options = parse_options(
        {
            "teacher_url": "http://gpu1:11434",
            "teacher_concurrency": 2,
            "teachers": [
                {"url": "http://gpu2:11434/", "weight": 5},
                {"url": "http://gpu3:11434", "model": "qwen2.5vl:32b", "concurrency": 4},
                {"url": "http://gpu1:11434"},  # the first host again: counted once
            ],
        }
    )
    assert options.teacher_hosts == (
        TeacherHost("http://gpu1:11434", TEACHER, 1, 2),
        TeacherHost("http://gpu2:11434", TEACHER, 5, 2),
        TeacherHost("http://gpu3:11434", "qwen2.5vl:32b", 1, 4),
    )


def test_a_pool_without_teacher_url_starts_with_its_first_host() -> None:
    options = parse_options(
        {"teachers": [{"url": "http://gpu2:11434", "model": "gemma4:31b"}, {"url": "http://b:1"}]}
    )
    assert (options.teacher_url, options.teacher_model) == ("http://gpu2:11434", "gemma4:31b")
    assert [host.url for host in options.teacher_hosts] == ["http://gpu2:11434", "http://b:1"]
    assert options.teacher_hosts[1].model == "gemma4:31b"


@pytest.mark.parametrize(
    ("teachers", "message"),
    [
        ([{"url": "gpu2:11434"}], "teachers.0.url: Value error, must be an http"),
        ([{"url": "http://gpu2:1", "weight": 0}], "teachers.0.weight: Input should be greater"),
        ([{"url": "http://gpu2:1", "concurrency": 65}], "teachers.0.concurrency: Input should"),
        ([{"model": "x"}], "teachers.0.url: Field required"),
    ],
)
def test_a_bad_teacher_host_is_named_in_the_error(
    teachers: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(OptionsError, match=re.escape(message)):
        parse_options({"teacher_url": "http://gpu1:11434", "teachers": teachers})


# --- The dispatch rule ----------------------------------------------------------------------------


def load(
    index: int, outstanding: int, concurrency: int = 1, weight: int = 1, **kw: Any
) -> HostLoad:
    return HostLoad(index, outstanding, concurrency, weight, kw.get("available", True))


def test_the_host_with_the_fewest_outstanding_for_its_concurrency_gets_the_review() -> None:
    # 1 of 4 is less loaded than 1 of 2, which is less than 0 of 1 only by count, not share.
    assert pick([load(0, 1, 2), load(1, 1, 4), load(2, 0, 1)]) == 2
    assert pick([load(0, 1, 2), load(1, 1, 4)]) == 1
    assert pick([load(0, 2, 4), load(1, 1, 2)]) == 0  # a tie goes to the earlier host


def test_a_tie_goes_to_the_higher_weight_then_the_earlier_host() -> None:
    assert pick([load(0, 0, weight=1), load(1, 0, weight=3)]) == 1
    assert pick([load(0, 0, weight=2), load(1, 0, weight=2)]) == 0


def test_full_and_unavailable_hosts_get_nothing() -> None:
    assert pick([load(0, 1, 1), load(1, 0, available=False)]) is None
    assert pick([load(0, 1, 1), load(1, 0, 1, available=False), load(2, 1, 2)]) == 2
    assert pick([]) is None


# --- Scripted hosts -------------------------------------------------------------------------------


type Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


@dataclass
class Host:
    """One scripted Ollama: records which camera each chat was about."""

    name: str
    url: str = ""
    cameras: list[str] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    """Chats wait for this (set: they answer at once)."""
    arrived: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    models: list[str] = field(default_factory=lambda: [TEACHER])
    capabilities: list[str] = field(default_factory=lambda: ["completion", "vision"])
    chat_status: int = 200
    down: bool = False
    """Answer every request 503 from the proxy in front (the probe sees a dead host)."""
    hang_up_next: bool = False


def camera_of(body: dict[str, Any]) -> str:
    match = re.search(r'«data:camera_name»"([^"]+)"', body["messages"][1]["content"])
    assert match is not None
    return match.group(1)


@contextlib.asynccontextmanager
async def scripted_host(name: str) -> AsyncIterator[Host]:
    host = Host(name)
    host.hold.set()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        camera = camera_of(body)
        if host.down:
            return web.json_response({"error": "host down"}, status=502)
        if host.hang_up_next:
            host.hang_up_next = False
            host.down = True  # killed mid-answer: nothing answers from now on
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        host.arrived.put_nowait(camera)
        await host.hold.wait()
        if host.chat_status != 200:
            return web.json_response({"error": "CUDA error"}, status=host.chat_status)
        host.cameras.append(camera)
        return web.json_response(
            {
                "model": TEACHER,
                "created_at": "2026-11-21T10:00:00Z",
                "message": {"role": "assistant", "content": json.dumps(ANSWER)},
                "done": True,
            }
        )

    async def tags(request: web.Request) -> web.Response:
        if host.down:
            return web.json_response({"error": "host down"}, status=502)
        return web.json_response({"models": [{"name": m, "model": m} for m in host.models]})

    async def show(request: web.Request) -> web.Response:
        return web.json_response(
            {"capabilities": host.capabilities, "details": {}, "model_info": {}}
        )

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"version": "0.24.0"})

    async def embed(request: web.Request) -> web.Response:
        return web.json_response({"model": "e", "embeddings": [[1.0, 0.0], [1.0, 0.0]]})

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    app.router.add_get("/api/tags", tags)
    app.router.add_post("/api/show", show)
    app.router.add_get("/api/version", version)
    app.router.add_post("/api/embed", embed)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield host
    finally:
        host.hold.set()
        await runner.cleanup()


@pytest.fixture
async def two_hosts(socket_enabled: None) -> AsyncIterator[tuple[Host, Host]]:
    async with scripted_host("a") as first, scripted_host("b") as second:
        yield first, second


async def start_pool(
    start_service: StartService, hosts: tuple[Host, ...], **options: Any
) -> AddonClient:
    first, *others = hosts
    teachers = options.pop("teachers", [{"url": host.url} for host in others])
    return await start_service(first.url, teachers=teachers, **options)


async def health(client: AddonClient) -> dict[str, Any]:
    reply = await client.get("/api/v1/health")
    assert reply.status == 200
    body: dict[str, Any] = reply.body
    return body


async def next_arrival(host: Host) -> str:
    async with asyncio.timeout(10):
        return await host.arrived.get()


# --- The service with a pool ----------------------------------------------------------------------


async def test_reviews_spread_over_the_hosts_and_the_heavier_host_goes_first(
    start_service: StartService, two_hosts: tuple[Host, Host]
) -> None:
    light, heavy = two_hosts
    client = await start_pool(start_service, two_hosts, teachers=[{"url": heavy.url, "weight": 3}])
    # One review on an idle pool: the heavier host takes it.
    first = await client.accepted(review_body("one", camera="camera.one"))
    await client.wait_settled({first})
    assert (light.cameras, heavy.cameras) == ([], ["camera.one"])

    # Both held: two reviews are with the two hosts at once, one each.
    heavy.arrived = asyncio.Queue()
    light.hold.clear()
    heavy.hold.clear()
    ids = {await client.accepted(review_body(f"k{n}", camera=f"camera.c{n}")) for n in range(2)}
    arrivals = {await next_arrival(light), await next_arrival(heavy)}
    assert arrivals == {"camera.c0", "camera.c1"}
    hosts = {h["url"]: h for h in (await health(client))["teachers"]}
    assert (hosts[light.url]["in_flight"], hosts[heavy.url]["in_flight"]) == (1, 1)
    light.hold.set()
    heavy.hold.set()
    await client.wait_settled(ids)

    body = await health(client)
    assert body["status"] == "ok"
    assert [(h["url"], h["status"], h["reviewed"]) for h in body["teachers"]] == [
        (light.url, "reachable", 1),
        (heavy.url, "reachable", 2),
    ]
    metrics = (await client.get("/metrics")).body.decode()
    assert f'vision_tutor_teacher_host_reviews_total{{host="{heavy.url}"}} 2' in metrics
    assert f'vision_tutor_teacher_host_up{{host="{light.url}"}} 1' in metrics
    page = (await client.get("/")).body.decode()
    assert "<h2>Teacher hosts</h2>" in page
    assert f"<td>{heavy.url}</td><td>{TEACHER}</td>" in page


async def test_the_priority_order_holds_across_the_pool(
    start_service: StartService, two_hosts: tuple[Host, Host]
) -> None:
    first, second = two_hosts
    client = await start_pool(start_service, two_hosts)
    first.hold.clear()
    second.hold.clear()
    busy = {
        await client.accepted(review_body(f"busy{n}", camera=f"camera.busy{n}", reason="audit"))
        for n in range(2)
    }
    assert {await next_arrival(first), await next_arrival(second)} == {
        "camera.busy0",
        "camera.busy1",
    }
    # Both hosts busy: an audit, a low-confidence and a safety review wait, oldest first.
    waiting = {
        await client.accepted(review_body("audit", camera="camera.audit", reason="audit")),
        await client.accepted(review_body("low", camera="camera.low", reason="low_confidence")),
        await client.accepted(review_body("safe", camera="camera.safety", reason="safety")),
    }
    # Whichever host frees a slot first takes the most important waiting review.
    second.hold.set()
    order = [await next_arrival(second) for _ in range(3)]
    assert order == ["camera.safety", "camera.low", "camera.audit"]
    first.hold.set()
    await client.wait_settled(busy | waiting)


async def test_a_host_that_fails_every_review_opens_its_own_breaker_only(
    start_service: StartService, two_hosts: tuple[Host, Host]
) -> None:
    broken, working = two_hosts
    broken.chat_status = 500
    # A failed review waits half a second before its retry, so the broken host's next failure
    # is another review's (the breaker opens on failures across two reviews).
    client = await start_pool(
        start_service,
        two_hosts,
        breaker_failures=2,
        breaker_first_probe_s=30.0,
        max_attempts=2,
        retry_base_s=0.5,
        retry_max_s=1.0,
    )
    ids = {await client.accepted(review_body(f"k{n}", camera=f"camera.c{n}")) for n in range(6)}
    await client.wait_settled(ids)

    reviews = [await client.review(review_id) for review_id in ids]
    # The broken host's failures were the host's, not the reviews': no review was
    # dead-lettered, although two failures would have used up an attempt budget of 2.
    assert {review["status"] for review in reviews} == {"done"}
    assert sorted(working.cameras) == sorted(f"camera.c{n}" for n in range(6))
    body = await health(client)
    by_url = {h["url"]: h for h in body["teachers"]}
    assert (by_url[broken.url]["breaker"], by_url[working.url]["breaker"]) == ("open", "closed")
    assert (body["status"], body["teacher"], body["breaker"]) == ("degraded", "reachable", "closed")
    assert any(
        reason.startswith(f"teacher {broken.url}: circuit breaker open")
        for reason in body["reasons"]
    )
    metrics = (await client.get("/metrics")).body.decode()
    assert f'vision_tutor_teacher_host_breaker_open{{host="{broken.url}"}} 1' in metrics
    assert f'vision_tutor_teacher_host_breaker_open{{host="{working.url}"}} 0' in metrics


@pytest.mark.parametrize(
    ("lack", "said"),
    [
        ("model", "has no model 'gemma4:26b' (ollama pull it)"),
        ("vision", "cannot see images"),
    ],
)
async def test_a_host_without_the_model_or_vision_is_reported_and_skipped(
    start_service: StartService, two_hosts: tuple[Host, Host], lack: str, said: str
) -> None:
    lacking, working = two_hosts
    if lack == "model":
        lacking.models = ["gemma3:270m"]
    else:
        lacking.capabilities = ["completion"]
    client = await start_pool(start_service, two_hosts, teacher_concurrency=2)
    ids = {await client.accepted(review_body(f"k{n}", camera=f"camera.c{n}")) for n in range(4)}
    await client.wait_settled(ids)

    assert (len(lacking.cameras), len(working.cameras)) == (0, 4)
    body = await health(client)
    by_url = {h["url"]: h for h in body["teachers"]}
    assert by_url[lacking.url]["status"] == "unreachable"
    assert said in by_url[lacking.url]["error"]
    assert by_url[working.url]["error"] is None
    assert (body["status"], body["teacher"], body["teacher_error"]) == (
        "degraded",
        "reachable",
        None,
    )
    assert any(
        reason.startswith(f"teacher {lacking.url}: unavailable") for reason in body["reasons"]
    )


async def test_a_host_gone_mid_review_hands_it_to_another_without_spending_an_attempt(
    start_service: StartService, two_hosts: tuple[Host, Host]
) -> None:
    working, dying = two_hosts
    dying.hang_up_next = True
    working.hold.clear()
    client = await start_pool(start_service, (working, dying), max_attempts=1)
    # The working host is busy with the first review, so the second goes to the dying one.
    held = await client.accepted(review_body("held", camera="camera.held"))
    assert await next_arrival(working) == "camera.held"
    moved = await client.accepted(review_body("moved", camera="camera.moved"))
    body = await health(client)
    while {h["url"]: h for h in body["teachers"]}[dying.url]["status"] != "unreachable":
        await asyncio.sleep(0.02)
        body = await health(client)
    working.hold.set()
    events = await client.wait_settled({held, moved})

    review = await client.review(moved)
    # One attempt allowed, and it was not spent on the host that died with the review.
    assert (review["status"], review["attempts"]) == ("done", 1)
    assert working.cameras == ["camera.held", "camera.moved"]
    notes = [e.data["error"] for e in events if e.type == "review" and e.data["error"]]
    assert any(f"not counted: the teacher at {dying.url} stopped answering" in n for n in notes)
    assert {h["url"]: h for h in body["teachers"]}[dying.url]["moved"] == 1
