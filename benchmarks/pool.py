"""The pool benchmark: teacher and student throughput over 1, 2 and 4 Ollama hosts, and a teacher
host killed (kill -9) in the middle of a burst.

    python -m benchmarks.pool --hosts 1,2,4 --out DIR [--time-scale 1] [--reviews 48]
                              [--cameras 8] [--frames-per-camera 30]

Every host is its own simulator process (``python -m simulator --num-parallel 1``): it answers
one request at a time and queues the others, as Ollama does beyond ``OLLAMA_NUM_PARALLEL``. Its
answers take the scripted models' real-time latencies (the teacher about 0.8 s, the student
about 0.11 s, each with jitter) times ``--time-scale``. The latencies are sleeps: **every figure
here comes from the simulator's scripted models with scaled latency**, and measures how the
work is dispatched over the hosts, not how fast a model is. The machine this ran on has two
cores shared by every host, the add-on and the client, so the latency is kept well above the
CPU each request costs (decoding the frame, JSON, SQLite); with a much faster time scale the
cores, not the hosts, would be what runs out, and more hosts could not help.

1. **Teacher.** For each host count, the add-on's service (``python -m vision_tutor_teacher``,
   a fresh data directory) gets the hosts as its teacher pool (``teacher_url`` and ``teachers``,
   concurrency 1 each, the batch window off). The hosts' models are loaded first (Ollama loads a
   model on its first request). Then a burst of ``--reviews`` reviews is submitted through the
   HTTP API and read back on the event stream: reviews per second from the first 202 to the last
   verdict, and the 95th percentile of each review's time from its 202 to its verdict.
2. **Student.** For each host count, the integration's own student client and student pool
   (`custom_components.vision_tutor.student_pool`, the code an entry runs, without Home
   Assistant) serve ``--cameras`` cameras that each ask for ``--frames-per-camera`` frames one
   after the other: frames answered per second, and the 95th percentile of a frame's wait for
   its answer (its turn on the host included).
3. **Failover.** With the largest host count, a burst of reviews, and one teacher host's process
   gets SIGKILL once a third of the burst is reviewed, while it works on one. Every accepted
   review must end ``done`` with exactly one verdict: none lost, none twice, none dead-lettered.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import platform
import sys
import tempfile
import time
from typing import Any, Final

import aiohttp
import ollama

from benchmarks.queue import (
    FINAL,
    ROOT,
    Process,
    open_stream,
    percentile,
    review_json,
    spawn,
    start_service,
)
from custom_components.vision_tutor.contract import StudentError
from custom_components.vision_tutor.pipeline import StudentClient
from custom_components.vision_tutor.prompts import STUDENT_SYSTEM_PROMPT
from custom_components.vision_tutor.student_pool import PooledStudent, StudentPool, camera_load
from simulator.scenes import SceneLibrary

TEACHER: Final = "gemma4:26b"
STUDENT: Final = "gemma4:e2b"
EMBEDDING: Final = "embeddinggemma"
SCENES: Final = ("kitchen_empty_day", "garden_day", "porch_package", "smoke_hallway")
TARGETS: Final = {"2": 1.8, "4": 3.4}
"""Throughput with this many hosts, at least this many times one host's."""
KILL_AT_FRACTION: Final = 1 / 3
RUN_TIMEOUT_S: Final = 600.0


# --- Hosts --------------------------------------------------------------------------------------


async def start_hosts(count: int, time_scale: float) -> list[Process]:
    """`count` simulator processes, one request at a time each."""
    return list(
        await asyncio.gather(
            *(
                spawn(
                    [
                        "-m",
                        "simulator",
                        "--port",
                        "0",
                        "--num-parallel",
                        "1",
                        "--time-scale",
                        str(time_scale),
                        "--seed",
                        str(1000 + number),
                        "--log-level",
                        "WARNING",
                    ],
                    ROOT,
                    r"listening on (http://\S+)",
                    from_stdout=True,
                )
                for number in range(count)
            )
        )
    )


async def stop_hosts(hosts: Sequence[Process]) -> None:
    for host in hosts:
        await host.stop()


async def warm_up(urls: Sequence[str], models: Sequence[str]) -> None:
    """Load the models on every host (the first request to a model loads it), and have each
    host see a frame once: the simulator indexes its scene library on the first image, some
    1.5 s of CPU that would otherwise land in the measurement."""
    jpeg = frames()[0]

    async def one(url: str) -> None:
        client = ollama.AsyncClient(host=url)
        try:
            for model in models:
                if model == EMBEDDING:
                    await client.embed(model=model, input=["warm up"])
                else:
                    await client.chat(
                        model=model,
                        messages=[{"role": "user", "content": "warm up", "images": [jpeg]}],
                    )
        finally:
            await client._client.aclose()

    await asyncio.gather(*(one(url) for url in urls))


FRAME_WIDTH: Final = 320
"""Small frames: decoding a 768 px frame costs the simulator some 70 ms of CPU, which on two
cores shared by four hosts would be measured instead of the dispatch (the frame's size changes
nothing in where it is sent)."""


def frames() -> list[bytes]:
    library = SceneLibrary.default()
    return [library.jpeg(scene, width=FRAME_WIDTH) for scene in SCENES]


# --- Teacher ------------------------------------------------------------------------------------


@dataclass
class Burst:
    accepted: dict[str, float] = field(default_factory=dict)
    """Review id to when its 202 arrived (perf_counter)."""
    refused: Counter[int] = field(default_factory=Counter)
    verdicts: Counter[str] = field(default_factory=Counter)
    verdict_at: dict[str, float] = field(default_factory=dict)
    final: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    health: dict[str, Any] = field(default_factory=dict)
    """The add-on's health after the burst (its per-host counts)."""


async def submit_burst(
    session: aiohttp.ClientSession, url: str, count: int, tag: str, burst: Burst
) -> None:
    encoded = [base64.b64encode(jpeg).decode() for jpeg in frames()]
    pending = iter(range(count))

    async def worker() -> None:
        for number in pending:
            key = f"{tag}-{number}"
            async with session.post(
                f"{url}/api/v1/reviews",
                data=review_json(key, number, encoded),
                headers={"Content-Type": "application/json"},
            ) as response:
                body = await response.json()
            if response.status in (200, 202):
                burst.accepted[body["id"]] = time.perf_counter()
            else:
                burst.refused[response.status] += 1

    await asyncio.gather(*(worker() for _ in range(4)))


async def follow(
    session: aiohttp.ClientSession,
    url: str,
    burst: Burst,
    expected: int,
    progress: asyncio.Event | None = None,
) -> None:
    """Read the event stream until `expected` reviews are final; note verdicts and attempts."""
    stream = await open_stream(session, url, 0)
    try:
        while len(burst.final) < expected:
            _, kind, data = await stream.next()
            if kind not in ("verdict", "review"):
                continue  # statistics, the prompt lab
            review_id = str(data["review_id"])
            if kind == "verdict":
                burst.verdicts[review_id] += 1
                burst.verdict_at.setdefault(review_id, time.perf_counter())
                if progress is not None:
                    progress.set()
            elif kind == "review":
                burst.attempts[review_id] = data["attempts"]
                if data["status"] in FINAL:
                    burst.final[review_id] = data["status"]
                else:
                    burst.final.pop(review_id, None)
    finally:
        stream.response.close()


async def burst_on_pool(
    hosts: Sequence[Process], args: argparse.Namespace, tag: str, *, kill: Process | None = None
) -> tuple[Burst, float | None]:
    """The add-on with `hosts` as its teacher pool, a burst of reviews read back to the end;
    with `kill`, that host gets SIGKILL once a third of the burst is reviewed. The burst, and
    when the kill came (seconds into the burst)."""
    urls = [host.url for host in hosts]
    await warm_up(urls, (TEACHER, EMBEDDING))
    with tempfile.TemporaryDirectory(prefix="vision-tutor-pool-") as temporary:
        options = Path(temporary) / "options.json"
        options.write_text(
            json.dumps(
                {
                    "teacher_url": urls[0],
                    "teachers": [{"url": url} for url in urls[1:]],
                    "teacher_concurrency": 1,
                    "queue_limit": 10_000,
                    "batch_window_ms": 0,
                    "max_attempts": 5,
                    "stats_interval_s": 1.0,
                    "probe_interval_s": 2.0,
                    "log_level": "warning",
                }
            )
        )
        data_dir = Path(temporary) / "data"
        service = await start_service(options, data_dir)
        token = (data_dir / "token").read_text().strip()
        burst = Burst()
        killed_at: float | None = None
        try:
            async with aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {token}"}
            ) as session:
                progress = asyncio.Event()
                reading = asyncio.create_task(
                    follow(session, service.url, burst, args.reviews, progress)
                )
                started = time.perf_counter()
                submitting = asyncio.create_task(
                    submit_burst(session, service.url, args.reviews, tag, burst)
                )
                async with asyncio.timeout(RUN_TIMEOUT_S):
                    if kill is not None:
                        while len(burst.verdict_at) < args.reviews * KILL_AT_FRACTION:
                            progress.clear()
                            await progress.wait()
                        # A third reviewed: the host is working on one now (each host always
                        # has one while reviews wait). Killed mid-answer.
                        await kill.stop(kill=True)
                        killed_at = time.perf_counter() - started
                    await submitting
                    await reading
                async with session.get(f"{service.url}/api/v1/health") as response:
                    burst.health = await response.json()
        finally:
            await service.stop()
    return burst, killed_at


def by_host(burst: Burst) -> dict[str, int]:
    """Verdicts per teacher host, as the add-on's health counts them."""
    hosts = burst.health["teachers"]
    return {f"host {number}": host["reviewed"] for number, host in enumerate(hosts, start=1)}


async def teacher_run(count: int, args: argparse.Namespace) -> dict[str, Any]:
    hosts = await start_hosts(count, args.time_scale)
    try:
        burst, _ = await burst_on_pool(hosts, args, f"t{count}")
    finally:
        await stop_hosts(hosts)
    if burst.refused:
        raise RuntimeError(f"reviews refused: {dict(burst.refused)}")
    started = min(burst.accepted.values())
    ended = max(burst.verdict_at.values())
    waits = [(burst.verdict_at[r] - burst.accepted[r]) * 1000 for r in burst.accepted]
    return {
        "reviews_per_s": round(len(burst.verdict_at) / (ended - started), 3),
        "p95_ms": round(percentile(waits, 0.95), 1),
        "reviews": len(burst.accepted),
        "seconds": round(ended - started, 2),
        "reviewed_by_host": by_host(burst),
    }


# --- Student ------------------------------------------------------------------------------------


async def student_run(count: int, args: argparse.Namespace) -> dict[str, Any]:
    hosts = await start_hosts(count, args.time_scale)
    urls = [host.url for host in hosts]
    clients = [ollama.AsyncClient(host=url) for url in urls]
    try:
        await warm_up(urls, (STUDENT,))
        students = {
            url: StudentClient(
                client, STUDENT, timeout=60.0, semaphore=asyncio.Semaphore(4), load_allowance=0
            )
            for url, client in zip(urls, clients, strict=True)
        }
        pool = StudentPool(urls)
        interval_s = 30  # every camera the same: the pool spreads them evenly
        cameras = [f"camera.bench_{n}" for n in range(args.cameras)]
        for camera in cameras:
            pool.add_camera(camera, camera_load(interval_s))
        jpegs = frames()
        waits: list[float] = []
        errors: Counter[str] = Counter()
        answered_by: Counter[str] = Counter()

        async def camera_loop(number: int, camera: str) -> None:
            student = PooledStudent(pool, students, camera)
            for frame in range(args.frames_per_camera):
                host = student.host
                began = time.perf_counter()
                answer = await student.ask(
                    jpegs[(number + frame) % len(jpegs)], STUDENT_SYSTEM_PROMPT
                )
                waits.append((time.perf_counter() - began) * 1000)
                if isinstance(answer, StudentError):
                    errors[answer.reason[:60]] += 1
                answered_by[host] += 1

        started = time.perf_counter()
        async with asyncio.timeout(RUN_TIMEOUT_S):
            await asyncio.gather(*(camera_loop(n, c) for n, c in enumerate(cameras)))
        seconds = time.perf_counter() - started
    finally:
        for client in clients:
            await client._client.aclose()
        await stop_hosts(hosts)
    return {
        "reviews_per_s": round(len(waits) / seconds, 3),
        "p95_ms": round(percentile(waits, 0.95), 1),
        "frames": len(waits),
        "seconds": round(seconds, 2),
        "cameras_by_host": {
            f"host {n}": len(pool.cameras_on(url)) for n, url in enumerate(urls, start=1)
        },
        "frames_by_host": {f"host {n}": answered_by[url] for n, url in enumerate(urls, start=1)},
        "student_errors": sum(errors.values()),
    }


# --- Failover -----------------------------------------------------------------------------------


async def failover_run(count: int, args: argparse.Namespace) -> dict[str, Any]:
    if count < 2:
        raise ValueError("the failover run needs at least two hosts")
    hosts = await start_hosts(count, args.time_scale)
    try:
        burst, killed_at = await burst_on_pool(hosts, args, "failover", kill=hosts[0])
    finally:
        await stop_hosts(hosts)
    accepted = set(burst.accepted)
    done_once = {r for r in accepted if burst.final.get(r) == "done" and burst.verdicts[r] == 1}
    killed_host = burst.health["teachers"][0]
    return {
        "accepted": len(accepted),
        "completed": len(done_once),
        "lost": len([r for r in accepted if burst.final.get(r) != "done"]),
        "duplicated": sum(1 for r in accepted if burst.verdicts[r] > 1),
        "host_killed_at_s": round(killed_at or 0.0, 2),
        "hosts": count,
        "dead_lettered": sum(1 for status in burst.final.values() if status == "failed"),
        "max_attempts_used": max(burst.attempts.get(r, 0) for r in accepted),
        "killed_host_reviews_moved": killed_host["moved"],
        "killed_host_status_after": killed_host["status"],
        "reviewed_by_host": by_host(burst),
    }


# --- Report -------------------------------------------------------------------------------------


def speedups(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    base = rows["1"]["reviews_per_s"]
    return {count: round(row["reviews_per_s"] / base, 2) for count, row in rows.items()}


def targets(result: dict[str, Any]) -> dict[str, bool]:
    met: dict[str, bool] = {}
    for part in ("teacher", "student"):
        ratio = speedups(result[part]) if "1" in result[part] else {}
        for count, least in TARGETS.items():
            if count in ratio:
                met[f"{part}_{count}_hosts_at_least_{least}x"] = ratio[count] >= least
    failover = result["failover"]
    met["failover_every_accepted_review_completed_once"] = (
        failover["completed"] == failover["accepted"]
        and failover["lost"] == 0
        and failover["duplicated"] == 0
    )
    return met


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    teacher = {str(n): await teacher_run(n, args) for n in args.hosts}
    student = {str(n): await student_run(n, args) for n in args.hosts}
    failover = await failover_run(max(args.hosts), args)
    result: dict[str, Any] = {"teacher": teacher, "student": student, "failover": failover}
    result["speedup"] = {
        part: speedups(result[part]) for part in ("teacher", "student") if "1" in result[part]
    }
    result["targets"] = targets(result)
    result["models"] = (
        "scripted simulator models with scaled latency (sleep-based): the figures measure "
        "dispatch over the hosts, not any real model"
    )
    result["meta"] = {
        "hosts": list(args.hosts),
        "time_scale": args.time_scale,
        "reviews": args.reviews,
        "cameras": args.cameras,
        "frames_per_camera": args.frames_per_camera,
        "num_parallel_per_host": 1,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {platform.system()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    return result


def render_markdown(result: dict[str, Any], command: str) -> str:
    meta, failover = result["meta"], result["failover"]
    speedup = result.get("speedup", {})

    def rows(part: str, unit: str) -> str:
        return "\n".join(
            f"| {count} | {row['reviews_per_s']:.2f} {unit} | "
            f"{speedup.get(part, {}).get(count, float('nan')):.2f}x | {row['p95_ms']:.0f} ms |"
            for count, row in result[part].items()
        )

    met = result["targets"]
    return f"""# Pool benchmark

`{command}`

**Every figure here comes from the simulator's scripted models with scaled latency**: time scale
{meta["time_scale"]:g}, so the teacher answers in about {820 * meta["time_scale"]:.0f} ms and the
student in about {110 * meta["time_scale"]:.0f} ms, as sleeps, one request at a time per host
(`--num-parallel 1`). It measures how Vision Tutor spreads work over several Ollama hosts, not
how fast any model is. One machine ({meta["machine"]}) runs every host, the add-on and the
client; the latency is kept far above each request's CPU cost (small frames, models loaded
first), so the hosts, not the two cores, are what is scaled. Real hosts are separate machines.

## Teacher: the add-on's review queue over a teacher pool

A burst of {meta["reviews"]} reviews; p95 is a review's time from its 202 to its verdict.

| hosts | throughput | vs 1 host | p95 |
| --- | --- | --- | --- |
{rows("teacher", "reviews/s")}

## Student: the integration's student pool

{meta["cameras"]} cameras, {meta["frames_per_camera"]} frames each, one after the other; p95 is a
frame's wait for its answer, its turn on the host included.

| hosts | throughput | vs 1 host | p95 |
| --- | --- | --- | --- |
{rows("student", "frames/s")}

## Failover: a teacher host killed (kill -9) mid-burst

The first host (`teacher_url`) is killed once a third of the burst is reviewed, while it works on
a review.

| measure | value |
| --- | --- |
| hosts | {failover["hosts"]} |
| accepted reviews | {failover["accepted"]} |
| completed exactly once | {failover["completed"]} |
| lost | {failover["lost"]} |
| duplicated verdicts | {failover["duplicated"]} |
| dead-lettered | {failover["dead_lettered"]} |
| host killed at | {failover["host_killed_at_s"]:.1f} s into the burst |
| reviews the killed host had, handed to another | {failover["killed_host_reviews_moved"]} |
| most attempts any review used | {failover["max_attempts_used"]} |

## Targets

{chr(10).join(f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in met.items())}
"""


def _hosts(text: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--hosts wants numbers like 1,2,4, not {text!r}"
        ) from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError("--hosts wants host counts of at least 1")
    return counts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pool", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for the results")
    parser.add_argument("--hosts", type=_hosts, default=[1, 2, 4], help="host counts, e.g. 1,2,4")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--reviews", type=int, default=48, help="reviews per teacher burst")
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--frames-per-camera", type=int, default=30)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; write DIR/pool.json and DIR/pool.md. 1 when a target is missed."""
    args = _parser().parse_args(argv)
    if max(args.hosts) < 2:
        _parser().error("--hosts needs a count of at least 2 (the failover run kills one host)")
    result = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.pool " + " ".join(argv if argv is not None else sys.argv[1:])
    markdown = render_markdown(result, command.strip())
    (args.out / "pool.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "pool.md").write_text(markdown)
    print(markdown)
    return 0 if all(result["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
