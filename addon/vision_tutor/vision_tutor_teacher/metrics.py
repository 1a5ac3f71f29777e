"""``GET /metrics``: the statistics in Prometheus' text exposition format (version 0.0.4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class HostMetrics:
    """One host of the teacher pool."""

    url: str
    up: bool
    breaker_open: bool
    in_flight: int
    reviewed: int
    failed_attempts: int
    busy_answers: int
    moved: int


@dataclass(frozen=True, slots=True)
class Health:
    teacher_reachable: bool
    healthy: bool
    breaker_open: bool
    breaker_opened: int
    busy_answers: int
    storage_failing: bool
    storage_free_bytes: int | None
    restarts: Mapping[str, int]
    hosts: Sequence[HostMetrics] = field(default_factory=tuple)


def _label(value: str) -> str:
    """A label value escaped as the exposition format wants it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _per_host(
    lines: list[str],
    hosts: Sequence[HostMetrics],
    name: str,
    kind: str,
    help_text: str,
    value: str,
) -> None:
    _metric(
        lines,
        name,
        kind,
        help_text,
        [(f'{{host="{_label(host.url)}"}}', float(getattr(host, value))) for host in hosts],
    )


def render(stats: Stats, health: Health) -> str:
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
        [("", 1 if health.teacher_reachable else 0)],
    )
    _metric(
        lines,
        "healthy",
        "gauge",
        "1 when nothing is failing (health status ok), 0 when degraded.",
        [("", 1 if health.healthy else 0)],
    )
    _metric(
        lines,
        "breaker_open",
        "gauge",
        "1 while the teacher's circuit breaker holds the reviews.",
        [("", 1 if health.breaker_open else 0)],
    )
    _metric(
        lines,
        "breaker_opened_total",
        "counter",
        "Times the circuit breaker opened since the service started.",
        [("", health.breaker_opened)],
    )
    _metric(
        lines,
        "teacher_busy_total",
        "counter",
        "Busy (503) answers from the teacher since the service started.",
        [("", health.busy_answers)],
    )
    _metric(
        lines,
        "storage_failing",
        "gauge",
        "1 while writes to the data directory fail.",
        [("", 1 if health.storage_failing else 0)],
    )
    if health.storage_free_bytes is not None:
        _metric(
            lines,
            "storage_free_bytes",
            "gauge",
            "Free space in the data directory.",
            [("", health.storage_free_bytes)],
        )
    _metric(
        lines,
        "restarts_total",
        "counter",
        "Restarts of failed background parts since the service started.",
        [(f'{{part="{part}"}}', count) for part, count in sorted(health.restarts.items())],
    )
    hosts = health.hosts
    _per_host(
        lines,
        hosts,
        "teacher_host_up",
        "gauge",
        "1 while this teacher host is reachable with its model.",
        "up",
    )
    _per_host(
        lines,
        hosts,
        "teacher_host_breaker_open",
        "gauge",
        "1 while this host's circuit breaker holds its reviews.",
        "breaker_open",
    )
    _per_host(
        lines, hosts, "teacher_host_in_flight", "gauge", "Reviews with this host now.", "in_flight"
    )
    _per_host(
        lines,
        hosts,
        "teacher_host_reviews_total",
        "counter",
        "Verdicts from this host since the service started.",
        "reviewed",
    )
    _per_host(
        lines,
        hosts,
        "teacher_host_failed_attempts_total",
        "counter",
        "Attempts that failed on this host since the service started.",
        "failed_attempts",
    )
    _per_host(
        lines,
        hosts,
        "teacher_host_busy_total",
        "counter",
        "Busy (503) answers from this host since the service started.",
        "busy_answers",
    )
    _per_host(
        lines,
        hosts,
        "teacher_host_moved_total",
        "counter",
        "Reviews handed to another host because this one went down with them.",
        "moved",
    )
    return "\n".join(lines) + "\n"
