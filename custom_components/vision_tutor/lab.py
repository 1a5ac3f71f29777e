"""The integration's side of the prompt lab: which prompt the student uses, and lab jobs.

The add-on's lab writes and scores candidate prompts and promotes the best; the integration
switches the student's system prompt when a `prompt` event says so, and remembers it in
.storage so a restart (or the add-on being down) keeps the promoted prompt.

The lab and Home Assistant name the same prompt. A new lab's active prompt is its own plain
seed (v1), which the student does not use: the integration keeps its built-in prompt. So on
first contact, while the student still has the built-in prompt and the lab its seed, the
integration registers the built-in prompt in the lab and promotes it there. From then on the
lab scores and improves the prompt the student really uses, and both say the same version
(never "builtin" in Home Assistant beside "active prompt v1" in the lab). Otherwise the lab's
active prompt is the student's, whatever its source (a rollback to the seed included).
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
from .prompts import STUDENT_SYSTEM_PROMPT
from .teacher import StreamEvent, TeacherLink, TeacherRequestError

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION: Final = 1
SEED_SOURCE: Final = "seed"
JOB_ENDED: Final = frozenset({"done", "failed"})
BUILTIN_TEXT: Final = STUDENT_SYSTEM_PROMPT.strip()
"""The built-in prompt as the lab stores it (it trims what it is given)."""


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
        """Catch up with the lab: its versions and its active prompt (see the module's doc)."""
        if self.teacher is None:
            return
        prompts = await self._async_list()
        if prompts is None:
            return
        active = next((p for p in prompts if p.get("status") == "active"), None)
        if (
            active
            and active.get("source") == SEED_SOURCE
            and self.prompt.text.strip() == BUILTIN_TEXT
        ):
            active = await self._async_adopt_builtin(prompts) or active
            prompts = await self._async_list() or prompts
        if active and "version" in active and isinstance(active.get("text"), str):
            self._use(str(active["version"]), str(active["text"]))
        await self.async_check_finetune()
        self._on_change()

    async def async_refresh_versions(self) -> None:
        """List the lab's versions again (a round has added candidates): the select offers them."""
        if await self._async_list() is not None:
            self._on_change()

    async def _async_list(self) -> list[dict[str, Any]] | None:
        """The lab's prompts, newest first; their versions become `versions`. None if away."""
        assert self.teacher is not None
        try:
            listing = await self.teacher.async_call("GET", "/api/v1/prompts")
        except TeacherRequestError as err:
            _LOGGER.debug("Could not list the lab's prompts: %s", err)
            return None
        prompts = [p for p in listing.get("prompts", ()) if isinstance(p, dict)]
        self.versions = [str(p["version"]) for p in prompts if "version" in p]
        return prompts

    async def _async_adopt_builtin(self, prompts: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Register the built-in prompt in the lab (once: an identical one is reused) and
        promote it; the lab's record of it, or None when the lab refused."""
        assert self.teacher is not None
        seed = next((p for p in prompts if p.get("source") == SEED_SOURCE), None)
        known = next((p for p in prompts if p.get("text") == BUILTIN_TEXT), None)
        try:
            if known is None:
                known = await self.teacher.async_call(
                    "POST",
                    "/api/v1/prompts",
                    {"text": BUILTIN_TEXT, "parent": seed.get("version") if seed else None},
                )
            promoted = await self.teacher.async_call(
                "POST", f"/api/v1/prompts/{known['version']}/promote"
            )
        except (TeacherRequestError, KeyError, TypeError) as err:
            _LOGGER.warning("Could not give the lab the built-in prompt: %s", err)
            return None
        _LOGGER.info("The lab now has the student's built-in prompt as %s", promoted["version"])
        result: dict[str, Any] = promoted
        return result

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
            if self.job.state in JOB_ENDED:
                # A round that ended has registered candidates (rejected ones too): offer them.
                self._hass.async_create_task(self.async_refresh_versions(), eager_start=True)
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
