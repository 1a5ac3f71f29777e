"""A camera's effective options: the hub's, with the camera's own values where it set them."""

from __future__ import annotations

from custom_components.vision_tutor.const import (
    CONF_AUDIT_RATE,
    CONF_MIN_CONFIDENCE,
    CONF_SAFETY_KEYWORDS,
    CONF_WINDOW_SIZE,
)
from custom_components.vision_tutor.overrides import camera_options, camera_overrides

HUB = {
    CONF_MIN_CONFIDENCE: 0.72,
    CONF_SAFETY_KEYWORDS: ["fire", "smoke"],
    CONF_AUDIT_RATE: 150,
    CONF_WINDOW_SIZE: 5,
}


def test_a_camera_without_overrides_has_the_hubs_options() -> None:
    assert camera_options(HUB, {"camera_entity": "camera.porch"}) == HUB


def test_empty_overrides_are_the_hubs() -> None:
    camera = {CONF_MIN_CONFIDENCE: None, CONF_SAFETY_KEYWORDS: [], CONF_AUDIT_RATE: None}
    assert camera_options(HUB, camera) == HUB
    assert camera_overrides(camera) == {}


def test_overrides_replace_only_what_they_set() -> None:
    camera = {CONF_SAFETY_KEYWORDS: ["knife"], CONF_AUDIT_RATE: 0, CONF_MIN_CONFIDENCE: None}
    assert camera_options(HUB, camera) == {
        **HUB,
        CONF_SAFETY_KEYWORDS: ["knife"],
        CONF_AUDIT_RATE: 0,  # 0 is a value (audits off), not "as the hub"
    }


def test_a_camera_cannot_override_what_is_not_overridable() -> None:
    assert camera_options(HUB, {CONF_WINDOW_SIZE: 9}) == HUB
