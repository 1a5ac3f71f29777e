"""The outbox's backoff and order, and reading the teacher's event stream (no Home Assistant)."""

from __future__ import annotations

from collections.abc import AsyncIterator
import random

from custom_components.vision_tutor.outbox import (
    BACKOFF_BASE_S,
    BACKOFF_MAX_S,
    JITTER,
    OutboxEntry,
    backoff,
    least_important,
)
from custom_components.vision_tutor.teacher import StreamEvent, parse_sse


def test_backoff_doubles_to_its_ceiling_with_jitter_around_it() -> None:
    rng = random.Random(3)
    delays = [backoff(attempt, rng) for attempt in range(1, 12)]
    assert BACKOFF_BASE_S * (1 - JITTER) <= delays[0] <= BACKOFF_BASE_S * (1 + JITTER)
    assert all(delay <= BACKOFF_MAX_S * (1 + JITTER) for delay in delays)
    assert delays[-1] >= BACKOFF_MAX_S * (1 - JITTER)
    # Two cameras failing together do not retry in step.
    assert backoff(4, random.Random(1)) != backoff(4, random.Random(2))


def _entry(key: str, priority: int, at: float) -> OutboxEntry:
    return OutboxEntry(key, "camera.x", priority, at, {}, {})


def test_a_full_outbox_gives_up_the_least_important_oldest_escalation() -> None:
    entries = [_entry("safety", 5, 1), _entry("audit-new", 1, 3), _entry("audit-old", 1, 2)]
    assert least_important(entries).key == "audit-old"
    assert least_important(entries[:1]).key == "safety"


async def _lines(text: str) -> AsyncIterator[bytes]:
    for line in text.splitlines(keepends=True):
        yield line.encode()


async def test_the_stream_reads_the_hello_without_an_id_and_skips_what_is_not_json() -> None:
    body = (
        "retry: 2000\n"
        'event: hello\ndata: {"database_id": "abc", "last_seq": 7}\n\n'
        ": heartbeat\n\n"
        'id: 8\nevent: verdict\ndata: {"review_id": "r"}\n\n'
        "id: 9\nevent: review\ndata: not json\n\n"
        'event: review\ndata: {"no": "id"}\n\n'
    )
    events = [event async for event in parse_sse(_lines(body))]
    assert events == [
        StreamEvent(None, "hello", {"database_id": "abc", "last_seq": 7}),
        StreamEvent(8, "verdict", {"review_id": "r"}),
    ]
