"""`scripts/demo`: the whole Vision Tutor system on this machine, no GPU needed.

Starts, on loopback: the simulator (an Ollama with scripted student and teacher models) unless
real Ollama servers are given, the teacher service (the add-on, run standalone) with a temporary
data folder, and a real Home Assistant with a temporary configuration. Then it does what a
person would do in the browser, through Home Assistant's own APIs: onboarding (a demo user),
adding Vision Tutor through its config flow, adding the demo cameras as camera subentries, an
automation from the safety-alert blueprint, and a dashboard.

`--check` does the same without waiting for a person: it waits until a safety scene has been
escalated and the teacher's verdict shows on the entities, prints a report and exits 0 (1 on
failure or timeout). Tests and CI run it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping, Sequence
import contextlib
from dataclasses import dataclass, field, replace
import json
import os
from pathlib import Path
import shutil
import signal
import socket
import string
import sys
import tempfile
import time
from typing import Any

import aiohttp

from demo import dashboard
from demo.console import Console
from demo.home_assistant import HomeAssistant, HomeAssistantError
from demo.processes import Service, ServiceFailed, start
from realollama.models import STUDENT as REAL_STUDENT, TEACHER as REAL_TEACHER, ensure_models
from realollama.server import run_ollama
from simulator.scenes import SceneLibrary, export

ROOT = Path(__file__).resolve().parents[1]
DEMO = Path(__file__).resolve().parent
INTEGRATION = ROOT / "custom_components" / "vision_tutor"
BLUEPRINT = ROOT / "blueprints" / "automation" / "vision_tutor" / "safety_alert.yaml"

USERNAME = "demo"
PASSWORD = "vision-tutor"
SCAN_INTERVAL = 5
"""Seconds between analyses of each camera (the integration's minimum)."""
ONBOARDING_EXTRAS = frozenset({"google_translate", "met", "radio_browser"})
"""Integrations that Home Assistant's onboarding adds on its own."""
STUDENT_MODEL = "gemma4:e2b"
TEACHER_MODEL = "gemma4:26b"


@dataclass(frozen=True)
class DemoCamera:
    """A demo camera, the scenes it plays in turn, and whether the demo adds it to Vision Tutor."""

    name: str
    playlist: tuple[str, ...]
    description: str
    monitored: bool = True

    @property
    def entity_id(self) -> str:
        return "camera." + self.name.lower().replace(" ", "_")


# Each monitored camera's second scene is a hazard, so one shows up a scene-length after start.
CAMERAS: tuple[DemoCamera, ...] = (
    DemoCamera(
        "Kitchen",
        ("kitchen_empty_day", "fire_kitchen_pan", "kitchen_person_dishes", "knife_cutting_board"),
        "Kitchen with a gas stove, seen from the door",
    ),
    DemoCamera(
        "Hallway",
        ("hallway_empty_day", "knife_person_hallway", "hallway_person_walking", "smoke_hallway"),
        "Front hallway by the stairs",
    ),
    DemoCamera(
        "Living room",
        (
            "living_room_dog",
            "fire_curtains_living_room",
            "living_room_tv_evening",
            "cat_windowsill",
        ),
        "Living room with a sofa and curtains",
    ),
    DemoCamera(
        "Porch",
        ("porch_package", "porch_delivery_person", "intruder_garden_flashlight"),
        "Front porch",
        monitored=False,
    ),
)


@dataclass
class Options:
    check: bool
    port: int | None
    time_scale: float
    seconds_per_scene: float
    timeout: float
    student_url: str | None
    teacher_url: str | None
    student_model: str
    teacher_model: str
    keep: bool
    directory: Path | None
    real_ollama: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Run Vision Tutor end to end: simulator, teacher service, Home Assistant.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="headless: wait for an escalated safety scene with the teacher's verdict, report, exit",
    )
    parser.add_argument(
        "--port",
        type=int,
        help="Home Assistant's port (default 8123, or a free one if taken; 0: any free one)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        help="simulator latency scale (default 1 = real time; 0.1 with --check)",
    )
    parser.add_argument(
        "--seconds-per-scene",
        type=float,
        help="how long each demo camera shows a scene (default 20; 8 with --check)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="--check: seconds to wait for the teacher's verdict on a hazard (default 300)",
    )
    parser.add_argument(
        "--student-url",
        default=os.environ.get("OLLAMA_HOST") or None,
        help="a real Ollama for the student (default: $OLLAMA_HOST, else the simulator)",
    )
    parser.add_argument(
        "--teacher-url", help="a real Ollama for the teacher (default: the student's)"
    )
    parser.add_argument(
        "--real-ollama",
        action="store_true",
        help="the tests' real Ollama (built from source by scripts/setup) with its small real "
        "and generated models, instead of the simulator",
    )
    parser.add_argument("--student-model", default=STUDENT_MODEL)
    parser.add_argument("--teacher-model", default=TEACHER_MODEL)
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (configuration and logs)"
    )
    parser.add_argument(
        "--dir", type=Path, help="use this (new or empty) folder instead of a temporary one"
    )
    args = parser.parse_args(argv)
    student_url = args.student_url
    if student_url and "://" not in student_url:
        student_url = f"http://{student_url}"
    return Options(
        check=args.check,
        port=args.port,
        time_scale=args.time_scale if args.time_scale is not None else (0.1 if args.check else 1),
        seconds_per_scene=args.seconds_per_scene or (8 if args.check else 20),
        timeout=args.timeout,
        student_url=student_url,
        teacher_url=args.teacher_url,
        student_model=args.student_model,
        teacher_model=args.teacher_model,
        keep=args.keep or args.dir is not None,
        directory=args.dir,
        real_ollama=args.real_ollama,
    )


def free_port(preferred: int | None = None) -> int:
    """`preferred` if nothing listens there on loopback, else a free port."""
    if preferred:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", preferred))
            except OSError:
                pass
            else:
                return preferred
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def local_time_zone() -> str:
    """The machine's IANA time zone, so the dashboard shows local times; UTC if unknown."""
    if zone := os.environ.get("TZ", "").lstrip(":"):
        return zone
    with contextlib.suppress(OSError):
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    return "UTC"


RUNNING: list[Service] = []
"""Every program started, so that even an interrupted shutdown leaves none behind."""


@dataclass
class Demo:
    """Everything the demo started, so it can all be stopped."""

    options: Options
    console: Console
    folder: Path
    services: list[Service] = field(default_factory=list)
    student_url: str = ""
    teacher_service_url: str = ""
    teacher_token: str = ""
    ha_url: str = ""
    cameras: list[dashboard.CameraEntities] = field(default_factory=list)
    hub: dict[str, str] = field(default_factory=dict)
    entry_id: str = ""
    """The demo's Vision Tutor entry."""
    automations: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    async def stop(self) -> None:
        for service in reversed(self.services):
            if service.running:
                self.console.step(f"Stopping {service.name}")
                await service.stop()


# --- Start-up ---------------------------------------------------------------------------------


async def start_simulator(demo: Demo) -> None:
    if demo.options.student_url:
        demo.student_url = demo.options.student_url
        demo.console.step(f"Using the Ollama at {demo.student_url} for the student")
        return
    demo.console.step(f"Starting the simulator (time scale {demo.options.time_scale:g})")
    service = await start(
        "the simulator",
        [
            sys.executable,
            "-m",
            "simulator",
            "--port",
            "0",
            "--seed",
            "7",
            "--time-scale",
            str(demo.options.time_scale),
        ],
        demo.logs / "simulator.log",
    )
    demo.services.append(service)
    RUNNING.append(service)
    match = await service.wait_for_line(r"listening on (http://\S+)", within=60)
    demo.student_url = match.group(1)


async def start_teacher(demo: Demo) -> None:
    teacher_ollama = demo.options.teacher_url or demo.student_url
    data = demo.folder / "teacher"
    data.mkdir()
    config = demo.folder / "teacher-options.json"
    config.write_text(
        json.dumps(
            {
                "teacher_url": teacher_ollama,
                "teacher_model": demo.options.teacher_model,
                "student_url": demo.student_url,
                "student_model": demo.options.student_model,
                # Short coalescing window: the demo's escalations are reviewed promptly.
                "batch_window_ms": 250,
                "stats_interval_s": 1,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    demo.console.step("Starting the teacher service (the add-on, standalone)")
    service = await start(
        "the teacher service",
        [
            sys.executable,
            "-m",
            "vision_tutor_teacher",
            "--config",
            str(config),
            "--data",
            str(data),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        demo.logs / "teacher.log",
    )
    demo.services.append(service)
    RUNNING.append(service)
    match = await service.wait_for_line(r"teacher .*listening on (http://[^\s,]+)", within=60)
    demo.teacher_service_url = match.group(1)
    demo.teacher_token = (data / "token").read_text(encoding="utf-8").strip()


def write_configuration(demo: Demo, port: int) -> Path:
    """A fresh Home Assistant configuration folder with the integration and the demo cameras."""
    config = demo.folder / "homeassistant"
    components = config / "custom_components"
    components.mkdir(parents=True)
    # A regular package, not a namespace one: this checkout's root is on the venv's sys.path
    # (for `python -m simulator`), and its custom_components folder would otherwise hide the
    # demo cameras from Home Assistant.
    (components / "__init__.py").write_text('"""Custom integrations of the demo."""\n')
    # The integration from this checkout, as HACS would install it (linked, so edits show up
    # on the next run).
    (components / "vision_tutor").symlink_to(INTEGRATION, target_is_directory=True)
    cameras_platform = components / "demo_scene_camera"
    shutil.copytree(
        DEMO / "demo_scene_camera",
        cameras_platform,
        ignore=shutil.ignore_patterns("__pycache__", "integration-manifest.json"),
    )
    shutil.copy(
        DEMO / "demo_scene_camera" / "integration-manifest.json",
        cameras_platform / "manifest.json",
    )
    blueprint = config / "blueprints" / "automation" / "vision_tutor" / BLUEPRINT.name
    blueprint.parent.mkdir(parents=True)
    shutil.copy(BLUEPRINT, blueprint)
    (config / "automations.yaml").write_text("[]\n", encoding="utf-8")

    scenes = demo.folder / "scenes"
    cameras = "\n".join(
        f"  - platform: demo_scene_camera\n"
        f"    name: {camera.name}\n"
        f"    scenes_dir: {json.dumps(str(scenes))}\n"
        f"    playlist: {json.dumps(list(camera.playlist))}\n"
        f"    seconds_per_scene: {demo.options.seconds_per_scene:g}"
        for camera in CAMERAS
    )
    template = string.Template((DEMO / "configuration.yaml").read_text(encoding="utf-8"))
    (config / "configuration.yaml").write_text(
        template.substitute(port=port, time_zone=local_time_zone(), cameras=cameras),
        encoding="utf-8",
    )
    return config


async def export_scenes(demo: Demo) -> None:
    await asyncio.to_thread(export, SceneLibrary.default(), demo.folder / "scenes", width=768)


async def start_home_assistant(demo: Demo, ha: HomeAssistant, config: Path) -> None:
    demo.console.step(
        "Starting Home Assistant (the first start takes a little while: it creates its database "
        "and loads the web UI)"
    )
    began = time.monotonic()
    service = await start(
        "Home Assistant",
        [sys.executable, "-m", "homeassistant", "--config", str(config), "--skip-pip"],
        demo.logs / "homeassistant.log",
    )
    demo.services.append(service)
    RUNNING.append(service)
    async with demo.console.waiting("waiting for Home Assistant to answer", service.last_line):
        while not await ha.ready():
            if not service.running:
                raise service.failure(f"exited with status {service.process.returncode}")
            if time.monotonic() - began > 300:
                raise service.failure("did not answer within 300 s")
            await asyncio.sleep(0.5)
    demo.timings["home_assistant_start"] = time.monotonic() - began
    demo.console.step(f"Home Assistant is up at {demo.ha_url}")


async def configure(demo: Demo, ha: HomeAssistant) -> None:
    """Onboarding, the integration, its cameras, the automations and the dashboard."""
    began = time.monotonic()
    demo.console.step(f"Onboarding: creating the user {USERNAME!r}")
    await ha.onboard(name="Demo", username=USERNAME, password=PASSWORD)
    # The demo's port comes from configuration.yaml, which Home Assistant 2026.10 adopts as a
    # trial HTTP configuration that it reverts (with a restart) after five minutes unless it is
    # confirmed. Confirm it, as its dialog would, and let the deprecation notice go: a fresh
    # Home Assistant offers no other way to choose its port before it first starts.
    await ha.command("http/config/promote")
    with contextlib.suppress(HomeAssistantError):
        await ha.command(
            "repairs/ignore_issue", domain="http", issue_id="deprecated_yaml", ignore=True
        )
    # The web server answers before every integration is set up (the cameras among them).
    async with demo.console.waiting("waiting for Home Assistant to finish starting"):
        deadline = time.monotonic() + 300
        while not await ha.running():
            if time.monotonic() > deadline:
                raise HomeAssistantError("Home Assistant did not finish starting within 300 s")
            await asyncio.sleep(0.5)

    demo.console.step("Adding Vision Tutor through its config flow")
    entry = await ha.flow(
        "/api/config/config_entries/flow",
        {"handler": "vision_tutor", "show_advanced_options": False},
        {"student_url": demo.student_url},
        {"student_model": demo.options.student_model},
        {"teacher_mode": "manual"},
        {"teacher_url": demo.teacher_service_url, "teacher_token": demo.teacher_token},
    )
    if entry.get("type") != "create_entry":
        raise HomeAssistantError(f"the config flow did not create an entry: {entry}")
    entry_id = entry["result"]["entry_id"]

    for camera in CAMERAS:
        if not camera.monitored:
            continue
        demo.console.step(f"Adding the camera {camera.name} (every {SCAN_INTERVAL} s)")
        added = await ha.flow(
            "/api/config/config_entries/subentries/flow",
            {"handler": [entry_id, "camera"]},
            {
                "camera_entity": camera.entity_id,
                "scan_interval": SCAN_INTERVAL,
                "scene_description": camera.description,
            },
        )
        if added.get("type") != "create_entry":
            raise HomeAssistantError(f"adding {camera.name} failed: {added}")
        # Each camera reloads the entry; like a person, add the next once this one is there
        # (a camera added while the entry is still reloading would wait for the next reload).
        await find_entities(demo, ha, entry_id)
    if not demo.options.student_url:
        # The hub device is named after the entry: say what it is rather than a random port.
        # (Renaming reloads the entry, so it comes after the cameras, which reload it too.)
        await ha.command("config_entries/update", entry_id=entry_id, title="Simulated Ollama")
        await find_entities(demo, ha, entry_id)
    await add_automations(demo, ha)
    demo.console.step("Saving the dashboard")
    await ha.command(
        "lovelace/dashboards/create",
        url_path=dashboard.URL_PATH,
        title=dashboard.TITLE,
        icon="mdi:cctv",
        show_in_sidebar=True,
        require_admin=False,
        mode="storage",
    )
    await ha.command(
        "lovelace/config/save",
        url_path=dashboard.URL_PATH,
        config=dashboard.dashboard(demo.cameras, demo.hub),
    )
    # Onboarding sets up a few integrations of its own (text-to-speech, weather, radio); the
    # demo has neither their packages nor the internet they need, so they only fail. Remove them
    # rather than leave a newcomer looking at failed integrations.
    for entry in await ha.request("GET", "/api/config/config_entries/entry"):
        if entry["domain"] in ONBOARDING_EXTRAS and entry["state"] != "loaded":
            await ha.request("DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}")
    # Every playlist starts again from its first (routine) scene now that it is watched.
    for camera in CAMERAS:
        await ha.request(
            "POST",
            "/api/services/demo_scene_camera/show",
            {"entity_id": camera.entity_id, "scene": camera.playlist[0]},
        )
    demo.timings["configure"] = time.monotonic() - began


async def subentries(ha: HomeAssistant, entry_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await ha.command(
        "config_entries/subentries/list", entry_id=entry_id
    )
    return result


type ByDevice = dict[str, dict[str, str]]
"""Entity ids by device id, then by translation key."""


async def _registered(
    ha: HomeAssistant, entry_id: str
) -> tuple[list[tuple[dict[str, Any], dict[str, str]]], ByDevice]:
    """The entry's camera devices with their entities, and all its entities by device."""
    entities = await ha.command("config/entity_registry/list")
    devices = {d["id"]: d for d in await ha.command("config/device_registry/list")}
    by_device: ByDevice = {}
    for entity in entities:
        if entity.get("config_entry_id") == entry_id and entity.get("platform") == "vision_tutor":
            by_device.setdefault(entity["device_id"], {})[entity["translation_key"]] = entity[
                "entity_id"
            ]
    cameras = [
        (devices[device_id], keys)
        for device_id, keys in by_device.items()
        if "observation" in keys and "analysed_frame" in keys and device_id in devices
    ]
    return cameras, by_device


async def find_entities(demo: Demo, ha: HomeAssistant, entry_id: str) -> None:
    """The entities the integration created, by device and translation key (not by guessing)."""
    demo.entry_id = entry_id
    deadline = time.monotonic() + 60
    wanted = sum(
        1 for subentry in await subentries(ha, entry_id) if subentry["subentry_type"] == "camera"
    )
    async with demo.console.waiting("waiting for the cameras' entities"):
        while True:
            cameras, by_device = await _registered(ha, entry_id)
            if len(cameras) >= wanted:
                break
            if time.monotonic() > deadline:
                raise HomeAssistantError(
                    f"only {len(cameras)} of {wanted} cameras have entities after 60 s"
                )
            await asyncio.sleep(0.5)
    _adopt(demo, cameras, by_device)


async def refresh_cameras(demo: Demo, ha: HomeAssistant) -> list[str]:
    """Take in cameras added since the start (Add camera in the UI); the names of the new."""
    known = {camera.device_id for camera in demo.cameras}
    cameras, by_device = await _registered(ha, demo.entry_id)
    _adopt(demo, cameras, by_device)
    return [camera.name for camera in demo.cameras if camera.device_id not in known]


def _adopt(
    demo: Demo, cameras: list[tuple[dict[str, Any], dict[str, str]]], by_device: ByDevice
) -> None:
    """Make these the cameras (and hub entities) the console watches."""
    names = {camera.name: camera for camera in CAMERAS}
    demo.cameras = []
    for device, keys in sorted(cameras, key=lambda item: item[0].get("name") or ""):
        demo_camera = names.get(device["name"])
        demo.cameras.append(
            dashboard.CameraEntities(
                name=device["name"],
                device_id=device["id"],
                camera=demo_camera.entity_id if demo_camera else "",
                observation=keys["observation"],
                confidence=keys["confidence"],
                safety=keys["safety"],
                safety_event=keys["safety_event"],
                frame=keys["analysed_frame"],
                analysis=keys.get("analysis", ""),
                analyse_now=keys.get("analyse_now", ""),
            )
        )
    order = [camera.name for camera in CAMERAS]
    demo.cameras.sort(key=lambda c: order.index(c.name) if c.name in order else len(order))
    hub_keys = next(
        (keys for device_id, keys in by_device.items() if "student_connectivity" in keys), {}
    )
    demo.hub = hub_keys


async def add_automations(demo: Demo, ha: HomeAssistant) -> None:
    """An automation from the blueprint per camera, notifying in Home Assistant's sidebar."""
    for camera in demo.cameras:
        automation_id = f"vision_tutor_safety_{camera.device_id[:8]}"
        demo.console.step(
            f"Adding the automation '{camera.name} safety alert' (from the blueprint)"
        )
        await ha.request(
            "POST",
            f"/api/config/automation/config/{automation_id}",
            {
                "alias": f"{camera.name} safety alert",
                "description": "Created by scripts/demo from the Vision Tutor blueprint.",
                "use_blueprint": {
                    "path": "vision_tutor/safety_alert.yaml",
                    "input": {
                        "safety_event": camera.safety_event,
                        "notify_action": "notify.persistent_notification",
                        "cooldown": {"minutes": 1},
                    },
                },
            },
        )
        demo.automations.append(automation_id)


# --- Watching ---------------------------------------------------------------------------------


@dataclass
class Watch:
    """What the demo has seen happen, from Home Assistant's event bus."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    last_student: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each observation sensor's last student answer (a verdict replaces it on the entity)."""


def _percent(value: Any) -> str:
    return f"{round(float(value) * 100)} %" if isinstance(value, int | float) else "-"


def verdict_shown(demo: Demo, watch: Watch) -> dashboard.CameraEntities | None:
    """A camera whose entities show a safety escalation that the teacher confirmed."""
    for camera in demo.cameras:
        observation = watch.states.get(camera.observation)
        safety = watch.states.get(camera.safety)
        if observation is None or safety is None:
            continue
        attributes = observation["attributes"]
        if (
            attributes.get("source") == "teacher"
            and attributes.get("escalation_reason") == "safety"
            and safety["state"] == "on"
            and safety["attributes"].get("confirmed_by_teacher")
        ):
            return camera
    return None


def describe(demo: Demo, watch: Watch, event: Mapping[str, Any]) -> str | None:
    """A line for the live log, or None for changes not worth a line."""
    data = event["data"]
    names = {camera.camera: camera.name for camera in demo.cameras}
    now = time.strftime("%H:%M:%S")
    if event["event_type"] == "vision_tutor_escalation":
        camera = names.get(data.get("camera"), data.get("camera"))
        return (
            f"{now}  {camera:<12} escalated to the teacher ({data.get('reason')}): "
            f"{data.get('detail')} -> {data.get('teacher')}"
        )
    if event["event_type"] == "vision_tutor_teacher_review":
        camera = names.get(data.get("camera"), data.get("camera"))
        flags = ", ".join(data.get("flags") or []) or "no hazard"
        agrees = "agrees" if data.get("agrees_with_student") else "disagrees"
        return (
            f"{now}  {camera:<12} teacher ({flags}, {agrees} with the student): "
            f"{data.get('summary')}"
        )
    new, old = data.get("new_state"), data.get("old_state")
    if new is None:
        return None
    for camera in demo.cameras:
        if new["entity_id"] == camera.observation:
            attributes = new["attributes"]
            before = (old or {}).get("attributes", {})
            if attributes.get("source") != "student" or new["state"] in ("unknown", "unavailable"):
                return None
            if attributes.get("analysed_at") == before.get("analysed_at") or new["state"] == (
                old or {}
            ).get("state"):
                return None  # the same frame, or the same words again
            return (
                f"{now}  {camera.name:<12} student ({_percent(attributes.get('effective_confidence'))}): "
                f"{new['state']}"
            )
        if new["entity_id"] == camera.safety and new["state"] != (old or {}).get("state"):
            if new["state"] == "on":
                flags = ", ".join(new["attributes"].get("flags") or [])
                return f"{now}  {camera.name:<12} SAFETY ON: {flags}"
            if new["state"] == "off" and (old or {}).get("state") == "on":
                return f"{now}  {camera.name:<12} safety clear"
    return None


def record(demo: Demo, watch: Watch, event: Mapping[str, Any]) -> None:
    data = event["data"]
    if event["event_type"] == "vision_tutor_escalation":
        watch.escalations.append(dict(data))
    elif event["event_type"] == "vision_tutor_teacher_review":
        watch.reviews.append(dict(data))
    elif (new := data.get("new_state")) is not None:
        watch.states[new["entity_id"]] = new
        if new["attributes"].get("source") == "student" and new["entity_id"] in {
            camera.observation for camera in demo.cameras
        }:
            watch.last_student[new["entity_id"]] = new


async def wait_for_first_analyses(demo: Demo, ha: HomeAssistant, watch: Watch) -> None:
    async with demo.console.waiting("waiting for the first analysed frames"):
        while True:
            states = await ha.states()
            for camera in demo.cameras:
                if camera.observation in states:
                    watch.states.setdefault(camera.observation, states[camera.observation])
                    watch.states.setdefault(camera.safety, states[camera.safety])
            if all(
                states.get(camera.observation, {}).get("state") not in (None, "unknown")
                for camera in demo.cameras
            ):
                return
            await asyncio.sleep(0.5)


async def check(demo: Demo, ha: HomeAssistant, began: float) -> int:
    """Wait for a teacher-confirmed safety escalation on the entities; report it."""
    watch = Watch()
    event_types = (
        "state_changed",
        "vision_tutor_escalation",
        "vision_tutor_teacher_review",
        "entity_registry_updated",
    )
    async with ha.events(*event_types) as events:
        await wait_for_first_analyses(demo, ha, watch)
        demo.console.step(
            "Cameras are being analysed; waiting for a hazard and the teacher's verdict "
            f"(each scene lasts {demo.options.seconds_per_scene:g} s)"
        )
        deadline = time.monotonic() + demo.options.timeout
        found = None

        def progress() -> str:
            return f"{len(watch.escalations)} escalations, {len(watch.reviews)} teacher verdicts"

        async with demo.console.waiting("waiting for a teacher-confirmed hazard", progress):
            while found is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    demo.console.error(
                        f"no teacher-confirmed safety escalation within {demo.options.timeout:.0f} s "
                        f"({progress()}); logs in {demo.logs}"
                    )
                    return 1
                try:
                    event = await asyncio.wait_for(events.get(), timeout=min(remaining, 1))
                except TimeoutError:
                    for service in demo.services:
                        if not service.running:
                            raise service.failure("stopped unexpectedly") from None
                    continue
                record(demo, watch, event)
                found = verdict_shown(demo, watch)
    demo.timings["verdict"] = time.monotonic() - began
    await report(demo, ha, watch, found)
    return 0


async def report(
    demo: Demo, ha: HomeAssistant, watch: Watch, camera: dashboard.CameraEntities
) -> None:
    observation = watch.states[camera.observation]
    safety = watch.states[camera.safety]
    attributes = observation["attributes"]
    student = watch.last_student.get(camera.observation)
    escalation: dict[str, Any] = next(
        (e for e in reversed(watch.escalations) if e.get("camera") == camera.camera), {}
    )
    review: dict[str, Any] = next(
        (r for r in reversed(watch.reviews) if r.get("camera") == camera.camera), {}
    )
    states = await ha.states()
    frame = states.get(camera.frame, {})
    automation = next(
        (
            state
            for state in states.values()
            if state["entity_id"].startswith("automation.")
            and state["attributes"].get("friendly_name") == f"{camera.name} safety alert"
        ),
        {},
    )
    card = await ha.request("GET", "/vision_tutor/vision-tutor-card.js")
    resources = await ha.command("lovelace/resources")
    card_resource = next(
        (r["url"] for r in resources if r["url"].startswith("/vision_tutor/vision-tutor-card.js")),
        "not registered",
    )
    t = demo.timings
    lines = [
        "",
        "Vision Tutor demo check: OK",
        f"  Home Assistant answered after {t['home_assistant_start']:.0f} s; onboarding, the "
        f"config flow, {len(demo.cameras)} cameras, automations and the dashboard took "
        f"{t['configure']:.0f} s; the verdict was on the entities {t['verdict']:.0f} s after start",
        f"  {camera.name} ({camera.camera}) escalated: {escalation.get('reason', '?')} - "
        f"{escalation.get('detail', '?')} (teacher: {escalation.get('teacher', '?')})",
    ]
    if student is not None:
        sa = student["attributes"]
        lines.append(
            f'    student {sa.get("model")}: "{student["state"]}" flags '
            f"{', '.join(sa.get('safety_flags') or []) or 'none'}, confidence "
            f"{_percent(sa.get('confidence'))} (effective {_percent(sa.get('effective_confidence'))})"
        )
    lines += [
        f'    teacher verdict: "{observation["state"]}" flags '
        f"{', '.join(attributes.get('safety_flags') or []) or 'none'}, confidence "
        f"{_percent(attributes.get('confidence'))}; agrees with the student: "
        f"{review.get('agrees_with_student')}",
        f"  {camera.observation}: source={attributes.get('source')}, escalation_reason="
        f"{attributes.get('escalation_reason')}, prompt_version={attributes.get('prompt_version')}",
        f"  {camera.safety}: {safety['state']}, flags={safety['attributes'].get('flags')}, "
        f"confirmed_by_teacher={safety['attributes'].get('confirmed_by_teacher')}",
        f"  {camera.frame}: {frame.get('state', 'missing')} (the analysed frame)",
        f"  card: {len(card or '')} bytes at /vision_tutor/vision-tutor-card.js, dashboard "
        f"resource {card_resource}",
        f"  automation '{camera.name} safety alert' (blueprint): last triggered "
        f"{automation.get('attributes', {}).get('last_triggered') or 'not yet'}",
        f"  totals: {len(watch.escalations)} escalations, {len(watch.reviews)} teacher verdicts",
    ]
    for line in lines:
        demo.console.line(line)


async def watch_forever(demo: Demo, ha: HomeAssistant, port: int) -> None:
    """Print where to look, then a line per result, escalation and verdict until Ctrl-C."""
    watch = Watch()
    event_types = (
        "state_changed",
        "vision_tutor_escalation",
        "vision_tutor_teacher_review",
        "entity_registry_updated",
    )
    async with ha.events(*event_types) as events:
        console = demo.console
        library = SceneLibrary.default()
        hazards = "; ".join(
            f"{camera.name}: {library.get(camera.playlist[1]).title.lower()}"
            for camera in CAMERAS
            if camera.monitored
        )
        console.line()
        console.line("Vision Tutor demo is running.")
        console.line()
        console.line(f"  Open      {demo.ha_url}/{dashboard.URL_PATH}/cameras")
        console.line(f"  Log in as {USERNAME} / {PASSWORD}")
        console.line()
        console.line("What to look at:")
        console.line(
            "  - The Vision Tutor dashboard: a card per camera with the frame the student "
            "analysed, what it saw,"
        )
        console.line(
            "    its confidence (effective, beside the model's own), the safety state, and the "
            "teacher's verdicts."
        )
        console.line(
            f"    Each camera changes scene every {demo.options.seconds_per_scene:g} s; the "
            f"second is a hazard ({hazards})."
        )
        console.line(
            "  - 'Live cameras': what the cameras show now; 'Built-in cards': the analyses with"
        )
        console.line("    Home Assistant's own cards only (the README has their YAML).")
        console.line(
            "  - The bell (notifications): alerts from the safety-alert blueprint's automations."
        )
        console.line(
            "  - Settings > Devices & services > Vision Tutor: 'Add camera' for the Porch camera."
        )
        console.line(
            f"  - The teacher service: {demo.teacher_service_url}/ (review queue and verdicts)."
        )
        console.line(f"  Logs: {demo.logs}    Stop: Ctrl-C")
        console.line()
        while True:
            event = await events.get()
            if event["event_type"] == "entity_registry_updated":
                # A camera added in the UI after the start: its results get lines too.
                if event["data"].get("action") == "create" and demo.entry_id:
                    for name in await refresh_cameras(demo, ha):
                        console.line(
                            f"{time.strftime('%H:%M:%S')}  {name:<12} now monitored: its "
                            "results show here too"
                        )
                continue
            record(demo, watch, event)
            if line := describe(demo, watch, event):
                console.line(line)


async def run(options: Options, console: Console) -> int:
    began = time.monotonic()
    if options.port == 0:
        port = free_port()
    elif options.check:
        port = options.port or free_port()
    else:
        port = free_port(options.port or 8123)
    if options.port and port != options.port:
        console.error(f"port {options.port} is taken; try another with --port")
        return 2
    if options.port is None and port != 8123 and not options.check:
        console.step(f"Port 8123 is taken; Home Assistant will use {port}")
    folder = options.directory or Path(tempfile.mkdtemp(prefix="vision-tutor-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        console.error(f"{folder} is not empty; give a new or empty folder")
        return 2
    demo = Demo(options, console, folder)
    console.step(f"Demo folder: {folder}")
    demo.ha_url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            ha = HomeAssistant(session, demo.ha_url)
            try:
                console.step("Exporting the simulator's scene library for the demo cameras")
                await asyncio.gather(export_scenes(demo), start_simulator(demo))
                await start_teacher(demo)
                config = write_configuration(demo, port)
                await start_home_assistant(demo, ha, config)
                await configure(demo, ha)
                if options.check:
                    return await check(demo, ha, began)
                await watch_forever(demo, ha, port)
                return 0
            finally:
                await ha.close()
    except (ServiceFailed, HomeAssistantError, aiohttp.ClientError) as err:
        console.error(str(err))
        console.line(f"Logs are in {demo.logs}")
        demo.options.keep = True
        return 1
    finally:
        await demo.stop()
        if demo.options.keep:
            console.step(f"Kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    console = Console()

    async def runner() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        # SIGTERM (e.g. from CI) and a closed terminal stop the demo as Ctrl-C does: cleanly,
        # in order.
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        loop.add_signal_handler(signal.SIGHUP, task.cancel)
        return await run(options, console)

    try:
        with contextlib.ExitStack() as stack:
            if options.real_ollama:
                console.step("Starting the real Ollama of the tests (the first run builds it)")
                server = stack.enter_context(run_ollama())
                ensure_models(server.url, log=console.step)
                options = replace(
                    options,
                    student_url=server.url,
                    student_model=REAL_STUDENT,
                    teacher_model=REAL_TEACHER,
                )
            return asyncio.run(runner())
    except KeyboardInterrupt, asyncio.CancelledError:
        console.line("Stopped.")
        return 130
    finally:
        # A second Ctrl-C can cut the orderly stop short: nothing may outlive the demo.
        for service in RUNNING:
            if service.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.process.pid, signal.SIGKILL)
