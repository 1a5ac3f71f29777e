"""Durability: the service runs as a subprocess from the add-on folder, is killed with SIGKILL
mid-work and restarted on the same data directory; every accepted review completes once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from simulator.server import run_simulator
from tests.addon.conftest import (
    EventStream,
    SpawnService,
    review_body,
    verdicts_for,
    write_options,
)

TEACHER = "gemma4:26b"
REASONS = ("safety", "student_error", "low_confidence", "temporal", "audit")


async def submit_all(
    session: aiohttp.ClientSession, url: str, keys: list[str]
) -> dict[str, tuple[int, str]]:
    async def one(number: int, key: str) -> tuple[str, tuple[int, str]]:
        body = review_body(key, camera=f"camera.{number % 7}", reason=REASONS[number % 5])
        async with session.post(f"{url}/api/v1/reviews", json=body) as response:
            data = await response.json()
            return key, (response.status, data.get("id", ""))

    return dict(await asyncio.gather(*(one(n, key) for n, key in enumerate(keys))))


async def open_stream(session: aiohttp.ClientSession, url: str, after: int) -> EventStream:
    response = await session.get(
        f"{url}/api/v1/events",
        params={"after": str(after)},
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
    )
    assert response.status == 200
    return EventStream(response)


async def test_every_accepted_review_completes_exactly_once_across_a_kill(
    spawn_service: SpawnService, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    # Slow enough (about 40 ms a review) that reviews are with the teacher when the kill comes.
    async with run_simulator(time_scale=0.05, seed=11) as teacher:
        options = write_options(
            tmp_path / "options.json",
            teacher.url,
            teacher_concurrency=2,
            queue_limit=1000,
        )
        first = await spawn_service(options, data_dir)
        token = (data_dir / "token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            before = await submit_all(session, first.url, [f"before-{n}" for n in range(40)])
            assert {status for status, _ in before.values()} == {202}
            stream = await open_stream(session, first.url, 0)
            await stream.until(lambda events: sum(e.type == "verdict" for e in events) >= 3)
            stream.response.close()

            first.process.kill()  # SIGKILL: no shutdown code runs
            assert await first.wait() == -9

            second = await spawn_service(options, data_dir)
            repeats = await submit_all(session, second.url, [f"before-{n}" for n in range(5)])
            after = await submit_all(session, second.url, [f"after-{n}" for n in range(10)])

            accepted = {review_id for _, review_id in (*before.values(), *after.values())}
            # Retrying a key the first process accepted finds the same review, not a new one.
            assert {status for status, _ in repeats.values()} == {200}
            assert {review_id for _, review_id in repeats.values()} <= accepted
            assert len(accepted) == 50

            final = {"done", "failed", "shed", "superseded"}
            log_stream = await open_stream(session, second.url, 0)

            def all_done(events: list) -> bool:
                last = {e.data["review_id"]: e.data["status"] for e in events if e.type == "review"}
                return set(last) >= accepted and all(last[i] in final for i in accepted)

            events = await log_stream.until(all_done, within_s=60)
            log_stream.response.close()

            for review_id in accepted:
                async with session.get(f"{second.url}/api/v1/reviews/{review_id}") as response:
                    review = await response.json()
                assert review["status"] == "done", review

        second.process.terminate()
        assert await second.wait() == 0
        served = teacher.stats.models[TEACHER].served

    verdicts = verdicts_for(events, accepted)
    assert all(len(found) == 1 for found in verdicts.values()), "one verdict per review"
    assert [e.seq for e in events] == sorted({e.seq for e in events}), "ordered, no repeats"
    interrupted = {
        e.data["review_id"]
        for e in events
        if e.type == "review" and e.data["error"] == "interrupted by a restart"
    }
    assert interrupted, "the kill came while reviews were with the teacher"
    assert served >= len(accepted)  # at least once: interrupted reviews were asked again
    assert any("Re-queued" in line for line in second.log)
