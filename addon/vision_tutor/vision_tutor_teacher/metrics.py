"""``GET /metrics``: the statistics in Prometheus' text exposition format (version 0.0.4)."""

from __future__ import annotations

from typing import Final

from .models import Stats

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
PREFIX: Final = "vision_tutor"


def _metric(
    lines: list[str], name: str, kind: str, help_text: str, samples: list[tuple[str, float]]
) -> None:
    lines.append(f"# HELP {PREFIX}_{name} {help_text}")
    lines.append(f"# TYPE {PREFIX}_{name} {kind}")
    lines.extend(f"{PREFIX}_{name}{labels} {value:g}" for labels, value in samples)


def render(stats: Stats, teacher_reachable: bool) -> str:
    lines: list[str] = []
    _metric(
        lines,
        "queue_depth",
        "gauge",
        "Queued reviews by escalation reason.",
        [(f'{{reason="{reason.value}"}}', count) for reason, count in stats.queue_depth.items()],
    )
    _metric(
        lines,
        "reviews_in_progress",
        "gauge",
        "Reviews with the teacher now.",
        [("", stats.in_progress)],
    )
    _metric(
        lines,
        "reviews_total",
        "counter",
        "Reviews by outcome since the data directory was created.",
        [
            ('{outcome="accepted"}', stats.accepted),
            ('{outcome="processed"}', stats.processed),
            ('{outcome="shed"}', stats.shed),
            ('{outcome="superseded"}', stats.superseded),
            ('{outcome="failed"}', stats.failed),
            ('{outcome="refused"}', stats.refused),
        ],
    )
    if stats.teacher_latency_ms is not None:
        _metric(
            lines,
            "teacher_latency_ms",
            "gauge",
            "Teacher answer time over recent verdicts.",
            [
                ('{quantile="0.5"}', stats.teacher_latency_ms.p50),
                ('{quantile="0.95"}', stats.teacher_latency_ms.p95),
            ],
        )
    if stats.agreement_rate is not None:
        _metric(
            lines,
            "agreement_rate",
            "gauge",
            "Share of verdicts agreeing with the student.",
            [("", stats.agreement_rate)],
        )
    _metric(
        lines,
        "teacher_up",
        "gauge",
        "1 when the teacher is reachable and has its model.",
        [("", 1 if teacher_reachable else 0)],
    )
    return "\n".join(lines) + "\n"
