"""The options flow: routing thresholds, the safety sensor's window and the resource limits."""

from __future__ import annotations

from typing import Any
from unittest.mock import AsyncMock

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from custom_components.vision_tutor.const import (
    CONF_STUDENT_MODEL,
    CONF_STUDENT_URL,
    CONF_TEACHER_MODE,
    DOMAIN,
    TEACHER_MODE_NONE,
)
from custom_components.vision_tutor.flow_helpers import OPTION_RANGES

from .test_config_flow_helpers import (
    TRANSLATIONS,
    SetupCalls,
    flow_translations_fixture,  # noqa: F401  (fixture)
    no_entry_setup_fixture,  # noqa: F401  (fixture)
)

DEFAULT_FORM = {
    "routing": {
        "min_confidence": 0.72,
        "safety_keywords": ["fire", "smoke", "weapon", "fall", "intrusion", "blood"],
        "audit_rate": 150,
        "teacher_queue_limit": 20,
        "outbox_max_age": 60,
    },
    "calibration": {
        "target": "share",
        "teacher_budget": 15.0,
        "reviews_per_hour": 30.0,
        "max_miss_rate": 2.0,
        "time_buckets": "sun",
        "day_start": 7,
        "day_end": 19,
    },
    "safety_sensor": {
        "window_size": 5,
        "window_trigger": 2,
        "clean_to_clear": 3,
        "dismissal_clears": True,
    },
    "performance": {
        "change_sensitivity": 0.5,
        "student_timeout": 20.0,
        "max_concurrent": 4,
        "frame_width": 768,
        "relook_minutes": 10,
    },
    "history": {"history_days": 7, "history_max_mb": 500},
}


@pytest.fixture(autouse=True)
def _checked(flow_translations: None, no_entry_setup: SetupCalls) -> None:
    """Every test checks its flow's translations; entries load without coordinators."""


@pytest.fixture
async def entry(hass: HomeAssistant) -> MockConfigEntry:
    """A loaded entry made before options existed: it has none stored."""
    config_entry = MockConfigEntry(
        domain=DOMAIN,
        unique_id="http://127.0.0.1:11434",
        data={
            CONF_STUDENT_URL: "http://127.0.0.1:11434",
            CONF_STUDENT_MODEL: "gemma4:e2b",
            CONF_TEACHER_MODE: TEACHER_MODE_NONE,
        },
    )
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    return config_entry


def form(**changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The default form with some sections' fields changed."""
    return {
        name: {**fields, **changes.get(name, {})}
        for name, fields in DEFAULT_FORM.items()
        if isinstance(fields, dict)
    }


def suggested(result: Any) -> dict[str, dict[str, Any]]:
    """What the form shows in each section."""
    shown: dict[str, dict[str, Any]] = {}
    for marker, value in result["data_schema"].schema.items():
        shown[marker.schema] = {
            field.schema: field.description["suggested_value"] for field in value.schema.schema
        }
    return shown


async def test_options_start_from_the_defaults(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    assert result["errors"] == {}
    assert suggested(result) == DEFAULT_FORM


async def test_options_saved_flat_and_cleaned(
    hass: HomeAssistant, entry: MockConfigEntry, no_entry_setup: SetupCalls
) -> None:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        form(
            routing={
                "min_confidence": 0.8,
                "safety_keywords": ["fire", " Gas Leak ", "FIRE", "smoke"],
                "audit_rate": 0,
                "teacher_queue_limit": 50.0,
            },
            calibration={"target": "miss_rate", "max_miss_rate": 0.5, "day_start": 6.0},
            safety_sensor={"window_size": 7.0, "window_trigger": 3.0, "dismissal_clears": False},
            performance={
                "student_timeout": 5.5,
                "max_concurrent": 2.0,
                "frame_width": 1024.0,
                "relook_minutes": 30.0,
            },
            history={"history_days": 0.0, "history_max_mb": 2000.0},
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    expected = {
        "min_confidence": 0.8,
        "safety_keywords": ["fire", "gas leak", "smoke"],
        "audit_rate": 0,
        "teacher_queue_limit": 50,
        "outbox_max_age": 60,
        "window_size": 7,
        "window_trigger": 3,
        "clean_to_clear": 3,
        "dismissal_clears": False,
        "change_sensitivity": 0.5,
        "student_timeout": 5.5,
        "max_concurrent": 2,
        "frame_width": 1024,
        "relook_minutes": 30,
        "history_days": 0,
        "history_max_mb": 2000,
        "target": "miss_rate",
        "teacher_budget": 15.0,
        "reviews_per_hour": 30.0,
        "max_miss_rate": 0.5,
        "time_buckets": "sun",
        "day_start": 6,
        "day_end": 19,
    }
    assert dict(entry.options) == expected
    assert all(type(entry.options[key]) is int for key in ("window_size", "frame_width"))
    # No update listener here: the options flow reloads the entry itself.
    await hass.async_block_till_done()
    assert no_entry_setup.setup.await_count == 2

    # Opening the options again shows what was saved.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert suggested(result)["routing"]["safety_keywords"] == ["fire", "gas leak", "smoke"]
    assert suggested(result)["safety_sensor"]["window_size"] == 7


@pytest.mark.parametrize(
    ("changes", "errors", "placeholders"),
    [
        (
            {"safety_sensor": {"window_size": 3, "window_trigger": 4}},
            {"safety_sensor": "window_trigger_too_large"},
            {"trigger": "4", "size": "3"},
        ),
        ({"routing": {"safety_keywords": []}}, {"routing": "no_safety_keywords"}, {}),
        (
            {"calibration": {"time_buckets": "hours", "day_start": 8, "day_end": 8}},
            {"calibration": "day_hours_equal"},
            {"hour": "8"},
        ),
        (
            {"calibration": {"teacher_budget": 150}},
            {"calibration": "teacher_budget_out_of_range"},
            {"min": "1", "max": "100", "value": "150"},
        ),
        (
            {"calibration": {"day_end": 24}},
            {"calibration": "day_end_out_of_range"},
            {"min": "0", "max": "23", "value": "24"},
        ),
        (
            {"routing": {"safety_keywords": ["fire", "<script>"]}},
            {"routing": "invalid_safety_keyword"},
            {"keyword": "<script>"},
        ),
        (
            {"performance": {"relook_minutes": 0}},
            {"performance": "relook_minutes_out_of_range"},
            {"min": "1", "max": "1440", "value": "0"},
        ),
        (
            {"performance": {"relook_minutes": 2000}},
            {"performance": "relook_minutes_out_of_range"},
            {"min": "1", "max": "1440", "value": "2000"},
        ),
        # What the number fields' own check refused in untranslated validator text ("Value 1.5
        # is too large at 'routing.min_confidence'"): now an error that names field and range.
        (
            {"routing": {"min_confidence": 1.5}},
            {"routing": "min_confidence_out_of_range"},
            {"min": "0", "max": "1", "value": "1.5"},
        ),
        (
            {"performance": {"frame_width": 100}},
            {"performance": "frame_width_out_of_range"},
            {"min": "256", "max": "1920", "value": "100"},
        ),
        (
            {"performance": {"max_concurrent": 0}},
            {"performance": "max_concurrent_out_of_range"},
            {"min": "1", "max": "16", "value": "0"},
        ),
        (
            {"safety_sensor": {"window_size": 0, "window_trigger": 1}},
            {"safety_sensor": "window_size_out_of_range"},
            {"min": "1", "max": "50", "value": "0"},
        ),
        (
            {"routing": {"audit_rate": -1}},
            {"routing": "audit_rate_out_of_range"},
            {"min": "0", "max": "100000", "value": "-1"},
        ),
        (
            {"history": {"history_days": -1}},
            {"history": "history_days_out_of_range"},
            {"min": "0", "max": "3650", "value": "-1"},
        ),
        (
            {"history": {"history_max_mb": 5}},
            {"history": "history_max_mb_out_of_range"},
            {"min": "10", "max": "100000", "value": "5"},
        ),
    ],
)
async def test_options_errors_keep_everything_entered(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    changes: dict[str, dict[str, Any]],
    errors: dict[str, str],
    placeholders: dict[str, str],
) -> None:
    """Each error is translated and shown on the section that holds the field."""
    performance = {"frame_width": 512, "max_concurrent": 1, **changes.pop("performance", {})}
    entered = form(performance=performance, **changes)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], entered)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert result["description_placeholders"] == placeholders
    assert suggested(result) == entered
    assert dict(entry.options) == {}


def test_every_option_range_has_a_translated_error() -> None:
    errors = TRANSLATIONS["options"]["error"]
    for key in OPTION_RANGES:
        assert "{min}" in errors[f"{key}_out_of_range"], key
        assert "{value}" in errors[f"{key}_out_of_range"], key


async def test_options_of_an_entry_that_reloads_itself(
    hass: HomeAssistant, entry: MockConfigEntry, no_entry_setup: SetupCalls
) -> None:
    listener = AsyncMock()
    entry.add_update_listener(listener)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], form(routing={"min_confidence": 0.6})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options["min_confidence"] == 0.6
    assert listener.await_count == 1
    assert no_entry_setup.setup.await_count == 1
