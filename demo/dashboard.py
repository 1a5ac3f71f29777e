"""The demo's dashboard: a Vision Tutor card per camera, the live cameras, and built-in cards.

The second view is the README's "Dashboard without the custom card" example, so that example is
known to work with the entities the integration really creates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

URL_PATH = "vision-tutor"
TITLE = "Vision Tutor"


@dataclass(frozen=True)
class CameraEntities:
    """A monitored camera's device and its Vision Tutor entities."""

    name: str
    device_id: str
    camera: str
    observation: str
    confidence: str
    safety: str
    safety_event: str
    frame: str
    analysis: str = ""
    """The camera's analysis switch (pause); empty for a camera without one."""
    analyse_now: str = ""


def built_in_cards(camera: CameraEntities) -> list[dict[str, Any]]:
    """One camera with Home Assistant's own cards only (no custom card needed)."""
    controls = ((camera.analysis, "Analysis"), (camera.analyse_now, "Analyse now"))
    return [
        {
            "type": "picture-entity",
            "entity": camera.frame,
            "name": f"{camera.name}: last analysed frame",
            "show_state": False,
        },
        {
            "type": "entities",
            "title": camera.name,
            "entities": [
                {"entity": camera.observation, "name": "Sees"},
                {"entity": camera.safety, "name": "Safety"},
                {"entity": camera.confidence, "name": "Confidence"},
                {"entity": camera.safety_event, "name": "Last safety event"},
                {
                    "type": "attribute",
                    "entity": camera.observation,
                    "attribute": "source",
                    "name": "Answered by",
                },
                {
                    "type": "attribute",
                    "entity": camera.observation,
                    "attribute": "escalation_reason",
                    "name": "Escalated for",
                },
                {
                    "type": "attribute",
                    "entity": camera.observation,
                    "attribute": "prompt_version",
                    "name": "Prompt version",
                },
                *({"entity": entity, "name": name} for entity, name in controls if entity),
            ],
        },
        {
            "type": "gauge",
            "entity": camera.confidence,
            "name": "Effective confidence",
            "min": 0,
            "max": 100,
            "severity": {"green": 72, "yellow": 50, "red": 0},
        },
        {
            "type": "history-graph",
            "title": "Confidence and safety",
            "hours_to_show": 1,
            "entities": [camera.confidence, camera.safety],
        },
    ]


def dashboard(cameras: Sequence[CameraEntities], hub: Mapping[str, str]) -> dict[str, Any]:
    """The Lovelace configuration: a view of cards per camera, and a view of built-in cards."""
    overview: list[dict[str, Any]] = [
        {"type": "custom:vision-tutor-card", "device_id": camera.device_id} for camera in cameras
    ]
    overview.append(
        {
            "type": "entities",
            "title": "Student and teacher",
            "entities": [hub[key] for key in sorted(hub)],
        }
    )
    overview.append(
        {
            "type": "history-graph",
            "title": "Effective confidence",
            "hours_to_show": 1,
            "entities": [camera.confidence for camera in cameras],
        }
    )
    return {
        "title": TITLE,
        "views": [
            {"title": "Cameras", "path": "cameras", "icon": "mdi:cctv", "cards": overview},
            {
                # What the cameras show now, beside what was last analysed on the first view.
                "title": "Live cameras",
                "path": "live",
                "icon": "mdi:video-outline",
                "cards": [
                    {"type": "picture-entity", "entity": camera.camera, "name": camera.name}
                    for camera in cameras
                ],
            },
            {
                "title": "Built-in cards",
                "path": "built-in",
                "icon": "mdi:card-multiple-outline",
                "cards": [card for camera in cameras for card in built_in_cards(camera)],
            },
        ],
    }
