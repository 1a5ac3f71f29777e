"""The prompt lab benchmark: the seed prompt against the prompt the lab promotes, on the holdout.

    python -m benchmarks.prompt_lab --out DIR [--rounds 5] [--count 5] [--seed 7]
                                    [--time-scale 0.01] [--final-runs 3] [--width 512]

Everything goes through the add-on's real HTTP API, as a user or the integration would: the
simulator (``--seed``, ``--time-scale``) is the student, teacher and embedding model; the add-on's
service runs on loopback with a fresh data directory and its default lab options (gate: holdout
at least 0.85 and more than the active prompt by the margin and the noise).

1. The simulator's 43 library scenes are imported as image cases (``POST
   /api/v1/validation/import``, frames at ``--width``) beside the default suite's text cases:
   expected keywords are the scene's objects (with common synonyms), expected flags its ground
   truth, and on scenes without a hazard the hazard words it does not mention are forbidden. The
   split is the add-on's own stable hash.
2. The seed prompt (v1) is scored (``POST /api/v1/prompts/score``).
3. ``--rounds`` synthesis rounds (``POST /api/v1/prompts/synthesize`` with ``--count``), each
   followed to its end on ``GET /api/v1/jobs/{id}``; the gate promotes or not.
4. A promoted prompt's holdout score is the run that won it the promotion: the luckiest of its
   runs. So the seed and the final active prompt are scored again ``--final-runs`` times (fresh
   student answers each time) and the table shows the means: that is the honest comparison.

Student and teacher calls are the simulator's own request counts for each model. The prompts'
simulated quality ``q`` (the features the simulator's student responds to, see
simulator/README.md) is shown beside them, to read the result against what the simulator knows.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import platform
import statistics
import sys
import tempfile
import time
from typing import Any, Final

import aiohttp

from simulator.prompting import SAFETY_FLAGS, hazards_in, prompt_quality
from simulator.scenes import SceneLibrary
from simulator.server import RunningSimulator, run_simulator
from vision_tutor_teacher.lab.scoring import METHODS
from vision_tutor_teacher.options import Options
from vision_tutor_teacher.service import run_service

DEFAULT_OUT: Final = Path(__file__).parent / "results"
DEFAULT_SEED: Final = 7
DEFAULT_ROUNDS: Final = 5
DEFAULT_COUNT: Final = 5
DEFAULT_TIME_SCALE: Final = 0.01
DEFAULT_FINAL_RUNS: Final = 3
DEFAULT_WIDTH: Final = 512
STUDENT_MODEL: Final = "gemma4:e2b"
TEACHER_MODEL: Final = "gemma4:26b"
JOB_TIMEOUT_S: Final = 600.0
POLL_S: Final = 0.05

# Words a correct answer may use for a scene object (the simulator paraphrases like a model).
SYNONYMS: Final[dict[str, tuple[str, ...]]] = {
    "mug": ("cup",),
    "sofa": ("couch",),
    "television": ("tv",),
    "fridge": ("refrigerator",),
    "stove": ("hob", "cooker"),
    "bicycle": ("bike",),
    "package": ("parcel",),
    "parcel": ("package",),
    "rug": ("carpet",),
    "car": ("vehicle",),
    "child": ("kid",),
    "knife": ("blade",),
    "cupboard": ("cabinet",),
    "cabinets": ("cupboards",),
    "armchair": ("chair",),
    "lamp": ("light",),
    "puppy": ("dog",),
    "kitten": ("cat",),
    "person": ("man", "woman", "someone", "people"),
}
HAZARD_WORDS: Final[dict[str, str]] = {
    "fire": "fire|flame|burning|blaze",
    "smoke": "smoke|smoky",
    "weapon": "weapon|knife|gun|firearm",
    "fall": "fallen|fall|collapsed|lying on the floor",
    "intrusion": "intruder|intrusion|burglar|break-in",
    "blood": "blood|bleeding",
}


def scene_cases(library: SceneLibrary, width: int = DEFAULT_WIDTH) -> list[dict[str, Any]]:
    """Every library scene as a validation case in the import format."""
    cases = []
    for scene in library.scenes:
        described = hazards_in(" ".join((scene.summary, scene.title, *scene.objects)))
        forbidden = [
            HAZARD_WORDS[flag]
            for flag in SAFETY_FLAGS
            if flag not in scene.safety_flags and flag not in described
        ]
        keywords = ["|".join((obj, *SYNONYMS.get(obj.lower(), ()))) for obj in scene.objects]
        cases.append(
            {
                "name": f"scene {scene.id}",
                "image": base64.b64encode(library.jpeg(scene.id, width=width)).decode(),
                "expected_keywords": keywords,
                "forbidden_keywords": forbidden,
                "expected_flags": list(scene.safety_flags),
            }
        )
    return cases


@dataclass(slots=True)
class Lab:
    """The add-on's API with its token."""

    url: str
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.url + path, json=body) as response:
            data = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {data}")
            return data

    async def job(self, path: str, body: Any) -> dict[str, Any]:
        """Start a job and follow it to its end."""
        job_id = (await self.call("POST", path, body))["job_id"]
        async with asyncio.timeout(JOB_TIMEOUT_S):
            while True:
                job: dict[str, Any] = await self.call("GET", f"/api/v1/jobs/{job_id}")
                if job["state"] in ("done", "failed"):
                    return job
                await asyncio.sleep(POLL_S)

    async def prompt(self, version: str) -> dict[str, Any]:
        prompt: dict[str, Any] = await self.call("GET", f"/api/v1/prompts/{version}")
        return prompt


def _calls(sim: RunningSimulator) -> tuple[int, int]:
    models = sim.stats.models
    student = models.get(STUDENT_MODEL)
    teacher = models.get(TEACHER_MODEL)
    return (student.requests if student else 0, teacher.requests if teacher else 0)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.fmean(present), 4) if present else None


async def _final_scores(lab: Lab, versions: list[str], runs: int) -> dict[str, dict[str, Any]]:
    """Fresh holdout measurements of `versions`, `runs` times: mean score and per method."""
    measured: dict[str, list[dict[str, float | None]]] = {v: [] for v in versions}
    for _ in range(runs):
        job = await lab.job("/api/v1/prompts/score", {"versions": versions})
        if job["state"] != "done":
            raise RuntimeError(f"the final scoring failed: {job['message']}")
        for version in versions:
            prompt = await lab.prompt(version)
            measured[version].append(prompt["scores_by_method"]["holdout"])
    return {
        version: {
            "holdout": _mean([run["score"] for run in runs_of]),
            "runs": [run["score"] for run in runs_of],
            "per_method": {
                method: _mean([run.get(method) for run in runs_of]) for method in METHODS
            },
        }
        for version, runs_of in measured.items()
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    library = SceneLibrary.default()
    cases = await asyncio.get_running_loop().run_in_executor(None, scene_cases, library, args.width)
    async with run_simulator(time_scale=args.time_scale, seed=args.seed) as sim:
        with tempfile.TemporaryDirectory(prefix="prompt-lab-") as data:
            options = Options(teacher_url=sim.url, lab_concurrency=4, batch_window_ms=0)
            async with (
                run_service(options, Path(data)) as running,
                aiohttp.ClientSession(
                    headers={"Authorization": f"Bearer {running.token}"}
                ) as session,
            ):
                lab = Lab(running.url, session)
                imported = await lab.call("POST", "/api/v1/validation/import", {"cases": cases})
                suite = await lab.call("GET", "/api/v1/validation/cases")
                seed_job = await lab.job("/api/v1/prompts/score", {"versions": ["v1"]})
                if seed_job["state"] != "done":
                    raise RuntimeError(f"scoring the seed failed: {seed_job['message']}")
                seed = await lab.prompt("v1")
                rounds = []
                for number in range(1, args.rounds + 1):
                    started = time.perf_counter()
                    job = await lab.job("/api/v1/prompts/synthesize", {"count": args.count})
                    result = job["result"] or {}
                    active = await lab.call("GET", "/api/v1/prompts/active")
                    rounds.append(
                        {
                            "round": number,
                            "state": job["state"],
                            "message": job["message"],
                            "candidates": result.get("candidates", []),
                            "rejected": len(result.get("rejected", [])),
                            "finalists": result.get("finalists", []),
                            "active_holdout": (result.get("active") or {}).get("holdout_score"),
                            "gated_holdout": (result.get("holdout") or {}).get(
                                (result.get("gate") or {}).get("version")
                            ),
                            "gate": result.get("gate"),
                            "promoted": result.get("promoted"),
                            "active_after": active["version"],
                            "student_calls": result.get("student_calls", 0),
                            "teacher_calls": result.get("teacher_calls", 0),
                            "seconds": round(time.perf_counter() - started, 2),
                        }
                    )
                    print(f"round {number}: {job['message']}", file=sys.stderr, flush=True)
                final = (await lab.call("GET", "/api/v1/prompts/active"))["version"]
                versions = ["v1"] if final == "v1" else ["v1", final]
                fresh = await _final_scores(lab, versions, args.final_runs)
                promoted = await lab.prompt(final)
                student_calls, teacher_calls = _calls(sim)
    seed_fresh, final_fresh = fresh["v1"], fresh[final]
    return {
        "seed_holdout": seed_fresh["holdout"],
        "promoted_holdout": final_fresh["holdout"],
        "rounds": args.rounds,
        "student_calls": student_calls,
        "teacher_calls": teacher_calls,
        "per_method": {
            method: {
                "seed": seed_fresh["per_method"][method],
                "promoted": final_fresh["per_method"][method],
            }
            for method in METHODS
        },
        "promoted_version": final,
        "seed_prompt": seed["text"],
        "promoted_prompt": promoted["text"],
        "seed_holdout_runs": seed_fresh["runs"],
        "promoted_holdout_runs": final_fresh["runs"],
        "seed_holdout_first_run": seed["holdout_score"] if final == "v1" else None,
        "promoted_holdout_at_promotion": next(
            (r["gated_holdout"] for r in rounds if r["promoted"] == final), None
        ),
        "prompt_quality": {
            "seed": round(prompt_quality(seed["text"]).q, 3),
            "promoted": round(prompt_quality(promoted["text"]).q, 3),
        },
        "round_details": rounds,
        "suite": {
            "cases": len(suite["cases"]),
            "train": suite["train"],
            "holdout": suite["holdout"],
            "image_cases": imported["added"],
        },
        "gate": {
            "min_holdout": options.lab_min_holdout,
            "margin": options.lab_margin,
            "sigmas": options.lab_gate_sigmas,
        },
        "count": args.count,
        "final_runs": args.final_runs,
        "seed": args.seed,
        "time_scale": args.time_scale,
        "width": args.width,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {platform.system()}",
        "date": datetime.now(UTC).date().isoformat(),
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _delta(first: float | None, second: float | None) -> str:
    return "-" if first is None or second is None else f"{second - first:+.3f}"


def render_markdown(result: dict[str, Any], command: str) -> str:
    final = result["promoted_version"]
    lines = [
        "# Prompt lab benchmark: the seed prompt against the promoted prompt",
        "",
        f"{result['suite']['cases']} validation cases ({result['suite']['image_cases']} scene "
        f"frames from the simulator's library, the rest the add-on's default text cases): "
        f"{result['suite']['train']} train, {result['suite']['holdout']} holdout. "
        f"{result['rounds']} synthesis rounds of {result['count']} candidates; simulator seed "
        f"{result['seed']}, time scale {result['time_scale']}. Gate: holdout >= "
        f"{result['gate']['min_holdout']} and more than the active prompt's by "
        f"{result['gate']['margin']} and by {result['gate']['sigmas']} standard error of the "
        "paired per-case differences.",
        "",
        f"Holdout scores are the mean of {result['final_runs']} fresh scoring runs of each prompt "
        "after the last round (a promoted prompt's score at promotion is its luckiest run: "
        f"{_fmt(result['promoted_holdout_at_promotion'])} here).",
        "",
        f"| holdout | seed (v1) | promoted ({final}) | change |",
        "| --- | ---: | ---: | ---: |",
        f"| **score** | **{_fmt(result['seed_holdout'])}** | "
        f"**{_fmt(result['promoted_holdout'])}** | "
        f"**{_delta(result['seed_holdout'], result['promoted_holdout'])}** |",
    ]
    for method, values in result["per_method"].items():
        lines.append(
            f"| {method} | {_fmt(values['seed'])} | {_fmt(values['promoted'])} | "
            f"{_delta(values['seed'], values['promoted'])} |"
        )
    quality = result["prompt_quality"]
    lines += [
        f"| simulated prompt quality q | {quality['seed']:.3f} | {quality['promoted']:.3f} | "
        f"{quality['promoted'] - quality['seed']:+.3f} |",
        "",
        f"Calls to the simulator over the whole run: {result['student_calls']} student, "
        f"{result['teacher_calls']} teacher (references, synthesis).",
        "",
        "## Rounds",
        "",
        "| round | candidates | rejected | finalists | active holdout | gated finalist holdout "
        "| promoted | student calls | teacher calls |",
        "| ---: | --- | ---: | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for row in result["round_details"]:
        lines.append(
            f"| {row['round']} | {', '.join(row['candidates']) or '-'} | {row['rejected']} | "
            f"{', '.join(row['finalists']) or '-'} | {_fmt(row['active_holdout'])} | "
            f"{_fmt(row['gated_holdout'])} | {row['promoted'] or '-'} | {row['student_calls']} | "
            f"{row['teacher_calls']} |"
        )
    lines += [
        "",
        "## The prompts",
        "",
        f"Seed (v1): {result['seed_prompt']}",
        "",
        f"Promoted ({final}): {result['promoted_prompt']}",
        "",
        "Reproduce with:",
        "",
        "```bash",
        command,
        "```",
        "",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.prompt_lab",
        description="The seed prompt against the promoted prompt, through the add-on's API.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for the results")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, choices=range(1, 11))
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--time-scale", type=float, default=DEFAULT_TIME_SCALE)
    parser.add_argument("--final-runs", type=int, default=DEFAULT_FINAL_RUNS)
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write DIR/prompt_lab.json and DIR/prompt_lab.md."""
    args = _parser().parse_args(argv)
    if args.rounds < 1 or args.final_runs < 1:
        raise SystemExit("--rounds and --final-runs must be at least 1")
    if not 0 < args.time_scale <= 1:
        raise SystemExit("--time-scale must be in (0, 1]")
    started = time.perf_counter()
    result = asyncio.run(run(args))
    result["wall_time_s"] = round(time.perf_counter() - started, 1)
    command = "python -m benchmarks.prompt_lab " + " ".join(
        sys.argv[1:] if argv is None else list(argv)
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prompt_lab.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "prompt_lab.md").write_text(render_markdown(result, command.strip()))
    print(
        f"seed holdout {_fmt(result['seed_holdout'])}, promoted "
        f"({result['promoted_version']}) {_fmt(result['promoted_holdout'])}; wrote "
        f"{args.out / 'prompt_lab.json'} and {args.out / 'prompt_lab.md'} in "
        f"{result['wall_time_s']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
