"""Per-camera overrides of the hub's options. Pure: no Home Assistant imports.

A camera subentry may set its own value of some of the hub's options (a kitchen camera needs
other keywords than a porch camera); an override left empty means "as the hub". The camera's
effective options are the hub's options with its overrides laid over them, and everything that
builds a camera's pipeline reads those, never the hub's options directly.

Adding an overridable option: put its key in `CAMERA_OVERRIDES`, give it a cleaner in
`flow_helpers.OVERRIDE_CLEANERS` (the camera form's check) and a selector in
`config_flow.OVERRIDE_SELECTORS` (the camera form's field), and a label in translations/en.json
(`config_subentries.camera.step.*.sections.overrides`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .const import (
    CONF_AUDIT_RATE,
    CONF_MAX_MISS_RATE,
    CONF_MIN_CONFIDENCE,
    CONF_REVIEWS_PER_HOUR,
    CONF_SAFETY_KEYWORDS,
    CONF_TARGET,
    CONF_TEACHER_BUDGET,
)

CAMERA_OVERRIDES: Final[tuple[str, ...]] = (
    CONF_MIN_CONFIDENCE,
    CONF_SAFETY_KEYWORDS,
    CONF_AUDIT_RATE,
    CONF_TARGET,
    CONF_TEACHER_BUDGET,
    CONF_REVIEWS_PER_HOUR,
    CONF_MAX_MISS_RATE,
)
"""The hub options a camera may override, in the order the camera form shows them."""


def is_set(value: Any) -> bool:
    """Whether an override has a value: None, an empty text or an empty list is "as the hub"."""
    if value is None:
        return False
    if isinstance(value, str | list | tuple):
        return bool(value)
    return True


def camera_overrides(camera: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides a camera subentry's data sets, by option key."""
    return {key: camera[key] for key in CAMERA_OVERRIDES if is_set(camera.get(key))}


def camera_options(hub: Mapping[str, Any], camera: Mapping[str, Any]) -> dict[str, Any]:
    """A camera's effective options: the hub's, with the camera's overrides over them."""
    return {**hub, **camera_overrides(camera)}
