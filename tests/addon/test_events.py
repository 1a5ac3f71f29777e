"""The event stream: ordered, resumable from any cursor, kept open by heartbeats."""

from __future__ import annotations

from pathlib import Path

from simulator.server import RunningSimulator
from tests.addon.conftest import Event, StartService, review_body, verdicts_for


def keys(events: list[Event]) -> list[tuple[int, str]]:
    return [(event.seq, event.type) for event in events]


async def test_a_reconnecting_client_gets_every_later_event_exactly_once_in_order(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, teacher_concurrency=2)
    ids = {
        await client.accepted(review_body(f"stream-{n}", camera=f"camera.{n}", reason=reason))
        for n, reason in enumerate(("audit", "safety", "temporal", "low_confidence"))
    }
    everything = await client.wait_settled(ids)
    # Let the statistics settle too, so the log stops growing.
    stats_stream = await client.events(everything[-1].seq)
    await stats_stream.until(lambda events: any(e.type == "stats" for e in events))
    full = await client.events(0)
    last_seq = stats_stream.events[-1].seq
    log = await full.until(lambda events: bool(events) and events[-1].seq >= last_seq)

    assert [event.seq for event in log] == list(range(1, last_seq + 1))
    assert {event.type for event in log} == {"review", "verdict", "stats"}
    assert all(len(found) == 1 for found in verdicts_for(log, ids).values())

    for cursor in (0, 3, len(log) // 2, last_seq - 1):
        resumed = await client.events(cursor)
        tail = await resumed.until(lambda events: bool(events) and events[-1].seq >= last_seq)
        assert keys(tail) == keys(log[cursor:])

    # EventSource reconnects with its original URL and the Last-Event-ID header: the header wins.
    by_header = await client.events(0, headers={"Last-Event-ID": str(last_seq - 2)})
    tail = await by_header.until(lambda events: bool(events) and events[-1].seq >= last_seq)
    assert keys(tail) == keys(log[last_seq - 2 :])
    assert by_header.retry_ms == 2000


async def test_events_carry_what_the_integration_needs(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    review_id = await client.accepted(
        review_body("needs", camera="camera.hall", reason="safety", scene="smoke_hallway")
    )
    events = await client.wait_settled({review_id})

    queued = events[0]
    assert queued.type == "review"
    assert queued.data == {
        "review_id": review_id,
        "idempotency_key": "needs",
        "camera": "camera.hall",
        "reason": "safety",
        "priority": 5,
        "status": "queued",
        "attempts": 0,
        "error": None,
        "superseded_by": None,
    }
    (verdict,) = [event for event in events if event.type == "verdict"]
    assert set(verdict.data) == {
        "review_id",
        "idempotency_key",
        "camera",
        "reason",
        "verdict",
        "agrees_with_student",
        "agreement",
        "teacher_model",
        "latency_ms",
    }
    assert set(verdict.data["verdict"]) >= {"summary", "observations", "safety_flags", "confidence"}
    assert events[-1].type == "review"
    assert events[-1].data["status"] == "done"

    stats_stream = await client.events(events[-1].seq)
    (stats,) = await stats_stream.until(lambda seen: any(e.type == "stats" for e in seen))
    assert stats.data["processed"] == 1
    assert set(stats.data["queue_depth"]) == {
        "safety",
        "student_error",
        "low_confidence",
        "temporal",
        "audit",
    }


async def test_shed_and_superseded_reviews_are_announced_with_their_keys(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    # A long batch window keeps non-safety reviews queued while the test fills the queue.
    client = await start_service(simulator.url, queue_limit=2, batch_window_ms=60_000)
    stream = await client.events(0)
    await client.accepted(review_body("audit-old", camera="camera.a", reason="audit"))
    await client.accepted(review_body("burst-1", camera="camera.b", reason="temporal"))
    await client.accepted(review_body("burst-2", camera="camera.b", reason="temporal"))
    await client.accepted(review_body("low", camera="camera.c", reason="low_confidence"))

    events = await stream.until(
        lambda seen: {"shed", "superseded"} <= {e.data.get("status") for e in seen}
    )
    dropped = {
        e.data["idempotency_key"]: e.data
        for e in events
        if e.data.get("status") in {"shed", "superseded"}
    }
    assert dropped["audit-old"]["status"] == "shed"
    assert dropped["burst-1"]["status"] == "superseded"
    assert dropped["burst-1"]["superseded_by"] is not None


async def test_a_stream_without_a_cursor_starts_with_the_next_event(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, batch_window_ms=60_000)
    await client.accepted(review_body("before", camera="camera.a"))
    stream = await client.events(after=None)
    await client.accepted(review_body("after", camera="camera.b"))

    first = await stream.next()
    assert first.data["idempotency_key"] == "after"


async def test_an_idle_stream_sends_heartbeats(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url, heartbeat_s=0.05)
    stream = await client.events(0)
    await stream.heartbeat()
    await stream.heartbeat()
    assert stream.heartbeats >= 2
    assert stream.events == []


async def test_a_malformed_cursor_is_a_400(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    client = await start_service(simulator.url)
    for params, headers in (
        ({"after": "soon"}, {}),
        ({"after": "-3"}, {}),
        ({}, {"Last-Event-ID": "x"}),
    ):
        reply = await client.get("/api/v1/events", params=params, headers=headers)
        assert reply.status == 400
        assert reply.body == {"error": "the cursor must be an integer from 0 to 2^63 - 1"}


async def test_the_stream_says_which_database_it_reads_and_how_far_it_goes(
    start_service: StartService, simulator: RunningSimulator, tmp_path: Path
) -> None:
    data = tmp_path / "first"
    client = await start_service(simulator.url, data_dir=data)
    review_id = await client.accepted(review_body("hello-1", camera="camera.hall"))
    await client.wait_settled({review_id})
    database_id = (await client.get("/api/v1/health")).body["database_id"]

    stream = await client.events(0)
    log = await stream.until(lambda events: any(e.type == "verdict" for e in events))
    assert stream.hello is not None
    assert stream.hello["database_id"] == database_id
    assert stream.hello["last_seq"] >= log[-1].seq
    assert stream.response.headers["X-Vision-Tutor-Database"] == database_id
    # A cursor far ahead gets the same hello, which shows it is above the log.
    ahead = await client.events(10**6)
    await ahead.heartbeat()
    assert ahead.hello is not None
    assert ahead.hello["last_seq"] < 10**6

    # Another database (a deleted and recreated one is no different) has another id.
    other = await start_service(simulator.url, data_dir=tmp_path / "second")
    other_id = (await other.get("/api/v1/health")).body["database_id"]
    assert other_id != database_id
    fresh = await other.events(0)
    await fresh.heartbeat()
    assert fresh.hello == {"database_id": other_id, "last_seq": 0}
