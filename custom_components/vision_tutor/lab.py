"""The integration's side of the prompt lab: which prompt the student uses, and lab jobs.

The add-on's lab writes and scores candidate prompts and promotes the best; the integration
switches the student's system prompt when a `prompt` event says so, and remembers it in
.storage so a restart (or the add-on being down) keeps the promoted prompt. The lab's seed
prompt is not used: until something is promoted, the built-in prompt stays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import logging
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store

from .const import DOMAIN
from .coordinator import ActivePrompt
from .teacher import StreamEvent, TeacherLink, TeacherRequestError

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION: Final = 1
SEED_SOURCE: Final = "seed"


@dataclass(frozen=True, slots=True)
class LabJob:
    """A synthesis or scoring run in the lab, as its last progress event described it."""

    job_id: str
    kind: str
    state: str
    progress: float
    message: str


class PromptLab:
    """Keeps the student's prompt in step with the lab, and relays lab actions."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        prompt: ActivePrompt,
        teacher: TeacherLink | None,
        on_change: Callable[[], None],
    ) -> None:
        self.prompt = prompt
        self.teacher = teacher
        self.versions: list[str] = []
        self.job: LabJob | None = None
        self._hass = hass
        self._entry_id = entry_id
        self._on_change = on_change
        self._store: Store[dict[str, str]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.active_prompt"
        )

    async def async_load(self) -> None:
        """The prompt promoted last time, if any."""
        if stored := await self._store.async_load():
            self.prompt.version, self.prompt.text = stored["version"], stored["text"]

    async def async_sync(self) -> None:
        """Catch up with the lab: its versions, and its active prompt unless that is the seed."""
        if self.teacher is None:
            return
        try:
            listing = await self.teacher.async_call("GET", "/api/v1/prompts")
        except TeacherRequestError as err:
            _LOGGER.debug("Could not list the lab's prompts: %s", err)
            return
        prompts = [p for p in listing.get("prompts", ()) if isinstance(p, dict)]
        self.versions = [str(p["version"]) for p in prompts if "version" in p]
        active = next((p for p in prompts if p.get("status") == "active"), None)
        if active and active.get("source") != SEED_SOURCE:
            self._use(str(active["version"]), str(active["text"]))
        await self.async_check_finetune()
        self._on_change()

    async def async_check_finetune(self) -> None:
        """Say in Repairs when the lab finds prompting has plateaued and fine-tuning is justified."""
        if self.teacher is None:
            return
        try:
            status = await self.teacher.async_call("GET", "/api/v1/finetune")
        except TeacherRequestError as err:
            _LOGGER.debug("Could not ask the lab about fine-tuning: %s", err)
            return
        issue_id = f"finetune_ready_{self._entry_id}"
        if status.get("ready"):
            ir.async_create_issue(
                self._hass,
                DOMAIN,
                issue_id,
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key="finetune_ready",
                translation_placeholders={
                    "examples": str(status.get("examples", "")),
                    "url": f"{self.teacher.url}/api/v1/finetune/export.jsonl",
                },
            )
        else:
            ir.async_delete_issue(self._hass, DOMAIN, issue_id)

    def handle_event(self, event: StreamEvent) -> bool:
        """Apply a `prompt` or `job` event; False for events that are not the lab's."""
        if event.type == "prompt" and event.data.get("status") == "active":
            version, text = event.data.get("version"), event.data.get("text")
            if isinstance(version, str) and isinstance(text, str) and text.strip():
                self._use(version, text)
                if version not in self.versions:
                    self.versions.append(version)
            return True
        if event.type == "job":
            self.job = _job(event.data)
            if self.job.state == "done":
                # A finished round may be the one that shows prompting has plateaued.
                self._hass.async_create_task(self.async_check_finetune(), eager_start=True)
            return True
        return False

    def _use(self, version: str, text: str) -> None:
        if (version, text) == (self.prompt.version, self.prompt.text):
            return
        _LOGGER.info("The student now uses prompt %s", version)
        self.prompt.version, self.prompt.text = version, text
        # Saved at once, not delayed: a reload right after a promotion must find it.
        self._hass.async_create_task(
            self._store.async_save({"version": version, "text": text}), eager_start=True
        )

    async def async_request(self, method: str, path: str, body: Any = None) -> Any:
        """A lab call through the teacher link (the actions use this)."""
        if self.teacher is None:
            raise TeacherRequestError("no teacher service is configured")
        return await self.teacher.async_call(method, path, body)


def _job(data: Mapping[str, Any]) -> LabJob:
    progress = data.get("progress")
    return LabJob(
        job_id=str(data.get("job_id", "")),
        kind=str(data.get("kind", "")),
        state=str(data.get("state", "")),
        progress=float(progress) if isinstance(progress, int | float) else 0.0,
        message=str(data.get("message", "")),
    )
