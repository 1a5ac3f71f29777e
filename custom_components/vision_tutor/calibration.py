"""Confidence that means something: calibration from the teacher's verdicts, per camera.

Pure logic, no Home Assistant imports. Every frame the teacher reviews is a labelled sample:
the student's confidence signals (stated, token evidence) and whether the teacher agreed. The
labelled frames are not a random sample of the camera's frames (everything below the
threshold is reviewed, above it only the random audits), so each sample is weighted by the
inverse of the probability that its frame was reviewed: 1 for a frame the policy had to send
(safety, a student error, a new flag, below the threshold) and N for a 1-in-N audit. The
weighted sample then stands for all the camera's analysed frames (inverse-propensity
weighting), whatever the threshold and audit rate were when each sample was taken. Older
samples decay (a half-life) and the sample is bounded.

From it, once enough audits exist:

- a monotone calibration (isotonic regression, pool-adjacent-violators) of the signal that
  ranks right above wrong answers best on the camera's own verdicts: the stated confidence, the
  token evidence, or the lower of the two (today's rule). A signal that carries no information
  gives a flat curve at the student's agreement rate: honest, not wrong;
- the threshold on that signal which meets the user's target: a teacher budget (share of
  analysed frames) or a maximum estimated missed-hazard rate;
- the audit rate: high while the calibration is thin, raised while it settles or drifts, the
  user's own when it is stable.

Until then the current rule stands (`routing.effective_confidence` against the user's fixed
minimum confidence), with audits raised so that the calibration fills.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
import math
from typing import Any, Final, Literal

type SignalKind = Literal["effective", "stated", "evidence"]
type Bucket = Literal["all", "day", "night"]
type State = Literal["thin", "settling", "drifting", "stable"]
type BucketMode = Literal["off", "sun", "hours"]
BUCKET_MODES: Final[tuple[BucketMode, ...]] = ("sun", "hours", "off")

BUCKETS: Final[tuple[Bucket, ...]] = ("all", "day", "night")
SIGNALS: Final[tuple[SignalKind, ...]] = ("effective", "stated", "evidence")
"""Candidate signals, today's rule first (it wins ties)."""

MIN_AUDITS: Final = 30
"""Random audits (decayed to at least a quarter of their weight) a calibration needs when audits
speak for nearly all frames; fewer when most frames are reviewed anyway (`audits_needed`)."""
MIN_AUDITS_FLOOR: Final = 10
MIN_LABELLED: Final = 60
"""Labelled frames of any kind it needs, audits included."""
MAX_SAMPLES: Final = 3000
COUNT_DAYS: Final = 60
"""Days of hourly frame counts kept."""
"""Samples kept per camera; the oldest go first."""
HALF_LIFE_DAYS: Final = 14.0
AUDIT_RATE_THIN: Final = 4
"""1 in this many frames is audited while the calibration is thin."""
AUDIT_RATE_SETTLING: Final = 20
"""...while it is in use but has fewer than SETTLED_AUDITS audits, and while the recent
audits disagree with it (drifting)."""
AUDIT_BUDGET_SHARE: Final = 0.25
"""Of a teacher budget, the share (after the frames always sent) audits may take."""
SETTLED_AUDITS: Final = 100
"""Audits (as counted for MIN_AUDITS) from which the user's own audit rate applies."""
DRIFT_WINDOW: Final = 40
"""Recent audits compared with the calibration's prediction."""
DRIFT_Z: Final = 3.0
PRESSURE_SHARE: Final = 0.5
"""A teacher queue this full (of its limit) halves the budget."""
PROBABILITY_FLOOR: Final = 0.005
SHARE_Z: Final = 1.0
LOW_CONFIDENCE_FLOOR: Final = 0.02
"""The least-sure share of the frames not always sent goes to the teacher even when the frames
always sent exhaust the budget on their own: the budget cannot be held then anyway, and those
are the frames where the teacher's time catches the student's mistakes."""
"""Standard errors of margin when a threshold is chosen for a budget."""
DEFAULT_DAY: Final = (time(7, 0), time(19, 0))


class TargetKind(StrEnum):
    """What the user asks the policy to hold."""

    SHARE = "share"
    """A share of analysed frames the teacher may review."""
    REVIEWS_PER_HOUR = "reviews_per_hour"
    MISS_RATE = "miss_rate"
    """A maximum estimated missed-hazard rate, per 1000 analysed frames."""


@dataclass(frozen=True, slots=True)
class Target:
    """The user's target for one camera."""

    kind: TargetKind = TargetKind.SHARE
    value: float = 0.15

    def __post_init__(self) -> None:
        if self.value < 0 or (self.kind is TargetKind.SHARE and self.value > 1):
            raise ValueError("the target must be a share in 0..1 or a positive rate")


@dataclass(frozen=True, slots=True)
class Sample:
    """One frame the teacher reviewed."""

    stated: float | None
    evidence: float | None
    """Token evidence on the stated scale (`routing.token_evidence`); None without logprobs."""
    agreed: bool
    missed_hazard: bool
    """The teacher saw a hazard the student did not flag."""
    forced: bool
    """Sent whatever the threshold (safety, student error, new flag)."""
    weight: float
    """1 / P(reviewed) when it was taken."""
    at: float
    """POSIX time."""
    audit: bool = False
    bucket: Bucket = "all"

    def signal(self, kind: SignalKind) -> float | None:
        return signal_value(kind, self.stated, self.evidence)

    def as_dict(self) -> dict[str, Any]:
        return {
            "s": self.stated,
            "e": None if self.evidence is None else round(self.evidence, 5),
            "a": self.agreed,
            "m": self.missed_hazard,
            "f": self.forced,
            "w": self.weight,
            "t": round(self.at, 1),
            "u": self.audit,
            "b": self.bucket,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Sample:
        bucket: Bucket = next((b for b in BUCKETS if b == raw.get("b")), "all")
        return cls(
            stated=_optional_float(raw.get("s")),
            evidence=_optional_float(raw.get("e")),
            agreed=bool(raw["a"]),
            missed_hazard=bool(raw.get("m", False)),
            forced=bool(raw.get("f", False)),
            weight=max(1.0, float(raw.get("w", 1.0))),
            at=float(raw["t"]),
            audit=bool(raw.get("u", False)),
            bucket=bucket,
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def signal_value(kind: SignalKind, stated: float | None, evidence: float | None) -> float | None:
    """One signal of a frame; a missing part falls back to the other."""
    if kind == "stated" and stated is not None:
        return stated
    if kind == "evidence" and evidence is not None:
        return evidence
    if stated is None or evidence is None:
        return evidence if stated is None else stated
    return min(stated, evidence)


def decay(age_s: float, half_life_days: float = HALF_LIFE_DAYS) -> float:
    """The share of its weight a sample keeps after `age_s` seconds."""
    return float(0.5 ** (max(0.0, age_s) / (half_life_days * 86400)))


# --- Isotonic regression --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Isotonic:
    """A non-decreasing map from a signal to a probability: flat over each pooled block's range
    of signals, linear in the gaps between blocks, flat beyond the ends."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __call__(self, x: float) -> float:
        xs, ys = self.xs, self.ys
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        i = bisect_right(xs, x)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def fit_isotonic(points: Iterable[tuple[float, float, float]]) -> Isotonic:
    """Pool adjacent violators over (x, y, weight); raises ValueError without weight."""
    ordered = sorted((x, y, w) for x, y, w in points if w > 0)
    if not ordered:
        raise ValueError("no weighted points to fit")
    # Blocks: [weight, weighted y sum, lowest x, highest x]; equal x values pool at once.
    blocks: list[list[float]] = []
    for x, y, w in ordered:
        if blocks and x == blocks[-1][3]:
            blocks[-1][0] += w
            blocks[-1][1] += w * y
        else:
            blocks.append([w, w * y, x, x])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][0] >= blocks[-1][1] / blocks[-1][0]:
            w2, y2, _, high = blocks.pop()
            blocks[-1][0] += w2
            blocks[-1][1] += y2
            blocks[-1][3] = high
    xs: list[float] = []
    ys: list[float] = []
    for weight, total, low, high in blocks:
        value = min(1 - PROBABILITY_FLOOR, max(PROBABILITY_FLOOR, total / weight))
        for x in (low, high) if high > low else (low,):
            xs.append(x)
            ys.append(value)
    return Isotonic(tuple(xs), tuple(ys))


def weighted_auc(points: Sequence[tuple[float, bool, float]]) -> float:
    """P(signal of a right answer > signal of a wrong one), weighted; 0.5 without both kinds."""
    ordered = sorted(points, key=lambda p: p[0])
    wrong_below = 0.0
    total_wrong = sum(w for _, agreed, w in ordered if not agreed)
    total_right = sum(w for _, agreed, w in ordered if agreed)
    if not total_wrong or not total_right:
        return 0.5
    score = 0.0
    i = 0
    while i < len(ordered):
        j = i
        right = wrong = 0.0
        while j < len(ordered) and ordered[j][0] == ordered[i][0]:
            if ordered[j][1]:
                right += ordered[j][2]
            else:
                wrong += ordered[j][2]
            j += 1
        score += right * (wrong_below + wrong / 2)
        wrong_below += wrong
        i = j
    return score / (total_right * total_wrong)


def wilson_interval(successes: float, trials: float, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


# --- One fitted calibration -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fit:
    """A calibration fitted from one set of samples: the signal, its curve, and the weighted
    population the thresholds are read from."""

    kind: SignalKind
    curve: Isotonic
    auc: float
    forced_weight: float
    """Weight of frames sent whatever the threshold."""
    signals: tuple[float, ...]
    """The signals of the other (routable) frames, ascending."""
    cumulative: tuple[float, ...]
    """cumulative[i]: weight of the routable frames before index i (len(signals) + 1 values)."""
    cumulative_missed: tuple[float, ...]
    """...and of those among them with a hazard the student missed."""
    cumulative_variance: tuple[float, ...]
    """...and the variance of that weight as an estimate of a frame count: w(w - 1) per sample
    (0 for a frame that was certain to be reviewed)."""
    total_weight: float
    samples: int
    audits: int
    counted: tuple[float, float] | None = None
    """(analysed frames, frames sent whatever the threshold), counted (decayed alike) over the
    samples' time: exact where the weighted sample only estimates. None when not counted."""

    def probability(self, signal: float | None) -> float | None:
        return None if signal is None else self.curve(signal)

    @property
    def forced_share(self) -> float:
        """The share of frames sent whatever the threshold."""
        if self.counted is not None:
            frames, forced = self.counted
            return min(1.0, forced / frames)
        return self.forced_weight / self.total_weight

    def _routable_frames(self) -> float:
        """How many routable frames the routable samples stand for: counted when known (the
        frames below an earlier threshold were all labelled, so low thresholds read exactly)."""
        if self.counted is not None:
            frames, forced = self.counted
            return max(frames - forced, 1e-9)
        return max(self.cumulative[-1], 1e-9)

    def share(self, threshold: float, audit_probability: float, *, z: float = 0.0) -> float:
        """The estimated share of frames the teacher reviews at this threshold; with `z`, that
        many standard errors higher (frames known only from audits make it uncertain)."""
        index = bisect_left(self.signals, threshold)
        routable = self._routable_frames()
        counted = self.cumulative[index] + z * math.sqrt(self.cumulative_variance[index])
        below = min(1.0, counted / routable)
        forced = self.forced_share
        return forced + (1 - forced) * (below + audit_probability * (1 - below))

    def miss_rate(self, threshold: float, audit_probability: float) -> float:
        """Estimated missed hazards per analysed frame at this threshold: the hazards the
        student did not flag, on frames that are neither below it nor audited."""
        if not self.cumulative[-1]:
            return 0.0
        index = bisect_left(self.signals, threshold)
        missed = (self.cumulative_missed[-1] - self.cumulative_missed[index]) / self.cumulative[-1]
        return (1 - self.forced_share) * (1 - audit_probability) * missed

    def threshold_for_share(
        self, share: float, audit_probability: float, *, routable_only: bool = False
    ) -> float:
        """The highest threshold whose estimated share, one standard error up, stays within
        `share` (0 when even the forced frames exceed it: then only they are sent). The share
        grows with the threshold. `routable_only`: the share of the frames not always sent
        that fall below it."""
        candidates = self._candidates()
        low, high = 0, len(candidates)  # candidates[:low] fit; candidates[high:] do not
        while low < high:
            middle = (low + high) // 2
            if routable_only:
                index = bisect_left(self.signals, candidates[middle])
                estimate = self.cumulative[index] / self._routable_frames()
            else:
                estimate = self.share(candidates[middle], audit_probability, z=SHARE_Z)
            if estimate <= share:
                low = middle + 1
            else:
                high = middle
        return candidates[low - 1] if low else 0.0

    def threshold_for_miss_rate(self, rate: float, audit_probability: float) -> float:
        """The lowest threshold whose estimated missed-hazard rate stays within `rate` (the
        rate falls as the threshold rises)."""
        candidates = self._candidates()
        low, high = 0, len(candidates)
        while low < high:
            middle = (low + high) // 2
            if self.miss_rate(candidates[middle], audit_probability) <= rate:
                high = middle
            else:
                low = middle + 1
        return candidates[low] if low < len(candidates) else candidates[-1]

    def _candidates(self) -> list[float]:
        """0, then each distinct signal and just above the highest: every share there is."""
        values = sorted(set(self.signals))
        return [0.0, *values, values[-1] + 1e-9] if values else [0.0]

    def table(self) -> list[dict[str, float]]:
        """The curve as (signal, probability) rows, for diagnostics."""
        return [
            {"signal": round(x, 4), "probability": round(y, 4)}
            for x, y in zip(self.curve.xs, self.curve.ys, strict=True)
        ]


def fit(
    samples: Sequence[Sample],
    now: float,
    *,
    half_life_days: float = HALF_LIFE_DAYS,
    kinds: Sequence[SignalKind] = SIGNALS,
    counted: tuple[float, float] | None = None,
) -> Fit:
    """Fit the signal that ranks best (weighted AUC, today's rule on ties) and its curve."""
    weighted = [(s, s.weight * decay(now - s.at, half_life_days)) for s in samples]
    best: tuple[float, SignalKind] | None = None
    for kind in kinds:
        points = [
            (value, s.agreed, w) for s, w in weighted if (value := s.signal(kind)) is not None
        ]
        auc = weighted_auc(points)
        if best is None or auc > best[0] + 0.01:
            best = (auc, kind)
    assert best is not None
    auc, kind = best
    curve = fit_isotonic(
        (value, float(s.agreed), w) for s, w in weighted if (value := s.signal(kind)) is not None
    )
    routable = sorted(
        (value, w, s.missed_hazard)
        for s, w in weighted
        if not s.forced and (value := s.signal(kind)) is not None
    )
    cumulative, cumulative_missed, cumulative_variance = [0.0], [0.0], [0.0]
    for _, w, missed in routable:
        cumulative.append(cumulative[-1] + w)
        cumulative_missed.append(cumulative_missed[-1] + (w if missed else 0.0))
        cumulative_variance.append(cumulative_variance[-1] + max(0.0, w * (w - 1)))
    return Fit(
        kind=kind,
        curve=curve,
        auc=auc,
        forced_weight=sum(w for s, w in weighted if s.forced or s.signal(kind) is None),
        signals=tuple(value for value, _, _ in routable),
        cumulative=tuple(cumulative),
        cumulative_missed=tuple(cumulative_missed),
        cumulative_variance=tuple(cumulative_variance),
        total_weight=sum(w for _, w in weighted),
        samples=len(samples),
        audits=sum(s.audit for s in samples),
        counted=counted if counted and counted[0] > 0 else None,
    )


def recent_audits(
    samples: Sequence[Sample], now: float, half_life_days: float = HALF_LIFE_DAYS
) -> int:
    """Audits that still have at least a quarter of their weight."""
    return sum(1 for s in samples if s.audit and decay(now - s.at, half_life_days) >= 0.25)


def audits_needed(
    samples: Sequence[Sample], now: float, half_life_days: float = HALF_LIFE_DAYS
) -> int:
    """MIN_AUDITS, scaled by the share of frames only the audits speak for (those above the
    threshold: the rest are all reviewed anyway), and at least MIN_AUDITS_FLOOR."""
    weights = [(s, s.weight * decay(now - s.at, half_life_days)) for s in samples]
    total = sum(w for _, w in weights)
    audited = sum(w for s, w in weights if s.audit)
    share = audited / total if total else 1.0
    return max(MIN_AUDITS_FLOOR, math.ceil(MIN_AUDITS * share))


def enough(
    samples: Sequence[Sample],
    now: float,
    half_life_days: float = HALF_LIFE_DAYS,
    *,
    in_use: bool = False,
) -> bool:
    """Whether a calibration may be fitted from these samples. One in use stays in use down to
    MIN_AUDITS_FLOOR audits: its own lower threshold leaves more frames to the audits, which
    must not switch it off again (it raises the audit rate instead)."""
    if len(samples) < MIN_LABELLED:
        return False
    needed = MIN_AUDITS_FLOOR if in_use else audits_needed(samples, now, half_life_days)
    return recent_audits(samples, now, half_life_days) >= needed


# --- Day and night ----------------------------------------------------------------------------


def time_bucket(
    mode: BucketMode,
    local: datetime,
    *,
    sun_up: bool | None = None,
    day: tuple[time, time] = DEFAULT_DAY,
) -> Bucket:
    """The time-of-day bucket of a frame: by the sun (fixed hours when it is unknown), by fixed
    hours, or one bucket for all frames."""
    if mode == "off":
        return "all"
    if mode == "sun" and sun_up is not None:
        return "day" if sun_up else "night"
    start, end = day
    now = local.time()
    inside = start <= now < end if start <= end else (now >= start or now < end)
    return "day" if inside else "night"


# --- The camera's calibration ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Routing:
    """What the calibration decides for the next frame."""

    calibrated: bool
    kind: SignalKind
    threshold: float
    """On the signal's scale; compared with `signal` by the routing policy."""
    threshold_probability: float | None
    """The calibrated probability at the threshold: the minimum confidence the user sees."""
    audit_rate: int
    state: State


@dataclass(frozen=True, slots=True)
class Reliability:
    """The student's agreement with the teacher on random audits."""

    agreement: float | None
    low: float
    high: float
    audits: int


@dataclass(slots=True)
class CameraCalibration:
    """One camera's samples, fits and the policy it gives. Not thread-safe; one per camera."""

    target: Target = field(default_factory=Target)
    fallback_threshold: float = 0.72
    base_audit_rate: int = 150
    half_life_days: float = HALF_LIFE_DAYS
    max_samples: int = MAX_SAMPLES
    samples: list[Sample] = field(default_factory=list)
    frame_hours: dict[tuple[int, Bucket], list[int]] = field(default_factory=dict)
    """[frames analysed, of them sent whatever the threshold] per (hour, bucket), hour = POSIX
    seconds // 3600, for COUNT_DAYS."""
    in_use: set[Bucket] = field(default_factory=set)
    """Buckets whose own calibration is in use (see `enough`)."""
    _fits: dict[Bucket, Fit | None] = field(default_factory=dict)
    _fitted_at: float | None = None

    # -- samples

    def add(self, sample: Sample) -> None:
        """Record a teacher verdict; the oldest sample goes beyond the bound."""
        self.samples.append(sample)
        if len(self.samples) > self.max_samples:
            del self.samples[: len(self.samples) - self.max_samples]
        self._fits.clear()

    def count_frame(self, now: float, *, forced: bool = False, bucket: Bucket = "all") -> None:
        """Count one analysed frame: the frame rate, and the share of frames always sent."""
        hour = int(now // 3600)
        counts = self.frame_hours.setdefault((hour, bucket), [0, 0])
        counts[0] += 1
        counts[1] += forced
        if len(self.frame_hours) > 2 * 24 * COUNT_DAYS:
            oldest = hour - 24 * COUNT_DAYS
            for key in [key for key in self.frame_hours if key[0] <= oldest]:
                del self.frame_hours[key]

    def frames_per_hour(self, now: float) -> float:
        """Frames analysed per hour over the last 24 hours (over the hours seen, if fewer)."""
        hour = int(now // 3600)
        recent = {key: n for key, n in self.frame_hours.items() if key[0] > hour - 24}
        if not recent:
            return 0.0
        hours = max(1, hour - min(h for h, _ in recent) + 1)
        return sum(n[0] for n in recent.values()) / hours

    def _counted(
        self, samples: Sequence[Sample], bucket: Bucket, now: float
    ) -> tuple[float, float]:
        """Frames and forced frames counted since the oldest of `samples`, decayed alike."""
        if not samples:
            return (0.0, 0.0)
        since = int(min(s.at for s in samples) // 3600)
        frames = forced = 0.0
        for (hour, counted_bucket), (n, f) in self.frame_hours.items():
            if hour >= since and bucket in ("all", counted_bucket):
                weight = decay(now - (hour + 0.5) * 3600, self.half_life_days)
                frames += n * weight
                forced += f * weight
        return (frames, forced)

    # -- fits

    def fit_for(self, bucket: Bucket, now: float) -> Fit | None:
        """The bucket's own fit when it has enough samples, else the camera's; None when thin."""
        if self._fitted_at is None or now - self._fitted_at > 3600:
            self._fits.clear()  # decay moves weights: refit at least hourly
        if bucket not in self._fits:
            self._fitted_at = now
            own = [s for s in self.samples if bucket == "all" or s.bucket == bucket]
            ready = enough(own, now, self.half_life_days, in_use=bucket in self.in_use)
            if ready:
                self.in_use.add(bucket)
            else:
                self.in_use.discard(bucket)
            if bucket != "all" and not ready:
                self._fits[bucket] = self.fit_for("all", now)
            else:
                self._fits[bucket] = (
                    fit(
                        own,
                        now,
                        half_life_days=self.half_life_days,
                        counted=self._counted(own, bucket, now),
                    )
                    if ready
                    else None
                )
        return self._fits[bucket]

    def probability(
        self, stated: float | None, evidence: float | None, bucket: Bucket, now: float
    ) -> float | None:
        """The calibrated probability that the student is right; None while thin."""
        current = self.fit_for(bucket, now)
        if current is None:
            return None
        return current.probability(signal_value(current.kind, stated, evidence))

    def state(self, bucket: Bucket, now: float) -> State:
        """thin: not in use yet; settling: in use, more audits wanted; drifting: the recent
        audits disagree with it; stable."""
        current = self.fit_for(bucket, now)
        if current is None:
            return "thin"
        if self._drifting(current):
            return "drifting"
        if recent_audits(self.samples, now, self.half_life_days) < SETTLED_AUDITS:
            return "settling"
        return "stable"

    def _drifting(self, current: Fit) -> bool:
        """The recent audits agree more or less often than the calibration predicts."""
        recent = [s for s in self.samples if s.audit][-DRIFT_WINDOW:]
        if len(recent) < DRIFT_WINDOW // 2:
            return False
        predicted = [current.curve(v) for s in recent if (v := s.signal(current.kind)) is not None]
        observed = sum(s.agreed for s in recent if s.signal(current.kind) is not None)
        variance = sum(p * (1 - p) for p in predicted)
        if variance <= 0:
            return False
        return abs(observed - sum(predicted)) / math.sqrt(variance) > DRIFT_Z

    # -- the policy

    def routing(self, bucket: Bucket, now: float, *, queue_pressure: float = 0.0) -> Routing:
        """The threshold and audit rate for the next frame of this bucket.

        `queue_pressure` is the teacher queue's depth over its limit: from PRESSURE_SHARE on,
        the budget halves (the routing policy still sheds audits, then low confidence).
        """
        current = self.fit_for(bucket, now)
        state = self.state(bucket, now)
        if current is None:
            rate = min(AUDIT_RATE_THIN, self.base_audit_rate) if self.base_audit_rate else 0
            return Routing(False, "effective", self.fallback_threshold, None, rate, state)
        rate = self.base_audit_rate
        if state in ("drifting", "settling") and rate:
            rate = min(rate, AUDIT_RATE_SETTLING)
        squeeze = 0.5 if queue_pressure >= PRESSURE_SHARE else 1.0
        if self.target.kind is TargetKind.MISS_RATE:
            audit_p = 1 / rate if rate else 0.0
            threshold = current.threshold_for_miss_rate(self.target.value / 1000, audit_p)
        else:
            budget = self.budget_share(now) * squeeze
            rate = self._audit_rate_within(budget, current, rate)
            audit_p = 1 / rate if rate else 0.0
            threshold = max(
                current.threshold_for_share(budget, audit_p),
                current.threshold_for_share(LOW_CONFIDENCE_FLOOR, 0.0, routable_only=True),
            )
        return Routing(True, current.kind, threshold, current.curve(threshold), rate, state)

    def _audit_rate_within(self, budget: float, current: Fit, rate: int) -> int:
        """Audits take at most AUDIT_BUDGET_SHARE of the budget the frames that are always sent
        leave: below the threshold, the teacher's time catches far more of the student's
        mistakes than at random. Never more often than `rate`, never rarer than the user's."""
        if not rate:
            return 0
        forced = current.forced_share
        room = AUDIT_BUDGET_SHARE * max(0.0, budget - forced) / max(1e-9, 1 - forced)
        if room <= 0:
            return max(rate, self.base_audit_rate)
        return min(max(rate, math.ceil(1 / room)), max(rate, self.base_audit_rate))

    def budget_share(self, now: float) -> float:
        """The target as a share of analysed frames."""
        if self.target.kind is TargetKind.REVIEWS_PER_HOUR:
            per_hour = self.frames_per_hour(now)
            return 1.0 if per_hour <= 0 else min(1.0, self.target.value / per_hour)
        return self.target.value

    # -- telling the user

    def reliability(self, now: float) -> Reliability:
        """Agreement on random audits, decayed and weighted alike, with a 95 % interval."""
        audits = [s for s in self.samples if s.audit]
        weights = [decay(now - s.at, self.half_life_days) for s in audits]
        trials = sum(weights)
        agreed = sum(w for s, w in zip(audits, weights, strict=True) if s.agreed)
        if not audits:
            return Reliability(None, 0.0, 1.0, 0)
        low, high = wilson_interval(agreed, trials)
        return Reliability(agreed / trials, low, high, len(audits))

    def missed_hazards_per_day(self, bucket: Bucket, now: float) -> float | None:
        """Estimated hazards the policy lets through unreviewed, per day at today's frame rate."""
        current = self.fit_for(bucket, now)
        if current is None:
            return None
        routing = self.routing(bucket, now)
        audit_p = 1 / routing.audit_rate if routing.audit_rate else 0.0
        return current.miss_rate(routing.threshold, audit_p) * self.frames_per_hour(now) * 24

    def estimated_miss_rate(self, bucket: Bucket, now: float) -> float | None:
        """Estimated missed hazards per 1000 analysed frames at the current threshold."""
        current = self.fit_for(bucket, now)
        if current is None:
            return None
        routing = self.routing(bucket, now)
        audit_p = 1 / routing.audit_rate if routing.audit_rate else 0.0
        return current.miss_rate(routing.threshold, audit_p) * 1000

    def diagnostics(self, now: float) -> dict[str, Any]:
        """The calibration table and its state, per bucket in use."""
        result: dict[str, Any] = {
            "samples": len(self.samples),
            "audits": sum(s.audit for s in self.samples),
            "frames_per_hour": round(self.frames_per_hour(now), 2),
        }
        for bucket in BUCKETS:
            current = self.fit_for(bucket, now)
            if bucket != "all" and current is self.fit_for("all", now):
                continue
            routing = self.routing(bucket, now)
            result[bucket] = {
                "state": routing.state,
                "signal": routing.kind,
                "threshold": round(routing.threshold, 4),
                "min_confidence": None
                if routing.threshold_probability is None
                else round(routing.threshold_probability, 4),
                "audit_rate": routing.audit_rate,
                "auc": None if current is None else round(current.auc, 3),
                "table": [] if current is None else current.table(),
            }
        return result

    # -- persistence

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": [s.as_dict() for s in self.samples],
            "frame_hours": [[h, b, n, f] for (h, b), (n, f) in self.frame_hours.items()],
            "in_use": sorted(self.in_use),
        }

    def load(self, raw: Mapping[str, Any]) -> None:
        """Restore saved samples; unreadable ones are dropped, not the rest."""
        samples = []
        for item in raw.get("samples", ()):
            try:
                samples.append(Sample.from_dict(item))
            except KeyError, TypeError, ValueError:
                continue
        self.samples = samples[-self.max_samples :]
        self.in_use = {b for b in BUCKETS if b in raw.get("in_use", ())}
        self.frame_hours = {}
        for item in raw.get("frame_hours", ()):
            try:
                hour, bucket, frames, forced = item
                key = (int(hour), next(b for b in BUCKETS if b == bucket))
                self.frame_hours[key] = [int(frames), int(forced)]
            except TypeError, ValueError, StopIteration:
                continue
        self._fits.clear()
