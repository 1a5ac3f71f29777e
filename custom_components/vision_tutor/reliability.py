"""A camera's calibration in Home Assistant: fed by the teacher's verdicts, saved, and watched.

The calibration itself is pure (`calibration.CameraCalibration`); this keeps it in .storage
(bounded, written a little after each verdict, and on unload), remembers which escalations
are waiting for a verdict and with what label, picks the time-of-day bucket of a frame (the
`sun.sun` entity, or fixed hours), and raises a repair issue while the camera's estimated
missed-hazard rate stays above the user's limit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
import logging
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .calibration import Bucket, BucketMode, CameraCalibration, Target, TargetKind, time_bucket
from .const import DOMAIN
from .pipeline import Label, sample_from_verdict

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION: Final = 1
SAVE_DELAY: Final = 30
"""Seconds after a verdict before the samples are written (one write for a burst)."""
PENDING_KEPT: Final = 500
"""Escalations remembered while their verdict is on its way."""
REPAIR_AFTER: Final = timedelta(hours=6)
"""How long the estimated miss rate must stay above the limit before the repair is raised."""
SUN_ENTITY: Final = "sun.sun"


@dataclass(frozen=True, slots=True)
class ReliabilitySettings:
    """The user's target and buckets for one camera."""

    target: Target
    max_miss_rate: float
    """Missed hazards per 1000 analysed frames above which the repair is raised."""
    buckets: BucketMode = "sun"
    day: tuple[time, time] = (time(7), time(19))


class CameraReliability:
    """One camera's calibration, its storage and its repair issue."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        subentry_id: str,
        camera_entity: str,
        settings: ReliabilitySettings,
        *,
        fallback_threshold: float,
        audit_rate: int,
    ) -> None:
        self.hass = hass
        self.camera_entity = camera_entity
        self.settings = settings
        self.calibration = CameraCalibration(
            target=settings.target,
            fallback_threshold=fallback_threshold,
            base_audit_rate=audit_rate,
        )
        self.issue_id = f"missed_hazards_{entry_id}_{subentry_id}"
        self._pending: OrderedDict[str, Label] = OrderedDict()
        self._above_since: datetime | None = None
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.{subentry_id}.calibration"
        )

    async def async_load(self) -> None:
        """The samples saved last time (none for a new camera)."""
        stored = await self._store.async_load()
        if not stored:
            return
        self.calibration.load(stored)
        if (since := stored.get("above_since")) is not None:
            self._above_since = dt_util.parse_datetime(str(since))

    async def async_save(self) -> None:
        """Write the samples now (on unload)."""
        await self._store.async_save(self._data())

    def _data(self) -> dict[str, Any]:
        return {
            **self.calibration.as_dict(),
            "above_since": self._above_since.isoformat() if self._above_since else None,
        }

    def bucket(self, now: datetime) -> Bucket:
        """The time-of-day bucket of a frame taken now."""
        sun = self.hass.states.get(SUN_ENTITY)
        sun_up = None if sun is None else sun.state == "above_horizon"
        return time_bucket(
            self.settings.buckets, dt_util.as_local(now), sun_up=sun_up, day=self.settings.day
        )

    def remember(self, escalation_id: str, label: Label) -> None:
        """An escalation the policy sent: its verdict will teach the calibration."""
        self._pending[escalation_id] = label
        while len(self._pending) > PENDING_KEPT:
            self._pending.popitem(last=False)

    def forget(self, escalation_id: object) -> None:
        """The escalation will get no verdict (not reviewed)."""
        if isinstance(escalation_id, str):
            self._pending.pop(escalation_id, None)

    def apply_verdict(self, verdict: Mapping[str, Any], teacher_flags: tuple[str, ...]) -> bool:
        """Learn from a verdict on one of our escalations; False for one we did not send."""
        key = verdict.get("idempotency_key")
        label = self._pending.pop(key, None) if isinstance(key, str) else None
        agrees = verdict.get("agrees_with_student")
        if label is None or not isinstance(agrees, bool):
            return False
        now = dt_util.utcnow()
        self.calibration.add(
            sample_from_verdict(label, agreed=agrees, teacher_flags=teacher_flags, at=now)
        )
        self._store.async_delay_save(self._data, SAVE_DELAY)
        self.check_repair(now)
        return True

    def check_repair(self, now: datetime) -> None:
        """Raise the repair once the estimated miss rate has stayed above the limit long
        enough; remove it as soon as it is back within."""
        rate = self.calibration.estimated_miss_rate("all", now.timestamp())
        if rate is None or rate <= self.settings.max_miss_rate:
            self._above_since = None
            ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
            return
        self._above_since = self._above_since or now
        if now - self._above_since < REPAIR_AFTER:
            return
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self.issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="missed_hazards",
            translation_placeholders={
                "camera": self.camera_entity,
                "rate": f"{rate:.1f}",
                "limit": f"{self.settings.max_miss_rate:g}",
                "audits": str(sum(s.audit for s in self.calibration.samples)),
            },
        )

    def diagnostics(self, now: datetime) -> dict[str, Any]:
        """The calibration table and what it decides, for support."""
        return {
            "target": {"kind": str(self.settings.target.kind), "value": self.settings.target.value},
            "max_miss_rate": self.settings.max_miss_rate,
            "buckets": self.settings.buckets,
            "pending_verdicts": len(self._pending),
            **self.calibration.diagnostics(now.timestamp()),
        }


def target_from(kind: str, share_percent: float, per_hour: float, miss_rate: float) -> Target:
    """The target the options describe."""
    if kind == TargetKind.REVIEWS_PER_HOUR:
        return Target(TargetKind.REVIEWS_PER_HOUR, per_hour)
    if kind == TargetKind.MISS_RATE:
        return Target(TargetKind.MISS_RATE, miss_rate)
    return Target(TargetKind.SHARE, share_percent / 100)
