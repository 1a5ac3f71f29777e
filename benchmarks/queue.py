"""The queue benchmark: durable enqueues through the real HTTP API, a kill -9 and a restart in the
middle, every accepted review completed exactly once, and the end-to-end verdict latency.

    python -m benchmarks.queue --out DIR [--rounds 7] [--per-round 500] [--concurrency 16]
                               [--latency-samples 40] [--time-scale 0.05]

Three processes, as in production: this client, the add-on's service (``python -m
vision_tutor_teacher`` started from ``addon/vision_tutor`` with a fresh data directory) and the
simulator as the teacher (``python -m simulator``). The teacher reviews all along, so reviews are
with it when the kill comes. At the default time scale of 0.05 its answers take about 40 ms,
still some 25 times faster than a 26B model on a GPU; in production the teacher runs on another
machine, while here the simulator's image decoding competes with the service for the same two
cores, so a faster scale measures the simulator more than the queue.

1. **Enqueue rounds.** Each round submits ``--per-round`` reviews with 50 KB JPEG frames (scene
   frames from the simulator's library, padded with a JPEG comment to exactly 50 KB), as JSON with
   the frame in base64 and the bearer token, ``--concurrency`` requests at a time. A round's rate
   is its 202s divided by its wall time; a 202 means the review is committed (fsynced) on disk.
2. **Kill and restart.** In the middle round the service gets SIGKILL once half of the round's
   reviews are accepted. Requests in flight then fail; after the restart on the same data
   directory they are sent again with the same idempotency keys, and the remaining rounds run.
   A repeated key answered 200 was committed before the kill although its 202 never arrived.
3. **Drain.** The event stream is read from cursor 0 until every accepted review is final; each
   must be ``done`` with exactly one ``verdict`` event.
4. **Latency.** On the idle queue, reviews are sent one at a time, each timed from the POST to its
   ``verdict`` event on the open stream. The simulated teacher's own time is reported beside it.

The batch window is 0 here: by design it delays non-safety reviews, which is not what this
measures. The durable enqueue rate is the median of the round rates (the killed round excluded).
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
import re
import statistics
import sys
import tempfile
import time
from typing import Any, Final

import aiohttp

from simulator.scenes import SceneLibrary

ROOT: Final = Path(__file__).resolve().parents[1]
ADDON: Final = ROOT / "addon" / "vision_tutor"
FRAME_BYTES: Final = 50 * 1024
SCENES: Final = (
    "kitchen_empty_day",
    "garden_day",
    "porch_package",
    "living_room_dog",
    "smoke_hallway",
    "fire_kitchen_pan",
    "driveway_car_day",
    "hallway_person_walking",
)
REASONS: Final = ("safety", "student_error", "low_confidence", "temporal", "audit")
SCHEMA: Final = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "maxLength": 200},
        "observations": {"type": "array", "items": {"type": "string"}},
        "safety_flags": {"type": "array", "items": {"type": "string"}},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["summary", "observations", "safety_flags", "confidence"],
}
SYSTEM_PROMPT: Final = (
    "You review frames from a home security camera. Describe what is visible and list every "
    "safety flag that applies (fire, smoke, weapon, fall, intrusion, blood). Answer in JSON."
)
START_TIMEOUT_S: Final = 60.0
FINAL: Final = frozenset({"done", "failed", "shed", "superseded"})


def padded_frame(jpeg: bytes, size: int = FRAME_BYTES) -> bytes:
    """The JPEG grown to exactly `size` bytes with comment (COM) segments after SOI."""
    missing = size - len(jpeg)
    if missing < 4:
        raise ValueError(f"the frame is already {len(jpeg)} bytes")
    segments = []
    while missing > 0:
        payload = min(missing - 4, 65533)
        if 0 < missing - (payload + 4) < 4:  # never leave a gap too small for a segment
            payload -= 4
        segments.append(b"\xff\xfe" + (payload + 2).to_bytes(2, "big") + b"\x00" * payload)
        missing -= payload + 4
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def review_json(key: str, number: int, frames: Sequence[str]) -> bytes:
    scene = SceneLibrary.default().get(SCENES[number % len(SCENES)])
    answer = {
        "summary": scene.summary,
        "observations": list(scene.objects),
        "safety_flags": list(scene.safety_flags),
        "confidence": 0.6,
    }
    body = {
        "idempotency_key": key,
        "camera": f"camera.bench_{number % 8}",
        "reason": REASONS[number % len(REASONS)],
        "detail": "benchmark",
        "image": frames[number % len(frames)],
        "captured_at": datetime.now(UTC).isoformat(),
        "student": {"model": "gemma4:e2b", "answer": answer, "raw": json.dumps(answer)},
        "contract": {"system_prompt": SYSTEM_PROMPT, "schema": SCHEMA},
    }
    return json.dumps(body).encode()


# --- Processes ----------------------------------------------------------------------------------


@dataclass
class Process:
    process: asyncio.subprocess.Process
    url: str
    log: list[str]
    drain: asyncio.Task[None]

    async def stop(self, kill: bool = False) -> int:
        if self.process.returncode is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
        code = await self.process.wait()
        await self.drain
        return code


async def _drain(stream: asyncio.StreamReader, log: list[str]) -> None:
    while line := await stream.readline():
        log.append(line.decode(errors="replace").rstrip())


async def spawn(args: Sequence[str], cwd: Path, pattern: str, *, from_stdout: bool) -> Process:
    """Start a process and wait for the line that says where it listens."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE if from_stdout else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL if from_stdout else asyncio.subprocess.PIPE,
    )
    stream = process.stdout if from_stdout else process.stderr
    assert stream is not None
    log: list[str] = []
    async with asyncio.timeout(START_TIMEOUT_S):
        while True:
            raw = await stream.readline()
            if not raw:
                raise RuntimeError(f"{args[1]} exited:\n" + "\n".join(log))
            log.append(raw.decode(errors="replace").rstrip())
            if match := re.search(pattern, log[-1]):
                break
    return Process(process, match.group(1), log, asyncio.create_task(_drain(stream, log)))


async def start_service(options: Path, data_dir: Path) -> Process:
    return await spawn(
        [
            "-m",
            "vision_tutor_teacher",
            "--config",
            str(options),
            "--data",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        ADDON,
        r"listening on (http://\S+)",
        from_stdout=False,
    )


# --- Enqueueing ---------------------------------------------------------------------------------


@dataclass
class Round:
    number: int
    submitted: int
    seconds: float
    statuses: Counter[int]
    accepted: dict[str, str]
    """Idempotency key to review id, for the 202s (and 200s) of this round."""
    unanswered: list[str]
    """Keys whose request failed without an answer (the service was killed)."""
    killed: bool = False
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.statuses[202] / self.seconds


@dataclass
class Submitter:
    session: aiohttp.ClientSession
    url: str
    concurrency: int
    accepted_so_far: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    errors: Counter[str] = field(default_factory=Counter)
    """Requests that got no answer, by exception (only when the service is killed)."""

    async def submit(
        self, bodies: dict[str, bytes]
    ) -> tuple[Counter[int], dict[str, str], list[str], float]:
        statuses: Counter[int] = Counter()
        accepted: dict[str, str] = {}
        unanswered: list[str] = []
        pending = iter(bodies.items())

        async def worker() -> None:
            for key, body in pending:
                try:
                    async with self.session.post(
                        f"{self.url}/api/v1/reviews",
                        data=body,
                        headers={"Content-Type": "application/json"},
                    ) as response:
                        data = await response.json()
                except aiohttp.ClientError as err:
                    unanswered.append(key)
                    self.errors[type(err).__name__] += 1
                    continue
                statuses[response.status] += 1
                if response.status in (200, 202):
                    accepted[key] = data["id"]
                    self.accepted_so_far += 1
                    self.progress.set()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return statuses, accepted, unanswered, time.perf_counter() - started


# --- The event stream ---------------------------------------------------------------------------


@dataclass
class Stream:
    response: aiohttp.ClientResponse
    fields: dict[str, str] = field(default_factory=dict)

    async def next(self) -> tuple[int, str, dict[str, Any]]:
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the event stream ended")
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(": ")
                self.fields[name] = value
                continue
            fields, self.fields = self.fields, {}
            # The stream's first event, ``hello``, has no id: it is no event of the log.
            if "data" in fields and "id" in fields:
                return int(fields["id"]), fields["event"], json.loads(fields["data"])


async def open_stream(session: aiohttp.ClientSession, url: str, after: int) -> Stream:
    response = await session.get(
        f"{url}/api/v1/events",
        params={"after": str(after)},
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
    )
    response.raise_for_status()
    return Stream(response)


@dataclass
class Drain:
    final_status: dict[str, str]
    verdicts: Counter[str]
    seconds: float
    last_seq: int


async def drain(
    session: aiohttp.ClientSession, url: str, accepted: set[str], within_s: float
) -> Drain:
    started = time.perf_counter()
    stream = await open_stream(session, url, 0)
    final_status: dict[str, str] = {}
    verdicts: Counter[str] = Counter()
    last_seq = 0
    try:
        async with asyncio.timeout(within_s):
            while not (accepted <= final_status.keys()):
                seq, kind, data = await stream.next()
                last_seq = seq
                if kind == "verdict":
                    verdicts[data["review_id"]] += 1
                elif kind == "review":
                    if data["status"] in FINAL:
                        final_status[data["review_id"]] = data["status"]
                    else:
                        final_status.pop(data["review_id"], None)
    finally:
        stream.response.close()
    return Drain(final_status, verdicts, time.perf_counter() - started, last_seq)


async def measure_latency(
    session: aiohttp.ClientSession, url: str, samples: int, after: int, frames: Sequence[str]
) -> tuple[list[float], list[float]]:
    """End-to-end (POST to verdict event) and teacher latencies, one review at a time."""
    stream = await open_stream(session, url, after)
    end_to_end: list[float] = []
    teacher: list[float] = []
    try:
        for number in range(samples):
            body = review_json(f"latency-{number}", number, frames)
            started = time.perf_counter()
            async with session.post(
                f"{url}/api/v1/reviews", data=body, headers={"Content-Type": "application/json"}
            ) as response:
                if response.status != 202:
                    raise RuntimeError(f"latency sample refused: {await response.text()}")
                review_id = (await response.json())["id"]
            async with asyncio.timeout(60):
                while True:
                    _, kind, data = await stream.next()
                    if kind == "verdict" and data["review_id"] == review_id:
                        break
            end_to_end.append((time.perf_counter() - started) * 1000)
            teacher.append(float(data["latency_ms"]))
    finally:
        stream.response.close()
    return end_to_end, teacher


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- The run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    library = SceneLibrary.default()
    frames = [
        base64.b64encode(padded_frame(library.jpeg(scene, width=768))).decode() for scene in SCENES
    ]
    kill_round = args.rounds // 2
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="vision-tutor-bench-") as temporary:
        work = Path(temporary)
        teacher = await spawn(
            [
                "-m",
                "simulator",
                "--port",
                "0",
                "--time-scale",
                str(args.time_scale),
                "--num-parallel",
                "2",
                "--log-level",
                "WARNING",
            ],
            ROOT,
            r"listening on (http://\S+)",
            from_stdout=True,
        )
        options = work / "options.json"
        options.write_text(
            json.dumps(
                {
                    "teacher_url": teacher.url,
                    "queue_limit": 10_000,
                    "batch_window_ms": 0,
                    "teacher_concurrency": 2,
                    "max_attempts": 20,
                    "stats_interval_s": 1.0,
                    "log_level": "warning",
                }
            )
        )
        data_dir = work / "data"
        service = await start_service(options, data_dir)
        token = (data_dir / "token").read_text().strip()
        connector = aiohttp.TCPConnector(limit=args.concurrency + 4)
        retried: Counter[int] = Counter()
        async with aiohttp.ClientSession(
            connector=connector, headers={"Authorization": f"Bearer {token}"}
        ) as session:
            accepted: dict[str, str] = {}
            for number in range(args.rounds):
                bodies = {
                    f"r{number}-{n}": review_json(f"r{number}-{n}", n, frames)
                    for n in range(args.per_round)
                }
                submitter = Submitter(session, service.url, args.concurrency)
                if number != kill_round:
                    statuses, got, unanswered, seconds = await submitter.submit(bodies)
                    rounds.append(Round(number, len(bodies), seconds, statuses, got, unanswered))
                    accepted.update(got)
                    continue
                # The killed round: SIGKILL once half of it is accepted.
                task = asyncio.create_task(submitter.submit(bodies))
                while submitter.accepted_so_far < args.per_round // 2 and not task.done():
                    submitter.progress.clear()
                    progress = asyncio.create_task(submitter.progress.wait())
                    await asyncio.wait((task, progress), return_when=asyncio.FIRST_COMPLETED)
                    progress.cancel()
                if task.done():
                    task.result()  # re-raises what went wrong
                    raise RuntimeError(f"the round ended before the kill: {task.result()[0]}")
                await service.stop(kill=True)
                statuses, got, unanswered, seconds = await task
                rounds.append(
                    Round(
                        number,
                        len(bodies),
                        seconds,
                        statuses,
                        got,
                        unanswered,
                        killed=True,
                        errors=dict(submitter.errors),
                    )
                )
                accepted.update(got)
                service = await start_service(options, data_dir)
                submitter = Submitter(session, service.url, args.concurrency)
                again, got_again, lost, _ = await submitter.submit(
                    {key: bodies[key] for key in unanswered}
                )
                if lost:
                    raise RuntimeError(f"{len(lost)} reviews unanswered after the restart")
                retried = again
                accepted.update(got_again)

            review_ids = set(accepted.values())
            try:
                drained = await drain(session, service.url, review_ids, args.drain_timeout)
            except TimeoutError:
                async with session.get(f"{service.url}/api/v1/stats") as response:
                    stats = await response.json()
                sys.stderr.write(
                    f"the queue did not drain in {args.drain_timeout:g} s; stats: {stats}\n"
                    + "\n".join(service.log[-20:])
                    + "\n"
                )
                raise
            end_to_end, teacher_ms = await measure_latency(
                session, service.url, args.latency_samples, drained.last_seq, frames
            )
            async with session.get(f"{service.url}/api/v1/stats") as response:
                stats = await response.json()
        code = await service.stop()
        await teacher.stop()

    done_once = sum(
        1
        for review_id in review_ids
        if drained.final_status.get(review_id) == "done" and drained.verdicts[review_id] == 1
    )
    measured = [r for r in rounds if not r.killed]
    rates = [r.rate for r in measured]
    result: dict[str, Any] = {
        "durable_enqueues_per_s": round(statistics.median(rates), 1),
        "verdict_latency_ms_p50": round(percentile(end_to_end, 0.5), 1),
        "verdict_latency_ms_p95": round(percentile(end_to_end, 0.95), 1),
        "accepted": len(review_ids),
        "completed_after_kill_restart": done_once,
        "details": {
            "rounds": [
                {
                    "round": r.number,
                    "submitted": r.submitted,
                    "accepted_202": r.statuses[202],
                    "other_statuses": {str(k): v for k, v in r.statuses.items() if k != 202},
                    "unanswered": len(r.unanswered),
                    "unanswered_errors": r.errors,
                    "seconds": round(r.seconds, 3),
                    "enqueues_per_s": round(r.rate, 1),
                    "killed": r.killed,
                }
                for r in rounds
            ],
            "round_rate_min": round(min(rates), 1),
            "round_rate_max": round(max(rates), 1),
            "resent_after_restart": dict(sorted((str(k), v) for k, v in retried.items())),
            "duplicate_verdicts": sum(max(0, n - 1) for n in drained.verdicts.values()),
            "not_done": len(review_ids) - done_once,
            "drain_seconds": round(drained.seconds, 1),
            "teacher_latency_ms_p50": round(percentile(teacher_ms, 0.5), 1),
            "teacher_latency_ms_p95": round(percentile(teacher_ms, 0.95), 1),
            "latency_samples": len(end_to_end),
            "final_stats": stats,
            "service_exit_status": code,
        },
        "meta": {
            "frame_bytes": FRAME_BYTES,
            "per_round": args.per_round,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "time_scale": args.time_scale,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, {platform.system()}",
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        },
    }
    return result


def render_markdown(result: dict[str, Any], command: str) -> str:
    details, meta = result["details"], result["meta"]
    rows = "\n".join(
        f"| {r['round']}{' (killed)' if r['killed'] else ''} | {r['submitted']} | "
        f"{r['accepted_202']} | {r['unanswered']} | {r['seconds']:.2f} | "
        f"{'-' if r['killed'] else f'{r["enqueues_per_s"]:.0f}'} |"
        for r in details["rounds"]
    )
    rate = result["durable_enqueues_per_s"]
    latency_overhead = result["verdict_latency_ms_p50"] - details["teacher_latency_ms_p50"]
    resent = details["resent_after_restart"]
    return f"""# Queue benchmark

`{command}`

| Measure | Value |
| --- | --- |
| Durable enqueues per second, median of {len(details["rounds"]) - 1} rounds | **{rate:.0f}** (rounds {details["round_rate_min"]:.0f} to {details["round_rate_max"]:.0f}; target 500, ratio {rate / 500:.2f}) |
| Accepted reviews | {result["accepted"]} |
| Completed exactly once across the kill -9 and restart | {result["completed_after_kill_restart"]} of {result["accepted"]} (duplicate verdicts: {details["duplicate_verdicts"]}) |
| Verdict latency p50 / p95, POST to verdict event | {result["verdict_latency_ms_p50"]:.0f} / {result["verdict_latency_ms_p95"]:.0f} ms |
| of which the simulated teacher's answer, p50 / p95 | {details["teacher_latency_ms_p50"]:.0f} / {details["teacher_latency_ms_p95"]:.0f} ms |
| Service overhead at p50 (latency minus teacher) | {latency_overhead:.0f} ms |

## Rounds

| Round | Submitted | 202 | Unanswered | Seconds | Enqueues/s |
| --- | --- | --- | --- | --- | --- |
{rows}

The service was killed (SIGKILL) in round {next(r["round"] for r in details["rounds"] if r["killed"])}
once half of its reviews were accepted. After the restart on the same data directory the
unanswered requests were sent again with their idempotency keys: {resent.get("200", 0)} answered
200, i.e. they had been committed before the kill although their 202 never arrived, and
{resent.get("202", 0)} answered 202 (they had not been). Draining the queue then took
{details["drain_seconds"]:.0f} s at the simulated teacher's pace.

Frames are {meta["frame_bytes"] // 1024} KB JPEGs sent as base64 JSON with a bearer token,
{meta["concurrency"]} requests at a time, while the teacher (the simulator at time scale
{meta["time_scale"]:g}, two reviews at a time) reviews. Client, service and simulator share one
machine ({meta["machine"]}, {meta["date"]}), so round rates spread; the median is the figure.
Latency is measured afterwards on the idle queue, one review at a time, with the batch window off.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.queue", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory for the results")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-samples", type=int, default=40)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; write DIR/queue.json and DIR/queue.md."""
    args = _parser().parse_args(argv)
    if args.rounds < 3:
        _parser().error("--rounds must be at least 3 (one is killed)")
    result = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.queue " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "queue.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "queue.md").write_text(render_markdown(result, command.strip()))
    print(render_markdown(result, command.strip()))
    ok = result["completed_after_kill_restart"] == result["accepted"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
