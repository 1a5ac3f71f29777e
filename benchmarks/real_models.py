"""Benchmarks on real models: a real Ollama 0.24.0 (built from source) with real weights.

    python -m benchmarks.real_models --out DIR [--url URL] [--rounds 1] [--candidates 3]

Every other figure we publish comes from the simulator, whose behaviour we wrote. These come from
real models on a real Ollama, on this 2-core CPU machine:

- **Prompt lab** (`prompt_lab`): the add-on's own lab (the real service, in-process) on the
  default suite's text validation cases, with Gemma 3 270M (the *base* model: not instruction-tuned)
  as the student and as the teacher, and all-MiniLM-L6-v2 for embeddings: the seed prompt's holdout
  score against the best prompt after `--rounds` synthesis rounds, and the calls it took.
- **Do real token logprobs carry signal?** (`logprob_auc`, `stated_auc`): the same text cases
  asked of Gemma 3 270M with the integration's own system prompt, `format` (the observation
  schema) and `logprobs`, the answer read by the integration's own parser; right means the
  safety flags are exactly the expected ones. The ROC AUC, right against wrong, of the
  integration's effective confidence (its token rule) and of the confidence the model stated.
  0.5 is no signal.
- **Latency** (`latency_ms`): the student's answer time per camera frame (the generated gemma4-
  architecture model through the integration's own `StudentClient`, the request it sends in
  production) and per text case (Gemma 3 270M).

Report the numbers whatever they are: a base 270M model is weak, and saying so is the point.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
import contextlib
import json
import os
from pathlib import Path
import platform
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp
import ollama

from custom_components.vision_tutor.contract import (
    OBSERVATION_SCHEMA,
    Observation,
    parse_observation,
)
from custom_components.vision_tutor.pipeline import StudentAnswer, StudentClient
from custom_components.vision_tutor.prompts import STUDENT_SYSTEM_PROMPT
from custom_components.vision_tutor.routing import effective_confidence
from realollama.models import EMBED, STUDENT, TEXT, ensure_models
from realollama.server import run_ollama
from simulator.scenes import SceneLibrary
from vision_tutor_teacher.options import Options
from vision_tutor_teacher.service import run_service

RESULTS = Path(__file__).parent / "results"


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Mann-Whitney: the chance a right answer scores above a wrong one (ties count half)."""
    pos = [s for s, p in zip(scores, positive, strict=True) if p]
    neg = [s for s, p in zip(scores, positive, strict=True) if not p]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def default_cases() -> list[dict[str, Any]]:
    """The add-on's default validation suite: text descriptions with expected flags."""
    path = (
        Path(__file__).resolve().parents[1]
        / "addon/vision_tutor/vision_tutor_teacher/data/default_suite.json"
    )
    cases: list[dict[str, Any]] = json.loads(path.read_text())["cases"]
    return cases


FEW_SHOT_PROMPT = (
    STUDENT_SYSTEM_PROMPT
    + """

Examples of descriptions and answers:
Description: A cat sleeps on a sofa in a sunny living room.
Answer: {"summary": "A cat sleeping on a sofa.", "observations": ["cat", "sofa"], "safety_flags": [], "confidence": 0.9}
Description: Thick smoke fills a kitchen and a pan is burning on the stove.
Answer: {"summary": "A pan burning on the stove, smoke in the kitchen.", "observations": ["pan", "stove", "smoke"], "safety_flags": ["fire", "smoke"], "confidence": 0.8}"""
)
"""A base model continues text: two worked examples give it a chance to answer in the contract.
The examples are not validation cases, and they have different flags so copying cannot score."""

PROMPTS = {"builtin": STUDENT_SYSTEM_PROMPT, "examples": FEW_SHOT_PROMPT}


async def confidence_signal(url: str, prompt: str) -> dict[str, Any]:
    """Ask the 270M every text case; score effective and stated confidence against rightness.

    Over the readable answers (the integration's own parser): right means exactly the expected
    safety flags. Unreadable answers are student errors, which escalate whatever the confidence.
    """
    client = ollama.AsyncClient(host=url)
    rows = []
    latencies = []
    for case in default_cases():
        started = time.perf_counter()
        response = await client.chat(
            model=TEXT,
            messages=[
                {"role": "system", "content": prompt},
                {"role": "user", "content": f"Description: {case['text']}\nAnswer:"},
            ],
            format=OBSERVATION_SCHEMA,
            logprobs=True,
            options={"temperature": 0.3, "seed": 7, "num_predict": 160},
        )
        latencies.append((time.perf_counter() - started) * 1000)
        parsed = parse_observation(response.message.content or "")
        logprobs = [token.logprob for token in response.logprobs or ()]
        readable = isinstance(parsed, Observation)
        stated = parsed.confidence if isinstance(parsed, Observation) else None
        flags = list(parsed.safety_flags) if isinstance(parsed, Observation) else None
        right = flags is not None and set(flags) == set(case["expected_flags"])
        rows.append(
            {
                "case": case["name"],
                "readable": readable,
                "flags": flags,
                "expected_flags": case["expected_flags"],
                "right": right,
                # What routing needs first: hazard or not (the flags may still name another one).
                "hazard_right": flags is not None and bool(flags) == bool(case["expected_flags"]),
                "stated": stated,
                "effective": effective_confidence(stated, logprobs),
                "token_evidence": effective_confidence(1.0, logprobs),
                "lowest_logprobs": sorted(logprobs)[:3],
                "done_reason": response.done_reason,
            }
        )
    await client._client.aclose()  # ollama 0.6 has no public close
    readable_rows = [r for r in rows if r["readable"]]
    right = [r["hazard_right"] for r in readable_rows]
    return {
        "cases": len(rows),
        "readable": len(readable_rows),
        "right": sum(r["right"] for r in readable_rows),
        "hazard_right": sum(right),
        "cut_off": sum(r["done_reason"] == "length" for r in rows),
        "logprob_auc": roc_auc([r["effective"] or 0.0 for r in readable_rows], right),
        "token_auc": roc_auc([r["token_evidence"] or 0.0 for r in readable_rows], right),
        "stated_auc": roc_auc([r["stated"] or 0.0 for r in readable_rows], right),
        "effective_median": statistics.median(r["effective"] or 0.0 for r in rows),
        "token_evidence_median": statistics.median(r["token_evidence"] or 0.0 for r in rows),
        "stated_median": _median([r["stated"] for r in readable_rows if r["stated"] is not None]),
        "text_latency_ms": latencies,
        "rows": rows,
    }


async def image_latency(url: str, frames: int) -> list[float]:
    """The integration's StudentClient on scene frames: the production request, timed."""
    library = SceneLibrary.default()
    client = ollama.AsyncClient(host=url)
    student = StudentClient(client, STUDENT, timeout=120.0, semaphore=asyncio.Semaphore(1))
    times = []
    for scene in library.scenes[:frames]:
        answer = await student.ask(library.jpeg(scene.id), STUDENT_SYSTEM_PROMPT)
        if isinstance(answer, StudentAnswer):
            times.append(answer.latency_ms)
    await client._client.aclose()
    return times


async def prompt_lab(url: str, rounds: int, candidates: int) -> dict[str, Any]:
    """The add-on's lab with the 270M as student and teacher, on the default text suite."""
    options = Options(
        teacher_url=url,
        teacher_model=TEXT,
        student_url=url,
        student_model=TEXT,
        embedding_model=EMBED,
        teacher_timeout_s=600.0,
        lab_student_timeout_s=120.0,
        lab_concurrency=1,
    )
    with tempfile.TemporaryDirectory(prefix="vt-bench-lab-") as data:
        async with (
            run_service(options, Path(data)) as service,
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {service.token}"}) as http,
        ):

            async def call(method: str, path: str, body: Any = None) -> Any:
                async with http.request(method, service.url + path, json=body) as response:
                    return await response.json()

            student_calls = teacher_calls = 0
            done = 0
            messages = []
            for _ in range(rounds):
                started = await call("POST", "/api/v1/prompts/synthesize", {"count": candidates})
                while True:
                    job = await call("GET", f"/api/v1/jobs/{started['job_id']}")
                    if job["state"] in ("done", "failed"):
                        break
                    await asyncio.sleep(1)
                messages.append(job["message"])
                result = job.get("result") or {}
                student_calls += result.get("student_calls", 0)
                teacher_calls += result.get("teacher_calls", 0)
                done += job["state"] == "done"
            seed = await call("GET", "/api/v1/prompts/v1")
            active = await call("GET", "/api/v1/prompts/active")
            best = await call("GET", f"/api/v1/prompts/{active['version']}")
            prompts = (await call("GET", "/api/v1/prompts"))["prompts"]
    return {
        "seed_holdout": seed["holdout_score"],
        "promoted_holdout": best["holdout_score"] if active["version"] != "v1" else None,
        "active_version": active["version"],
        "rounds": rounds,
        "rounds_done": done,
        "candidates_registered": len(prompts) - 1,
        "student_calls": student_calls,
        "teacher_calls": teacher_calls,
        "job_messages": messages,
    }


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def table(result: dict[str, Any]) -> str:
    lab, lat = result["prompt_lab"], result["latency_ms"]
    fmt = lambda v: "n/a" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = [
        "# Real models on a real Ollama",
        "",
        f"`{result['command']}` on {result['machine']} (Ollama {result['ollama_version']}, CPU only,",
        "built from source by scripts/ollama-build). Every figure here is from real models; every",
        "other table in benchmarks/results is from the simulator's scripted models.",
        "",
        "Models: Gemma 3 270M (base, Q4_K_M) as the lab's student and teacher and for the text",
        "cases; all-MiniLM-L6-v2 for embeddings; a generated gemma4-architecture model with random",
        "weights for the per-frame timing (the real gemma4 image path; its answers mean nothing).",
        "",
        "## Prompt lab (default suite, text cases)",
        "",
        "| seed holdout | promoted holdout | rounds (finished) | candidates registered | student calls | teacher calls |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {fmt(lab['seed_holdout'])} | {fmt(lab['promoted_holdout'])} | {lab['rounds']} ({lab['rounds_done']}) "
        f"| {lab['candidates_registered']} | {lab['student_calls']} | {lab['teacher_calls']} |",
        "",
        "Jobs said: " + "; ".join(f"“{m}”" for m in lab["job_messages"]),
        "",
        "## Do token logprobs carry signal? (text cases, Gemma 3 270M)",
        "",
        "Readable = the integration's parser reads the answer; *exact* = exactly the expected",
        "flags; *hazard* = a hazard flagged exactly when one is expected. The AUCs rank right",
        "(hazard) against wrong among the readable answers (0.5 = no signal). *Effective* is the",
        "integration's rule, min(stated, token evidence); *token evidence* is the logprob part alone.",
        "",
        "| system prompt | cases | readable | cut off | right: exact | right: hazard | AUC effective | AUC token evidence | AUC stated | median token evidence | median stated |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {name} | {c['cases']} | {c['readable']} | {c['cut_off']} | {c['right']} | {c['hazard_right']} "
            f"| {fmt(c['logprob_auc'])} | {fmt(c['token_auc'])} | {fmt(c['stated_auc'])} "
            f"| {fmt(c['token_evidence_median'])} | {fmt(c['stated_median'])} |"
            for name, c in result["confidence"].items()
        ),
        "",
        "`builtin` is the integration's own system prompt; `examples` adds two worked examples",
        "(not validation cases), without which a base model rarely writes the contract.",
        "",
        "## Student answer time (medians of one run; this machine was shared)",
        "",
        "| per camera frame (gemma4 architecture, tiny) | per text case (Gemma 3 270M) |",
        "| --- | --- |",
        f"| {fmt(lat['per_image_median'])} ms (n={lat['images']}) | {fmt(lat['per_text_median'])} ms (n={lat['texts']}) |",
        "",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    ensure_models(url)
    async with aiohttp.ClientSession() as http, http.get(url + "/api/version") as response:
        version = (await response.json())["version"]
    signals = {name: await confidence_signal(url, text) for name, text in PROMPTS.items()}
    images = await image_latency(url, args.frames)
    lab = await prompt_lab(url, args.rounds, args.candidates)
    best = signals["examples"]
    return {
        "command": "python -m benchmarks.real_models " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "ollama_version": version,
        "prompt_lab": lab,
        # The headline AUCs: the prompt with worked examples, the only one with readable answers
        # to rank (both prompts' figures are under "confidence").
        "logprob_auc": best["logprob_auc"],
        "stated_auc": best["stated_auc"],
        "confidence": {
            name: {k: v for k, v in signal.items() if k not in ("rows", "text_latency_ms")}
            for name, signal in signals.items()
        },
        "latency_ms": {
            "per_image_median": _median(images),
            "images": len(images),
            "per_text_median": _median(signals["builtin"]["text_latency_ms"]),
            "texts": len(signals["builtin"]["text_latency_ms"]),
        },
        "rows": {name: signal["rows"] for name, signal in signals.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_models", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--url", default=os.environ.get("VISION_TUTOR_OLLAMA_URL"))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(run_ollama()).url
        result = asyncio.run(run(args, url))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real_models.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "real_models.md").write_text(table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
