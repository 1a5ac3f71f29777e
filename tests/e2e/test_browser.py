"""The demo's real Home Assistant in a real browser: log in, watch the card, add a camera by clicking.

Chromium is Debian's (`/usr/bin/chromium`, installed by scripts/setup), driven by Playwright's
Python API without any browser download. The demo runs with scenes that never change by
themselves; the test moves the cameras between scenes through the demo cameras' action, so it
waits for what it caused rather than for a clock. Screenshots go to a temporary folder, so a test
run never rewrites tracked files; the README's are made with
`VISION_TUTOR_SCREENSHOTS=docs/screenshots scripts/test tests/e2e`.

For quicker iterations, VISION_TUTOR_E2E_URL=http://127.0.0.1:PORT points the tests at a demo
already running (`python -m demo --port PORT --time-scale 0.1 --seconds-per-scene 3600`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any
from urllib.parse import quote

from playwright.sync_api import Browser, Page, Playwright, sync_playwright
import pytest

from .conftest import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).parents[2]
SCREENSHOTS = Path(
    os.environ.get("VISION_TUTOR_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / "vision-tutor-screenshots"
)
USERNAME, PASSWORD = "demo", "vision-tutor"
DASHBOARD = "/vision-tutor/cameras"
DEMO_START_TIMEOUT = 300
VERDICT_TIMEOUT_MS = 90_000

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}

# Finds elements through every shadow root (Home Assistant's UI nests them deeply), and reads a
# Vision Tutor card's rendering next to the state it renders, in the same instant.
CARD_JS = """
(title) => {
  const all = (root, tag, out = []) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.localName === tag) out.push(el);
      if (el.shadowRoot) all(el.shadowRoot, tag, out);
    }
    return out;
  };
  const card = all(document, "vision-tutor-card").find(
    (el) => el.shadowRoot?.querySelector(".title")?.textContent === title);
  if (!card) return null;
  const root = card.shadowRoot;
  const text = (sel) => root.querySelector(sel)?.textContent?.trim() ?? null;
  const hass = document.querySelector("home-assistant").hass;
  const ids = {};
  for (const e of Object.values(hass.entities)) {
    if (e.device_id === card._config.device_id && e.platform === "vision_tutor") {
      ids[e.translation_key] = e.entity_id;
    }
  }
  const observation = hass.states[ids.observation];
  const safety = hass.states[ids.safety];
  const img = root.querySelector("img.frame");
  return {
    status: root.querySelector("ha-card")?.dataset.status,
    summary: text(".summary"),
    source: root.querySelector(".summary-row .badge")?.dataset.source ?? null,
    safety: root.querySelector(".safety")?.dataset.safety ?? null,
    flags: [...root.querySelectorAll(".safety .flag")].map((el) => el.textContent),
    confirmed: !!root.querySelector(".safety .confirmed"),
    effective: text(".bar-row.effective .bar-value"),
    stated: text(".bar-row.stated .bar-value"),
    escalation: text(".escalation"),
    promptVersion: text(".prompt-version"),
    timeline: [...root.querySelectorAll(".timeline li")].map((li) => li.dataset.source),
    frameLoaded: !!img && img.complete && img.naturalWidth > 0,
    frameUrl: img?.getAttribute("src") ?? null,
    state: observation && {
      summary: observation.state,
      attributes: observation.attributes,
      safety: safety?.state,
      flags: safety?.attributes.flags,
      confirmed: safety?.attributes.confirmed_by_teacher,
    },
  };
}
"""

PICTURES_LOADED_JS = """
() => {
  const images = [];
  const all = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.localName === "img") images.push(el);
      if (el.shadowRoot) all(el.shadowRoot);
    }
  };
  all(document);
  // The three analysed frames of the Vision Tutor cards.
  return images.length >= 3 && images.every((img) => img.complete && img.naturalWidth > 0);
}
"""


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a running demo: started here (and stopped after), or given."""
    if url := os.environ.get("VISION_TUTOR_E2E_URL"):
        yield url.rstrip("/")
        return
    folder = tmp_path_factory.mktemp("demo")
    log = folder.parent / "demo.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "demo",
                "--port",
                "0",
                "--time-scale",
                "0.1",
                # The test moves the cameras itself; the playlists stay on their first scene.
                "--seconds-per-scene",
                "3600",
                "--dir",
                str(folder / "run"),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + DEMO_START_TIMEOUT
        while True:
            text = log.read_text(encoding="utf-8", errors="replace")
            if match := re.search(r"Open\s+(http://127\.0\.0\.1:\d+)/", text):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the demo did not start:\n{text[-4000:]}")
            time.sleep(0.5)
        yield match.group(1)
    finally:
        # SIGTERM stops the demo like Ctrl-C: Home Assistant, the teacher, the simulator.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("the demo did not stop within 90 s of SIGTERM")


class BrowserThread:
    """Playwright's sync API on a thread of its own.

    Playwright runs an event loop while a browser is open; on pytest's main thread that loop
    would collide with the ones pytest-asyncio and Home Assistant's test plugin run for their
    fixtures. Every Playwright call of these tests goes through `run`.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def run[T](self, job: Callable[[], T]) -> T:
        return self._executor.submit(job).result()

    @property
    def browser(self) -> Browser:
        assert self._browser is not None
        return self._browser

    def start(self) -> None:
        def launch() -> None:
            manager = sync_playwright()
            self._playwright = manager.start()
            # Playwright's loop starts helper threads for file work (screenshots, storage
            # state) lazily, in the middle of some test; Home Assistant's test plugin fails
            # any test that leaves a new thread behind. Give the loop its one helper now.
            io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright-io")
            io.submit(lambda: None).result()
            manager._loop.set_default_executor(io)
            self._browser = self._playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )

        self.run(launch)

    def stop(self) -> None:
        def close() -> None:
            if self._browser is not None:
                self._browser.close()
            if self._playwright is not None:
                self._playwright.stop()

        try:
            self.run(close)
        finally:
            self._executor.shutdown(wait=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserThread]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing. The browser test needs Debian's Chromium: run scripts/setup as "
        "root (it installs the chromium and chromium-driver packages), or apt-get install "
        "chromium chromium-driver."
    )
    thread = BrowserThread()
    try:
        thread.start()
        yield thread
    finally:
        thread.stop()


@pytest.fixture(scope="module")
def session(
    browser: BrowserThread, demo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Log in once through the login page; later contexts reuse the stored tokens."""
    state = tmp_path_factory.mktemp("browser") / "state.json"

    def log_in() -> None:
        context = browser.browser.new_context(**DESKTOP)
        try:
            page = context.new_page()
            page.goto(demo_url + DASHBOARD)
            page.locator("input[name=username]").fill(USERNAME)
            page.locator("input[name=password]").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"**{DASHBOARD}", timeout=60_000)
            wait_for_card(page, "Kitchen", "status === 'ok'")
            context.storage_state(path=state)
        finally:
            context.close()

    browser.run(log_in)
    return state


class InBrowser:
    """Runs a scenario with a page of a fresh, logged-in context, on the browser thread."""

    def __init__(self, browser: BrowserThread, session: Path, url: str) -> None:
        self._browser = browser
        self._session = session
        self._url = url

    def __call__[T](self, scenario: Callable[[Page], T], **options: Any) -> T:
        def job() -> T:
            context = self._browser.browser.new_context(
                storage_state=self._session, base_url=self._url, **{**DESKTOP, **options}
            )
            try:
                return scenario(context.new_page())
            finally:
                context.close()

        return self._browser.run(job)


@pytest.fixture
def in_browser(browser: BrowserThread, session: Path, demo_url: str) -> InBrowser:
    return InBrowser(browser, session, demo_url)


def card(page: Page, title: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = page.evaluate(CARD_JS, title)
    return result


def wait_for_card(page: Page, title: str, condition: str, timeout: int = 60_000) -> dict[str, Any]:
    """Wait until the card titled `title` renders so that `condition` holds (JS over its fields)."""
    page.wait_for_function(
        f"(title) => {{ const c = ({CARD_JS})(title); if (!c) return false; "
        f"with (c) {{ return {condition}; }} }}",
        arg=title,
        timeout=timeout,
        polling=250,
    )
    result = card(page, title)
    assert result is not None
    return result


def show(page: Page, camera: str, scene: str) -> None:
    """Point a demo camera at a scene, through Home Assistant's action call, as the UI would."""
    page.wait_for_function(
        "() => document.querySelector('home-assistant')?.hass?.connected", timeout=60_000
    )
    page.evaluate(
        "([camera, scene]) => document.querySelector('home-assistant').hass.callService("
        "'demo_scene_camera', 'show', {entity_id: camera, scene})",
        [camera, scene],
    )


def percent(value: float | None) -> str:
    return "\u2013" if value is None else f"{round(value * 100)} %"  # the card's dash


def assert_card_matches_its_state(shown: dict[str, Any]) -> None:
    """What the card shows is the integration's state, in words and numbers."""
    state = shown["state"]
    attributes = state["attributes"]
    assert shown["summary"] == state["summary"]
    assert shown["source"] == attributes["source"]
    assert shown["effective"] == percent(attributes["effective_confidence"])
    assert shown["stated"] == percent(attributes["confidence"])
    assert shown["promptVersion"] == attributes["prompt_version"]
    assert shown["safety"] == state["safety"]
    if state["safety"] == "on":
        assert shown["flags"] == state["flags"]
        assert shown["confirmed"] == state["confirmed"]


def test_the_dashboard_shows_a_card_per_camera_with_its_frame(in_browser: InBrowser) -> None:
    def scenario(page: Page) -> None:
        page.goto(DASHBOARD)
        for title in ("Kitchen", "Hallway", "Living room"):
            shown = wait_for_card(page, title, "status === 'ok' && frameLoaded")
            assert shown["frameUrl"].startswith("/api/image_proxy/image.")
            assert_card_matches_its_state(shown)

    in_browser(scenario)


def test_a_routine_scene_then_a_hazard_with_the_teachers_verdict(in_browser: InBrowser) -> None:
    def scenario(page: Page) -> tuple[dict[str, Any], dict[str, Any]]:
        page.goto(DASHBOARD)
        show(page, "camera.kitchen", "kitchen_empty_day")
        routine = wait_for_card(
            page, "Kitchen", "status === 'ok' && safety === 'off' && /kitchen/i.test(summary)"
        )
        show(page, "camera.kitchen", "fire_kitchen_pan")
        # The student flags the fire, the frame goes to the teacher, the teacher confirms it.
        verdict = wait_for_card(
            page,
            "Kitchen",
            "source === 'teacher' && safety === 'on' && confirmed && escalation !== null "
            "&& state.attributes.source === 'teacher'",
            timeout=VERDICT_TIMEOUT_MS,
        )
        return routine, verdict

    routine, verdict = in_browser(scenario)
    assert_card_matches_its_state(routine)
    assert routine["flags"] == []
    assert re.fullmatch(r"\d{1,3} %", routine["effective"])

    assert_card_matches_its_state(verdict)
    assert "fire" in verdict["flags"]
    assert re.search(r"\b(fire|flames?|burning)\b", verdict["summary"], re.IGNORECASE)
    assert verdict["escalation"].startswith("Sent to the teacher: safety")
    assert verdict["state"]["attributes"]["escalation_reason"] == "safety"
    # The timeline has the routine results and the teacher's verdict.
    assert "teacher" in verdict["timeline"]
    assert len(verdict["timeline"]) >= 2


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("device", "options"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_screenshots(
    in_browser: InBrowser, scheme: str, device: str, options: dict[str, Any]
) -> None:
    """The README's screenshots: a hazard the teacher confirmed, in both themes and sizes."""
    path = SCREENSHOTS / f"dashboard-{scheme}-{device}.png"

    def scenario(page: Page) -> bool:
        page.goto(DASHBOARD)
        show(page, "camera.kitchen", "fire_kitchen_pan")
        for title in ("Hallway", "Living room"):
            wait_for_card(page, title, "status === 'ok' && frameLoaded")
        wait_for_card(
            page,
            "Kitchen",
            "source === 'teacher' && confirmed && frameLoaded",
            timeout=VERDICT_TIMEOUT_MS,
        )
        if device == "desktop":
            # On a phone the pictures below the fold load only when scrolled to.
            page.wait_for_function(PICTURES_LOADED_JS, timeout=30_000, polling=250)
        dark: bool = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(500)  # let the frames and the history graph paint
        page.screenshot(path=path, full_page=device == "desktop")
        return dark

    assert in_browser(scenario, color_scheme=scheme, **options) == (scheme == "dark")
    assert path.stat().st_size > 10_000


def test_the_built_in_cards_view(in_browser: InBrowser) -> None:
    """The README's dashboard without the custom card renders with the integration's entities."""

    def scenario(page: Page) -> None:
        page.goto("/vision-tutor/built-in")
        for card_type in ("hui-picture-entity-card", "hui-gauge-card", "hui-history-graph-card"):
            page.locator(card_type).first.wait_for(timeout=30_000)
        assert page.locator("hui-entities-card").count() >= 3
        assert page.locator("hui-warning").count() == 0, "a built-in card names a missing entity"
        page.wait_for_timeout(1000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "built-in-cards-light-desktop.png")

    in_browser(scenario)


def test_the_card_explains_missing_entities_and_has_an_editor(in_browser: InBrowser) -> None:
    def scenario(page: Page) -> dict[str, Any]:
        page.goto(DASHBOARD)
        wait_for_card(page, "Kitchen", "status === 'ok'")
        result: dict[str, Any] = page.evaluate(
            """async () => {
              const hass = document.querySelector("home-assistant").hass;
              const card = document.createElement("vision-tutor-card");
              card.setConfig({ device_id: "no-such-device", title: "Gone" });
              card.hass = hass;
              const editor = await customElements.get("vision-tutor-card").getConfigElement();
              editor.hass = hass;
              editor.setConfig({ device_id: "no-such-device" });
              document.body.append(editor);
              await new Promise((resolve) => setTimeout(resolve, 500));
              const form = editor.querySelector("ha-form");
              const result = {
                message: card.shadowRoot.querySelector(".message").textContent,
                status: card.shadowRoot.querySelector("ha-card").dataset.status,
                formFields: form ? form.schema.map((field) => field.name) : null,
                deviceFilter: form ? form.schema[0].selector.device.filter : null,
                stub: customElements.get("vision-tutor-card").getStubConfig(hass),
              };
              editor.remove();
              return result;
            }"""
        )
        return result

    rendered = in_browser(scenario)
    assert rendered["status"] == "missing"
    assert "has no Vision Tutor entities" in rendered["message"]
    assert rendered["formFields"] == ["device_id", "title", "timeline"]
    assert rendered["deviceFilter"] == [{"integration": "vision_tutor", "model": "Camera analysis"}]
    assert rendered["stub"]["device_id"]


def test_the_card_editor_keeps_what_is_typed_in_the_timeline_field(in_browser: InBrowser) -> None:
    """Clearing the field and typing 25 gives 25 (it used to refill 6 and give 625)."""

    def scenario(page: Page) -> dict[str, Any]:
        page.goto(DASHBOARD)
        wait_for_card(page, "Kitchen", "status === 'ok'")
        page.evaluate(
            """() => {
              const hass = document.querySelector("home-assistant").hass;
              const editor = document.createElement("vision-tutor-card-editor");
              editor.hass = hass;
              editor.setConfig({ type: "custom:vision-tutor-card", device_id: "any", timeline: 6 });
              // As the dashboard's card editor does: each change comes back through setConfig,
              // at once, and again once it went through the stored (YAML) config, which has
              // no key for an emptied field.
              editor.addEventListener("config-changed", (event) => {
                const config = event.detail.config;
                editor.setConfig(config);
                setTimeout(() => {
                  window.__edited = JSON.parse(JSON.stringify(config));
                  editor.setConfig(window.__edited);
                }, 0);
              });
              document.body.append(editor);
            }"""
        )
        field = page.locator("vision-tutor-card-editor input[type=number]")
        field.wait_for(timeout=30_000)
        field.click()
        field.press("Control+a")
        field.press("Backspace")
        page.wait_for_timeout(300)
        cleared = {
            "config": page.evaluate("() => window.__edited"),
            "value": field.input_value(),
        }
        field.press_sequentially("25", delay=50)
        page.wait_for_timeout(300)
        result: dict[str, Any] = {
            "cleared": cleared,
            "value": field.input_value(),
            "config": page.evaluate("() => window.__edited"),
        }
        page.evaluate("() => document.querySelector('vision-tutor-card-editor').remove()")
        return result

    typed = in_browser(scenario)
    assert typed["cleared"]["value"] == "", "the emptied field is not refilled"
    assert "timeline" not in typed["cleared"]["config"], "an emptied field is left out"
    assert typed["value"] == "25"
    assert typed["config"]["timeline"] == 25


def test_an_option_out_of_range_gets_a_translated_error(in_browser: InBrowser) -> None:
    """Shown on its section in the user's words, not the validator's "Value 100.0 is too small"."""

    def scenario(page: Page) -> dict[str, Any]:
        page.goto("/config/integrations/integration/vision_tutor")
        page.get_by_role("button", name="Configure").first.click()
        dialog = page.locator("dialog-data-entry-flow")
        dialog.get_by_text("Vision Tutor options").wait_for(timeout=30_000)
        dialog.get_by_text("Performance", exact=True).click()
        width = dialog.get_by_role("spinbutton", name="Frame width")
        width.fill("100")
        dialog.get_by_role("button", name="Submit").click()
        message = dialog.get_by_text("Frame width: use a value from 256 to 1920, not 100.")
        message.wait_for(timeout=30_000)
        result = {"raw": dialog.get_by_text("too small").count(), "shown": message.is_visible()}
        page.keyboard.press("Escape")
        return result

    shown = in_browser(scenario)
    assert shown == {"raw": 0, "shown": True}


def test_add_a_camera_through_the_config_flow_by_clicking(in_browser: InBrowser) -> None:
    def scenario(page: Page) -> None:
        page.goto("/config/integrations/integration/vision_tutor")
        page.get_by_role("button", name="Add camera").first.click()
        dialog = page.locator("dialog-data-entry-flow")
        dialog.get_by_text("Add a camera").wait_for(timeout=30_000)

        # The entity picker: open it, search, choose. Monitored cameras are not offered.
        dialog.locator("ha-entity-picker").first.click()
        search = page.locator("ha-picker-combo-box").get_by_placeholder("Search")
        search.fill("Porch")
        page.locator("ha-combo-box-item", has_text="Porch").first.wait_for(timeout=10_000)
        search.fill("Kitchen")
        page.wait_for_timeout(500)
        offered = page.locator("ha-combo-box-item").all_inner_texts()
        # The Kitchen camera is monitored already: the search finds no camera.
        assert [item for item in offered if item.startswith("Kitchen")] == [], offered
        assert any("No entities found" in item for item in offered), offered
        search.fill("Porch")
        page.locator("ha-combo-box-item", has_text="Porch").first.click()
        dialog.get_by_role("spinbutton").first.fill("5")
        dialog.get_by_role("button", name="Submit").click()

        # The new camera is analysed: its observation sensor has a state.
        page.wait_for_function(
            "() => { const h = document.querySelector('home-assistant').hass; "
            "const s = Object.values(h.entities).find((e) => e.platform === 'vision_tutor' "
            "&& e.translation_key === 'observation' && h.devices[e.device_id]?.name === 'Porch'); "
            "return s && !['unknown', 'unavailable'].includes(h.states[s.entity_id]?.state); }",
            timeout=60_000,
        )
        assert dialog.get_by_text("already monitors").count() == 0

    in_browser(scenario)


def test_a_hazard_opens_from_the_cards_timeline_in_the_media_browser(
    in_browser: InBrowser,
) -> None:
    """Hazards are kept: the card's timeline opens the event in Media → Vision Tutor."""
    path = SCREENSHOTS / "history-light-desktop.png"

    def scenario(page: Page) -> dict[str, Any]:
        page.goto(DASHBOARD)
        show(page, "camera.kitchen", "fire_kitchen_pan")
        shown = wait_for_card(
            page,
            "Kitchen",
            "source === 'teacher' && confirmed && state.attributes.snapshot",
            timeout=VERDICT_TIMEOUT_MS,
        )
        snapshot = shown["state"]["attributes"]["snapshot"]
        # Playwright's CSS locators pierce the card's shadow root.
        link = page.locator(f'vision-tutor-card li[data-snapshot="{snapshot}"] a.t-link')
        link.wait_for(timeout=30_000)
        link.click()
        page.wait_for_url("**/media-browser/browser/**", timeout=30_000)
        # The event: its title says what was seen and the teacher's verdict; its children are
        # the student's and the teacher's answers about the frame.
        # (Each title is also in a hidden tooltip: the visible one is the card's.)
        page.get_by_text("Teacher confirmed: fire").filter(visible=True).first.wait_for(
            timeout=30_000
        )
        teacher = page.get_by_text(re.compile(r"^\s*Teacher: \S")).filter(visible=True).first
        teacher.wait_for(timeout=30_000)
        student = page.get_by_text(re.compile(r"^\s*Student: \S")).filter(visible=True).first
        student_title = (student.text_content() or "").strip()
        page.wait_for_timeout(1000)  # let the thumbnails paint
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=path)
        # Opening an answer shows the kept frame itself (resolved and signed by the media source).
        teacher.click()
        page.wait_for_function(
            "() => { const all = (root, out = []) => { for (const el of root.querySelectorAll('*'))"
            " { if (el.localName === 'img' && /vision_tutor\\/history/.test(el.src)) out.push(el);"
            " if (el.shadowRoot) all(el.shadowRoot, out); } return out; };"
            " return all(document).some((img) => img.complete && img.naturalWidth > 0); }",
            timeout=30_000,
            polling=250,
        )
        return {"url": page.url, "snapshot": snapshot, "student": student_title}

    opened = in_browser(scenario)
    assert opened["snapshot"].startswith("media-source://vision_tutor/")
    assert opened["url"].endswith(quote(f"image,{opened['snapshot']}", safe=""))
    assert opened["student"].startswith("Student: ")
    assert path.stat().st_size > 10_000


MORE_INFO_JS = (
    "(id) => document.querySelector('home-assistant').dispatchEvent(new CustomEvent("
    "'hass-more-info', {detail: {entityId: id}, bubbles: true, composed: true}))"
)


def state_of(page: Page, entity_id: str) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate(
        "(id) => document.querySelector('home-assistant').hass.states[id]", entity_id
    )
    return found


def test_pause_a_camera_with_its_switch_and_analyse_it_now_with_its_button(
    in_browser: InBrowser,
) -> None:
    """The camera device's controls, as a user works them from the entity's dialog."""
    switch, button = "switch.hallway_analysis", "button.hallway_analyse_now"

    def toggle(page: Page, to: str) -> None:
        page.locator("ha-more-info-dialog").get_by_role("switch").click()
        page.wait_for_function(
            f"() => document.querySelector('home-assistant').hass.states['{switch}'].state "
            f"=== '{to}'",
            timeout=30_000,
        )

    def scenario(page: Page) -> dict[str, Any]:
        page.goto(DASHBOARD)
        show(page, "camera.hallway", "hallway_empty_day")
        wait_for_card(page, "Hallway", "status === 'ok' && safety === 'off'")

        # The switch's dialog stays open while the card behind it follows.
        page.evaluate(MORE_INFO_JS, switch)
        toggle(page, "off")
        paused = wait_for_card(page, "Hallway", "safety === 'paused'")
        paused_text = page.locator(
            "vision-tutor-card .safety[data-safety='paused']"
        ).first.text_content()
        toggle(page, "on")
        wait_for_card(page, "Hallway", "safety !== 'paused' && status === 'ok'")
        page.keyboard.press("Escape")
        page.wait_for_timeout(1000)  # the dialog closes; a camera back on looks at once

        # The scene does not change, so only the button makes a new analysis (the change gate
        # skips the periodic frames of a still picture).
        before = state_of(page, "sensor.hallway_observation")["attributes"]["analysed_at"]
        page.evaluate(MORE_INFO_JS, button)
        page.locator("ha-more-info-dialog").get_by_role("button", name="Press").click()
        page.wait_for_function(
            "(before) => document.querySelector('home-assistant').hass.states"
            "['sensor.hallway_observation'].attributes.analysed_at !== before",
            arg=before,
            timeout=60_000,
        )
        page.keyboard.press("Escape")
        after = wait_for_card(page, "Hallway", "status === 'ok' && safety === 'off'")
        return {
            "paused": paused,
            "paused_text": paused_text,
            "before": before,
            "after": after,
        }

    shown = in_browser(scenario)
    assert shown["paused"]["state"]["attributes"]["paused"] is True
    assert "Analysis paused" in (shown["paused_text"] or "")
    assert "No hazard" not in (shown["paused_text"] or "")
    assert shown["after"]["state"]["attributes"]["analysed_at"] != shown["before"]
    assert_card_matches_its_state(shown["after"])
