"""The demo's console: a camera added after the start (Add camera in the UI) gets its lines."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from demo.console import Console
from demo.run import Demo, Options, Watch, describe, refresh_cameras

ENTRY = "entry-1"


class FakeRegistries:
    """What Home Assistant's registry commands answer, as the demo asks them."""

    def __init__(self) -> None:
        self.devices: list[dict[str, Any]] = []
        self.entities: list[dict[str, Any]] = []

    def add_camera(self, device_id: str, name: str, prefix: str) -> None:
        self.devices.append({"id": device_id, "name": name})
        for domain, key in (
            ("sensor", "observation"),
            ("sensor", "confidence"),
            ("binary_sensor", "safety"),
            ("event", "safety_event"),
            ("image", "analysed_frame"),
        ):
            self.entities.append(
                {
                    "entity_id": f"{domain}.{prefix}_{key}",
                    "device_id": device_id,
                    "config_entry_id": ENTRY,
                    "platform": "vision_tutor",
                    "translation_key": key,
                }
            )

    async def command(self, message_type: str, **data: Any) -> Any:
        return {
            "config/entity_registry/list": self.entities,
            "config/device_registry/list": self.devices,
        }[message_type]


def _observation_changed(entity_id: str, summary: str) -> dict[str, Any]:
    attributes = {"source": "student", "analysed_at": "2026-12-02T04:00:00+00:00"}
    return {
        "event_type": "state_changed",
        "data": {"new_state": {"entity_id": entity_id, "state": summary, "attributes": attributes}},
    }


async def test_a_camera_added_after_the_start_is_watched(tmp_path: Path) -> None:
    options = Options(
        check=False,
        port=None,
        time_scale=1,
        seconds_per_scene=30,
        timeout=60,
        student_url=None,
        teacher_url=None,
        student_model="gemma4:e2b",
        teacher_model="gemma4:26b",
        keep=False,
        directory=None,
    )
    demo = Demo(options=options, console=Console(io.StringIO()), folder=tmp_path, entry_id=ENTRY)
    ha = FakeRegistries()
    ha.add_camera("dev-kitchen", "Kitchen", "kitchen")
    assert await refresh_cameras(demo, ha) == ["Kitchen"]  # type: ignore[arg-type]

    porch = _observation_changed("sensor.porch_observation", "A parcel on the porch.")
    assert describe(demo, Watch(), porch) is None, "not known yet: no line"

    ha.add_camera("dev-porch", "Porch", "porch")
    assert await refresh_cameras(demo, ha) == ["Porch"]  # type: ignore[arg-type]
    assert await refresh_cameras(demo, ha) == []  # type: ignore[arg-type]
    line = describe(demo, Watch(), porch)
    assert line is not None
    assert "Porch" in line
    assert "A parcel on the porch." in line
