"""The web page shown in Home Assistant's sidebar through ingress: queue, verdicts, statistics.

Server-rendered HTML with no script: it works behind the ingress proxy's path prefix because
every link is relative, and it refreshes itself. It grows with the prompt lab.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Final

from vision_tutor_teacher.models import ReviewOut, Stats

REFRESH_S: Final = 10

STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1c1c1c; background: #fafafa; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; } h2 { font-size: 1.1rem; margin-top: 1.75rem; }
.muted { color: #666; } .bad { color: #b00020; } .ok { color: #1b5e20; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e4e4e4;
  vertical-align: top; font-size: .9rem; }
th { background: #f0f0f0; }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; }
.card { background: #fff; border: 1px solid #e4e4e4; border-radius: 6px; padding: .6rem .9rem; }
.card b { display: block; font-size: 1.3rem; }
img { width: 160px; border-radius: 4px; display: block; }
.p5 { color: #b00020; font-weight: 600; } .p4 { color: #e65100; } .p3 { color: #8d6e00; }
"""


def _time(value: datetime) -> str:
    return escape(value.astimezone().strftime("%Y-%m-%d %H:%M:%S"))


def _card(label: str, value: object) -> str:
    return f'<div class="card"><span class="muted">{escape(label)}</span><b>{escape(str(value))}</b></div>'


AGREEMENT_BASIS: Final = {
    "flags_and_summary": "on the flags and the summary",
    "flags_only": "on the flags only (the summaries could not be compared)",
    "no_student_answer": "the student gave no readable answer",
}


def camera_cell(camera: str, name: str) -> str:
    """A camera as its user knows it (the name the integration sent), the entity id beside."""
    if not name:
        return escape(camera)
    return f'{escape(name)}<br><span class="muted">{escape(camera)}</span>'


def agreement_text(basis: str, similarity: float | None) -> str:
    text = AGREEMENT_BASIS.get(basis, basis.replace("_", " "))
    if similarity is not None:
        text += f", summaries {similarity:.0%} alike"
    return text


def _table(headers: Iterable[str], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _queue_row(review: ReviewOut) -> str:
    return (
        f'<tr><td class="p{review.priority}">{review.priority} {escape(review.reason)}</td>'
        f"<td>{camera_cell(review.camera, review.camera_name)}</td>"
        f"<td>{escape(review.status)}</td>"
        f"<td>{review.attempts}</td><td>{_time(review.created_at)}</td>"
        f"<td>{escape(review.last_error or '')}</td></tr>"
    )


def _verdict_row(review: ReviewOut) -> str:
    verdict = review.verdict
    assert verdict is not None
    agreement = verdict.agreement
    agrees = (
        '<span class="ok">agrees</span>'
        if verdict.agrees_with_student
        else '<span class="bad">disagrees</span>'
    )
    flags = ", ".join(verdict.verdict.safety_flags) or "none"
    return (
        f'<tr><td><img src="frames/{escape(review.id)}.jpg" alt="frame" loading="lazy"></td>'
        f"<td>{camera_cell(review.camera, review.camera_name)}<br>"
        f'<span class="muted">{escape(review.reason)}</span></td>'
        f'<td>{escape(verdict.verdict.summary)}<br><span class="muted">flags: {escape(flags)}'
        f'</span></td><td>{agrees}<br><span class="muted">'
        f"{escape(agreement_text(agreement.basis, agreement.summary_similarity))}</span></td>"
        f"<td>{verdict.latency_ms:.0f} ms</td>"
        f"<td>{_time(review.updated_at)}</td></tr>"
    )


def _dropped_row(review: ReviewOut) -> str:
    return (
        f"<tr><td>{camera_cell(review.camera, review.camera_name)}</td>"
        f"<td>{escape(review.reason)}</td>"
        f"<td>{escape(review.status)}</td><td>{review.attempts}</td>"
        f"<td>{escape(review.last_error or '')}</td><td>{_time(review.updated_at)}</td></tr>"
    )


@dataclass(frozen=True, slots=True)
class HostRow:
    """One host of the teacher pool, as the page lists it."""

    url: str
    model: str
    error: str | None
    breaker: str
    in_flight: int
    concurrency: int
    reviewed: int


def _host_row(host: HostRow) -> str:
    state = (
        '<span class="ok">reachable</span>'
        if host.error is None
        else f'<span class="bad">{escape(host.error)}</span>'
    )
    return (
        f"<tr><td>{escape(host.url)}</td><td>{escape(host.model)}</td><td>{state}</td>"
        f"<td>{escape(host.breaker)}</td><td>{host.in_flight} of {host.concurrency}</td>"
        f"<td>{host.reviewed}</td></tr>"
    )


def _direct_access(token: str | None) -> str:
    """The API token, for the page opened through ingress: a browser on a published port signs
    in with it (any user name), and a standalone integration is set up with it."""
    if token is None:
        return ""
    return (
        '<h2 id="direct-access">Direct access</h2><details><summary>Show the API token</summary>'
        f'<p><code class="token">{escape(token)}</code></p><p class="muted">With the port '
        "published (the add-on's Network settings), this page opens in a browser at "
        "http://&lt;host&gt;:&lt;port&gt;/: sign in with any user name and this token as "
        "password. Keep it secret: the page shows camera frames.</p></details>"
    )


def render_page(
    *,
    version: str,
    stats: Stats,
    teacher_error: str | None,
    problems: list[str],
    pending: list[ReviewOut],
    verdicts: list[ReviewOut],
    dropped: list[ReviewOut],
    hosts: Sequence[HostRow] = (),
    token: str | None = None,
) -> str:
    teacher = (
        '<span class="ok">teacher reachable</span>'
        if teacher_error is None
        else f'<span class="bad">teacher unavailable: {escape(teacher_error)}</span>'
    )
    degraded = "".join(f'<p class="bad">degraded: {escape(problem)}</p>' for problem in problems)
    pool = (
        "<h2>Teacher hosts</h2>"
        + _table(
            ("host", "model", "state", "breaker", "reviewing", "verdicts"),
            [_host_row(host) for host in hosts],
            "",
        )
        if len(hosts) > 1
        else ""
    )
    latency = stats.teacher_latency_ms
    agreement = "n/a" if stats.agreement_rate is None else f"{stats.agreement_rate:.0%}"
    cards = "".join(
        (
            _card("queued", stats.queued),
            _card("with the teacher", stats.in_progress),
            _card("verdicts", stats.processed),
            _card("agreement", agreement),
            _card(
                "latency p50 / p95",
                "n/a" if latency is None else f"{latency.p50:.0f} / {latency.p95:.0f} ms",
            ),
            _card("shed", stats.shed),
            _card("superseded", stats.superseded),
            _card("failed", stats.failed),
            _card("refused", stats.refused),
        )
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_S}">
<title>Vision Tutor</title><style>{STYLE}</style></head>
<body>
<h1>Vision Tutor teacher</h1>
<p class="muted">version {escape(version)} · {teacher} · <a href="lab">prompt lab</a></p>
{degraded}
<div class="cards">{cards}</div>
{pool}
<h2>Queue</h2>
{_table(("priority", "camera", "status", "attempts", "queued at", "last error"), [_queue_row(r) for r in pending], "Nothing waiting for the teacher.")}
<h2>Recent verdicts</h2>
{_table(("frame", "camera", "teacher's verdict", "student", "latency", "at"), [_verdict_row(r) for r in verdicts], "No verdicts yet.")}
<h2>Dead letters and dropped reviews</h2>
{_table(("camera", "reason", "status", "attempts", "error", "at"), [_dropped_row(r) for r in dropped], "Nothing failed, shed or superseded.")}
{_direct_access(token)}
</body></html>
"""
