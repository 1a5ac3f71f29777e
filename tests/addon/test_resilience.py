"""The service heals itself: a full disk, a teacher failing every review, owner-only files.

Everything is observed through the HTTP API of the real service, with the simulator as teacher
and, for the full disk, a small real tmpfs as the data directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from pathlib import Path
import shutil
import stat
import subprocess
from typing import Any

import pytest

from simulator.profiles import Faults
from simulator.server import RunningSimulator
from tests.addon.conftest import WAIT_S, AddonClient, StartService, jpeg, review_body

TEACHER = "gemma4:26b"
DISK_MB = 96
"""The tmpfs: room for the service, and more than it needs free with `SMALL_FRAMES`."""
SMALL_FRAMES: dict[str, Any] = {
    "max_image_mb": 1,
    "queue_limit": 20,
    "storage_check_s": 0.1,
    "storage_retry_s": 0.05,
    "restart_first_s": 0.05,
    "restart_max_s": 0.2,
    "restart_stable_s": 0.2,
}
"""A full queue of the largest frames fits the tmpfs (the service wants 56 MB free)."""


async def health_until(
    client: AddonClient, done: Callable[[dict[str, Any]], bool], within_s: float = WAIT_S
) -> dict[str, Any]:
    """Poll the health endpoint until `done(health)`; that health."""
    async with asyncio.timeout(within_s):
        while True:
            health = (await client.get("/api/v1/health")).body
            if done(health):
                return dict(health)
            await asyncio.sleep(0.05)


# --- A full disk ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> AsyncIterator[Path] | Any:
    """A tmpfs of `DISK_MB`; the test is skipped (saying why) only when it cannot be mounted."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the disk is full; the file (delete it to free the space)."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        # Big writes, then page-sized ones for the last partial megabyte: not a page is left.
        for size in (1024 * 1024, 4096):
            with contextlib.suppress(OSError):
                while handle.write(b"\0" * size) == size:
                    pass
    assert shutil.disk_usage(directory).free < 4096
    return filler


async def test_a_full_disk_answers_507_loses_nothing_and_resumes_without_a_restart(
    small_disk: Path, start_service: StartService, simulator: RunningSimulator
) -> None:
    # The teacher takes its time, so a review is with it when the disk fills up.
    simulator.set_faults(TEACHER, Faults(stall_s=1.0))
    client = await start_service(simulator.url, data_dir=small_disk / "data", **SMALL_FRAMES)
    frame = jpeg("kitchen_empty_day", width=1600)
    accepted = [
        await client.accepted(review_body(f"before-{n}", camera=f"camera.{n}", image=frame))
        for n in range(3)
    ]
    filler = fill(small_disk)

    refused: dict[str, Any] | None = None
    for n in range(60):
        reply = await client.submit(
            review_body(f"during-{n}", camera=f"camera.d{n}", reason="safety", image=frame)
        )
        if reply.status == 507:
            refused = reply.body
            assert reply.headers["Content-Type"].startswith("application/json")
            break
        assert reply.status == 202, reply.body  # room was left in the log: it is kept
        accepted.append(reply.body["id"])
    assert refused is not None, "the full disk never refused a review"
    assert refused["error"].startswith("insufficient storage")

    health = await health_until(client, lambda h: h["storage"] == "failing")
    assert health["status"] == "degraded"
    (reason,) = [r for r in health["reasons"] if r.startswith("insufficient storage")]
    assert "needs at least 56 MB free" in reason
    # Reads go on; what was accepted is all still there.
    assert (await client.get("/api/v1/reviews")).status == 200
    for review_id in accepted:
        assert (await client.review(review_id))["status"] in ("queued", "in_progress")

    filler.unlink()
    simulator.reset_faults()
    events = await client.wait_settled(set(accepted), within_s=60)

    verdicts = [e.data["review_id"] for e in events if e.type == "verdict"]
    assert sorted(verdicts) == sorted(accepted)  # each exactly once
    for review_id in accepted:
        assert (await client.review(review_id))["status"] == "done"
    health = await health_until(client, lambda h: h["status"] == "ok")
    assert health["storage"] == "ok"
    assert health["reasons"] == []
    # And new reviews are taken again.
    again = await client.accepted(review_body("after", camera="camera.after", image=frame))
    await client.wait_settled({again})
    assert "vision_tutor_storage_failing 0" in (await client.get("/metrics")).body.decode()


# --- A teacher that fails every review -----------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "options", "error"),
    [
        (Faults(error_rate=1.0), {}, "the teacher answered 500"),
        (Faults(stall_s=2.0), {"teacher_timeout_s": 0.1}, "did not answer within 0.1 s"),
    ],
    ids=["errors", "too-slow"],
)
async def test_a_teacher_failing_every_review_holds_the_queue_then_catches_up(
    start_service: StartService,
    simulator: RunningSimulator,
    faults: Faults,
    options: dict[str, Any],
    error: str,
) -> None:
    simulator.set_faults(TEACHER, faults)
    client = await start_service(
        simulator.url,
        max_attempts=2,
        # As in production, a failed review waits longer than a failure takes, so the next
        # attempt goes to another review (the defaults: 2 s against a 120 s timeout).
        retry_base_s=1.0,
        retry_max_s=2.0,
        breaker_first_probe_s=0.05,
        breaker_max_probe_s=0.2,
        **options,
    )
    ids = {
        await client.accepted(review_body(f"held-{n}", camera=f"camera.{n}", reason=reason))
        for n, reason in enumerate(["safety", "low_confidence", "audit"] * 4)
    }

    health = await health_until(client, lambda h: h["breaker"] != "closed")
    assert health["status"] == "degraded"
    (reason,) = [r for r in health["reasons"] if r.startswith("circuit breaker open")]
    assert error in reason
    assert "vision_tutor_breaker_open 1" in (await client.get("/metrics")).body.decode()
    # While open it keeps probing with real reviews; none of them spends an attempt.
    chats = simulator.stats.models[TEACHER].requests
    async with asyncio.timeout(WAIT_S):
        while simulator.stats.models[TEACHER].requests < chats + 3:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    stats = await client.stats()
    assert stats["failed"] == 0
    for review_id in ids:
        review = await client.review(review_id)
        assert review["status"] in ("queued", "in_progress")
        assert review["attempts"] <= 1

    simulator.reset_faults()
    events = await client.wait_settled(ids, within_s=30)

    assert {e.data["review_id"] for e in events if e.type == "verdict"} == ids
    assert (await client.stats())["failed"] == 0
    health = await health_until(client, lambda h: h["status"] == "ok")
    assert health["breaker"] == "closed"


async def test_one_bad_review_spends_its_attempts_without_opening_the_breaker(
    start_service: StartService, simulator: RunningSimulator
) -> None:
    simulator.set_faults(TEACHER, Faults(error_rate=1.0))
    client = await start_service(simulator.url, max_attempts=4)
    review_id = await client.accepted(review_body("alone"))

    await client.wait_settled({review_id})

    review = await client.review(review_id)
    assert (review["status"], review["attempts"]) == ("failed", 4)
    health = (await client.get("/api/v1/health")).body
    assert (health["status"], health["breaker"]) == ("ok", "closed")


# --- Owner-only files ----------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_data_directory_is_owner_only_on_every_start(
    tmp_path: Path, start_service: StartService, simulator: RunningSimulator
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "token").write_text("a-token-from-an-old-version\n")
    (data / "token").chmod(0o644)

    client = await start_service(simulator.url, data_dir=data)
    await client.wait_settled({await client.accepted(review_body("private"))})

    assert client.token == "a-token-from-an-old-version"
    assert mode(data) == 0o700
    files = sorted(path.name for path in data.iterdir())
    assert {"vision_tutor.db", "token", "lock"} <= set(files)
    assert {name: mode(data / name) for name in files} == dict.fromkeys(files, 0o600)
