"""The prompt lab's web page (``/lab``, linked from the main page, shown through ingress).

Server-rendered HTML without script, like the main page: every link and form action is relative
so it works under the ingress path prefix. Forms post to ``lab/<action>`` and are answered with a
redirect back to the page (post/redirect/get). A browser that opened the page with basic
authentication would send those credentials along with a forged cross-site form, so every form
carries a token derived from the API token, and an action without it is refused.

The page shows the task spec editor, the leaderboard (score breakdowns, cost, lineage, promote),
a plot of the holdout score over versions, a diff between two versions, rollback and the log,
running jobs with their progress, the validation suite with thumbnails, curated examples to
accept, and the fine-tuning status with the JSONL export.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import difflib
import hashlib
import hmac
from html import escape
import json
from typing import Final
from urllib.parse import quote

from vision_tutor_teacher.lab.models import (
    CaseList,
    ExampleList,
    FinetuneStatus,
    JobList,
    JobOut,
    JobState,
    LogEntry,
    PromptOut,
    PromptStatus,
    TaskSpec,
)

from .reviews import STYLE as BASE_STYLE, camera_cell

REFRESH_WHILE_RUNNING_S: Final = 3
METHOD_COLUMNS: Final = ("safety", "keyword", "embedding", "contract", "forbidden", "judge")
PLOT_WIDTH: Final = 640
PLOT_HEIGHT: Final = 200

_STYLE: Final = (
    BASE_STYLE
    + """
textarea { width: 100%; font-family: ui-monospace, monospace; font-size: .85rem; }
form.inline { display: inline; }
button { cursor: pointer; }
.bar { background: #e4e4e4; border-radius: 3px; width: 160px; height: .6rem; display: inline-block; }
.bar span { background: #1b5e20; border-radius: 3px; height: 100%; display: block; }
.active { background: #e8f5e9; }
del { background: #ffebee; } ins { background: #e8f5e9; text-decoration: none; }
.diff { background: #fff; border: 1px solid #e4e4e4; padding: .6rem; white-space: pre-wrap; }
img.thumb { width: 120px; }
details summary { cursor: pointer; color: #444; }
.notice { background: #fff8e1; border: 1px solid #ffe082; padding: .5rem .8rem; border-radius: 6px; }
"""
)


def form_token(token: str) -> str:
    """The anti-forgery token every form carries (not the API token itself)."""
    return hmac.new(token.encode(), b"vision-tutor-lab-form", hashlib.sha256).hexdigest()[:32]


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _form(action: str, token: str, body: str, *, inline: bool = True) -> str:
    css = ' class="inline"' if inline else ""
    return (
        f'<form method="post" action="lab/{action}"{css}>'
        f'<input type="hidden" name="csrf" value="{token}">{body}</form>'
    )


def _table(headers: Iterable[str], rows: Sequence[str], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


JOB_KINDS: Final = {"synthesize": "Synthesis", "score": "Scoring"}


def _job_name(job: JobOut) -> str:
    return f"{JOB_KINDS.get(job.kind, str(job.kind))} job {job.job_id[:8]}"


def _job_outcome(job: JobOut) -> str:
    """What a finished job did, from its result: candidates, rejections, the gate's decision."""
    result = job.result or {}
    if job.state is JobState.FAILED:
        return f'<span class="bad">{escape(str(result.get("error") or job.message))}</span>'
    if job.state is not JobState.DONE:
        return ""
    parts: list[str] = []
    candidates = result.get("candidates")
    if isinstance(candidates, list):
        names = ", ".join(escape(str(c)) for c in candidates) or "none"
        parts.append(f"new candidates: {names}")
    gate = result.get("gate")
    if isinstance(gate, dict) and gate.get("version"):
        verdict = "passed" if gate.get("passed") else "not passed"
        reason = escape(str(gate.get("reason", "")))
        parts.append(f"gate: {escape(str(gate['version']))} {verdict} ({reason})")
    if result.get("promoted"):
        parts.append(f"<b>promoted {escape(str(result['promoted']))}</b>")
    outcome = " · ".join(parts)
    rejected = [r for r in result.get("rejected") or () if isinstance(r, dict)]
    if rejected:
        items = "".join(
            f"<li><b>{escape(str(r.get('reason', '')))}</b>: "
            f"<span class='muted'>{escape(str(r.get('text', '')))}</span></li>"
            for r in rejected
        )
        noun = "candidate" if len(rejected) == 1 else "candidates"
        outcome += (
            f'<details class="rejected"><summary>{len(rejected)} rejected {noun}</summary>'
            f"<ul>{items}</ul></details>"
        )
    return outcome


def _jobs(jobs: JobList) -> str:
    rows = []
    for job in jobs.jobs[:8]:
        bar = f'<span class="bar"><span style="width:{job.progress * 100:.0f}%"></span></span>'
        state_class = "bad" if job.state is JobState.FAILED else ""
        rows.append(
            f'<tr id="job-{escape(job.job_id)}"><td>{escape(_job_name(job))}</td>'
            f"<td class='{state_class}'>{escape(job.state)}</td>"
            f"<td>{bar} {job.progress:.0%}</td><td>{escape(job.message)}</td>"
            f"<td>{_job_outcome(job)}</td>"
            f"<td>{escape(job.created_at.astimezone().strftime('%Y-%m-%d %H:%M:%S'))}</td></tr>"
        )
    return _table(
        ("job", "state", "progress", "message", "outcome", "started"), rows, "No lab jobs yet."
    )


def _job_notice(jobs: JobList, job_id: str) -> str:
    """The banner about the job this page was opened for: where it is now, not when it began."""
    job = next((j for j in jobs.jobs if j.job_id == job_id), None)
    if job is None:
        return ""
    name = escape(_job_name(job))
    if job.state is JobState.QUEUED:
        text = f"{name} is waiting to start."
    elif job.state is JobState.RUNNING:
        text = f"{name} is running: {job.progress:.0%}, {escape(job.message)}."
    elif job.state is JobState.DONE:
        text = f"{name} is done: {escape(job.message)}."
    else:
        text = f'<span class="bad">{name} failed: {escape(job.message)}.</span>'
    return f'<p class="notice" data-job-state="{escape(job.state)}">{text}</p>'


def _leaderboard(prompts: Sequence[PromptOut], token: str) -> str:
    rows = []
    for prompt in prompts:
        holdout = prompt.scores_by_method.get("holdout", {})
        train = prompt.scores_by_method.get("train", {})
        methods = "".join(
            f"<td>{_score(holdout.get(name, train.get(name)))}</td>" for name in METHOD_COLUMNS
        )
        stale = "" if prompt.current.get("holdout") else ' <span class="muted">(stale)</span>'
        cost = prompt.cost
        cost_text = (
            "-"
            if cost is None or cost.latency_ms_mean is None
            else f"{cost.latency_ms_mean:.0f} ms, {cost.answer_chars_mean or 0:.0f} chars"
        )
        action = (
            "<b>active</b>"
            if prompt.status is PromptStatus.ACTIVE
            else _form(
                "promote",
                token,
                f'<input type="hidden" name="version" value="{escape(prompt.version)}">'
                "<button>promote</button>",
            )
        )
        css = ' class="active"' if prompt.status is PromptStatus.ACTIVE else ""
        rows.append(
            f"<tr{css}><td><b>{escape(prompt.version)}</b><br><span class='muted'>"
            f"{escape(prompt.source)} · parent {escape(prompt.parent or '-')}</span></td>"
            f"<td>{escape(prompt.status)}</td><td>{_score(prompt.train_score)}</td>"
            f"<td>{_score(prompt.holdout_score)}{stale}</td>{methods}<td>{cost_text}</td>"
            f"<td>{action}</td><td><details><summary>text</summary>{escape(prompt.text)}"
            "</details></td></tr>"
        )
    headers = ("version", "status", "train", "holdout", *METHOD_COLUMNS, "cost", "", "prompt")
    return _table(headers, rows, "No prompts.")


def _plot(prompts: Sequence[PromptOut], minimum: float) -> str:
    """Holdout score over versions, as inline SVG; the gate's minimum as a dashed line."""
    points = sorted(
        (int(p.version[1:]), p.holdout_score, p.status is PromptStatus.ACTIVE)
        for p in prompts
        if p.holdout_score is not None
    )
    if not points:
        return '<p class="muted">No holdout scores yet.</p>'
    last = max(number for number, _, _ in points)
    low = min(0.5, minimum, *(score for _, score, _ in points))

    def x(number: int) -> float:
        return 40 + (PLOT_WIDTH - 60) * (number - 1) / max(1, last - 1)

    def y(score: float) -> float:
        return 10 + (PLOT_HEIGHT - 30) * (1 - (score - low) / (1 - low))

    line = " ".join(f"{x(n):.1f},{y(s):.1f}" for n, s, _ in points)
    dots = "".join(
        f'<circle cx="{x(n):.1f}" cy="{y(s):.1f}" r="{5 if active else 3}" '
        f'fill="{"#1b5e20" if active else "#555"}"><title>v{n}: {s:.3f}</title></circle>'
        for n, s, active in points
    )
    labels = "".join(
        f'<text x="{x(n):.1f}" y="{PLOT_HEIGHT - 4}" font-size="10" text-anchor="middle">v{n}</text>'
        for n, _, _ in points
    )
    return (
        f'<svg width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" role="img" '
        'aria-label="holdout score over versions" style="background:#fff;border:1px solid #e4e4e4">'
        f'<line x1="40" x2="{PLOT_WIDTH - 20}" y1="{y(minimum):.1f}" y2="{y(minimum):.1f}" '
        'stroke="#b00020" stroke-dasharray="4 3"/>'
        f'<text x="4" y="{y(minimum) + 4:.1f}" font-size="10" fill="#b00020">{minimum:.2f}</text>'
        f'<text x="4" y="14" font-size="10">1.00</text>'
        f'<polyline points="{line}" fill="none" stroke="#555"/>{dots}{labels}</svg>'
    )


def word_diff(old: str, new: str) -> str:
    """Escaped HTML of a word-level diff: removed words in <del>, added in <ins>."""
    a, b = old.split(), new.split()
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escape(" ".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{escape(' '.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{escape(' '.join(b[j1:j2]))}</ins>")
    return " ".join(out)


def _diff(prompts: Sequence[PromptOut], first: str | None, second: str | None) -> str:
    by_version = {p.version: p for p in prompts}
    options = "".join(f"<option>{escape(p.version)}</option>" for p in prompts)

    def select(name: str, chosen: str | None) -> str:
        marked = options
        if chosen in by_version:
            marked = options.replace(
                f"<option>{escape(chosen)}</option>", f"<option selected>{escape(chosen)}</option>"
            )
        return f'<select name="{name}">{marked}</select>'

    picker = (
        '<form method="get" action="lab">Compare '
        f"{select('a', first)} with {select('b', second)} <button>diff</button></form>"
    )
    if first in by_version and second in by_version:
        body = word_diff(by_version[first].text, by_version[second].text)
        return f'{picker}<div class="diff">{body}</div>'
    return picker


def _log(entries: Sequence[LogEntry]) -> str:
    rows = [
        f"<tr><td>{escape(e.at.astimezone().strftime('%Y-%m-%d %H:%M:%S'))}</td>"
        f"<td>{escape(e.action)}</td><td>{escape(e.previous or '-')} → {escape(e.version)}</td>"
        f"<td>{'by hand' if e.manual else 'gate'}</td><td>{escape(e.detail)}</td></tr>"
        for e in entries[:20]
    ]
    return _table(("at", "action", "change", "by", "detail"), rows, "No promotion yet.")


def _task(task: TaskSpec, token: str) -> str:
    schema = json.dumps(task.output_schema, indent=2)
    return _form(
        "task",
        token,
        f'<label>Task<textarea name="text" rows="6">{escape(task.text)}</textarea></label>'
        f'<label>User message<textarea name="user_prompt" rows="1">{escape(task.user_prompt)}'
        "</textarea></label>"
        f'<details><summary>Output contract (JSON schema)</summary><textarea name="schema" '
        f'rows="12">{escape(schema)}</textarea></details><button>save task spec</button>',
        inline=False,
    )


def _cases(cases: CaseList, token: str) -> str:
    rows = []
    for case in cases.cases:
        shown = (
            f'<img class="thumb" src="lab/cases/{escape(case.id)}.jpg" alt="frame" loading="lazy">'
            if case.kind == "image"
            else escape(case.text or "")
        )
        keywords = ", ".join("|".join(group) for group in case.expected_keywords)
        forbidden = ", ".join("|".join(group) for group in case.forbidden_keywords)
        reference = "" if case.reference is None else escape(case.reference.summary)
        delete = _form(
            "delete-case",
            token,
            f'<input type="hidden" name="id" value="{escape(case.id)}"><button>delete</button>',
        )
        rows.append(
            f"<tr><td>{shown}</td><td>{escape(case.name)}<br><span class='muted'>"
            f"{escape(case.source)}</span></td><td>{escape(case.split)}</td>"
            f"<td>{case.weight:g}</td><td>{escape(', '.join(case.expected_flags) or 'none')}</td>"
            f"<td>{escape(keywords)}</td><td>{escape(forbidden)}</td>"
            f"<td class='muted'>{reference}</td><td>{delete}</td></tr>"
        )
    headers = ("case", "name", "split", "weight", "flags", "keywords", "forbidden", "reference", "")
    summary = f"{cases.train} train, {cases.holdout} holdout cases."
    return f'<p class="muted">{summary} <a href="lab/suite.json">export</a></p>' + _table(
        headers, rows, "The suite is empty."
    )


def _examples(listing: ExampleList, token: str) -> str:
    rows = []
    for example in listing.examples:
        if example.case_id is not None:
            continue
        accept = _form(
            "accept",
            token,
            f'<input type="hidden" name="id" value="{escape(example.id)}">'
            "<button>accept into the suite</button>",
        )
        flags = ", ".join(example.verdict.safety_flags) or "none"
        agreement = "agrees" if example.agrees_with_student else "disagrees"
        rows.append(
            f'<tr><td><img class="thumb" src="frames/{escape(example.id)}.jpg" alt="frame" '
            f'loading="lazy"></td><td>{camera_cell(example.camera, example.camera_name)}</td>'
            f"<td>{escape(example.verdict.summary)}<br><span class='muted'>flags: "
            f"{escape(flags)} · student {agreement}</span></td><td>{accept}</td></tr>"
        )
    return f'<p class="muted">{listing.total} curated examples.</p>' + _table(
        ("frame", "camera", "teacher's verdict", ""), rows, "No example waiting."
    )


def _finetune(status: FinetuneStatus) -> str:
    css = "notice" if status.ready else "muted"
    return (
        f'<p class="{css}">{escape(status.reason)}</p>'
        f'<p><a href="lab/finetune.jsonl">export the curated examples as JSONL</a> '
        f'<span class="muted">({status.examples} examples, chat format with images)</span></p>'
    )


def render_lab_page(
    *,
    token: str,
    prompts: Sequence[PromptOut],
    jobs: JobList,
    entries: Sequence[LogEntry],
    task: TaskSpec,
    cases: CaseList,
    listing: ExampleList,
    status: FinetuneStatus,
    minimum: float,
    margin: float,
    diff: tuple[str | None, str | None],
    message: str | None,
    job_id: str | None = None,
) -> str:
    active = next((p for p in prompts if p.status is PromptStatus.ACTIVE), None)
    running = any(job.state in (JobState.QUEUED, JobState.RUNNING) for job in jobs.jobs)
    # While a job runs the page reloads itself, without the last action's message (it would
    # stay forever) but with the job it follows, whose banner then says where the job is.
    again = f"lab?job={quote(job_id)}" if job_id else "lab"
    refresh = (
        f'<meta http-equiv="refresh" content="{REFRESH_WHILE_RUNNING_S}; url={again}">'
        if running
        else ""
    )
    notice = _job_notice(jobs, job_id) if job_id else ""
    if message and not notice:
        notice = f'<p class="notice">{escape(message)}</p>'
    headline = (
        "no active prompt"
        if active is None
        else f"active prompt <b>{escape(active.version)}</b>, holdout "
        f"{_score(active.holdout_score)}"
    )
    synthesize = _form(
        "synthesize",
        token,
        '<label>candidates <input type="number" name="count" value="5" min="1" max="10"></label> '
        '<label>notes <input type="text" name="notes" size="40"></label> '
        "<button>synthesize</button>",
    )
    actions = (
        f"{synthesize} {_form('score', token, '<button>score stale prompts</button>')} "
        f"{_form('rollback', token, '<button>roll back</button>')}"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}
<title>Vision Tutor prompt lab</title><style>{_STYLE}</style></head>
<body>
<h1>Prompt lab</h1>
<p class="muted"><a href=".">queue</a> · {headline} · gate: holdout ≥ {minimum:.2f} and
{margin:+.2f} over the active prompt</p>
{notice}
<p>{actions}</p>
<h2>Jobs</h2>
{_jobs(jobs)}
<h2>Leaderboard</h2>
{_leaderboard(prompts, token)}
<h2>Holdout score over versions</h2>
{_plot(prompts, minimum)}
<h2>Compare versions</h2>
{_diff(prompts, *diff)}
<h2>Promotions and rollbacks</h2>
{_log(entries)}
<h2>Task spec</h2>
{_task(task, token)}
<h2>Validation suite</h2>
{_cases(cases, token)}
<h2>Curated examples</h2>
{_examples(listing, token)}
<h2>Fine-tuning</h2>
{_finetune(status)}
</body></html>
"""
