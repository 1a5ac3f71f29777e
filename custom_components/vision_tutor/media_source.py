"""Media → Vision Tutor: each camera's event history (hazards and teacher reviews) to browse.

    media-source://vision_tutor                              the cameras of the loaded entries
    media-source://vision_tutor/<entry>/<camera>             a camera's events, newest first
    media-source://vision_tutor/<entry>/<camera>/<event>     one event: its frame, with what the
                                                             student and the teacher saw in it

An event is a folder you can also open as an image: its children are the student's and the
teacher's answers about the frame (the same frame), titled with what each saw.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Final, override

from aiohttp import web

from homeassistant.auth.permissions.const import POLICY_READ
from homeassistant.components.http import KEY_HASS_USER, HomeAssistantView
from homeassistant.components.media_player import BrowseError, MediaClass, MediaType
from homeassistant.components.media_source import (
    BrowseMediaSource,
    MediaSource,
    MediaSourceItem,
    PlayMedia,
    Unresolvable,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import Unauthorized
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .history import IMAGE_URL, EventHistory, image_url
from .history_store import EVENT_ID, FOLDER_ID, Answer, EventRecord

if TYPE_CHECKING:
    from . import VisionTutorConfigEntry

MIME_TYPE: Final = "image/jpeg"
FOLDER_TYPE: Final = "directory"
"""The content type of a camera's folder (the media browser's URL carries it)."""
VIEW_REGISTERED: Final = f"{DOMAIN}_history_view"


async def async_get_media_source(hass: HomeAssistant) -> MediaSource:
    """The platform Home Assistant's media source asks for."""
    return VisionTutorMediaSource(hass)


def _loaded(hass: HomeAssistant) -> list[tuple[VisionTutorConfigEntry, EventHistory]]:
    """The loaded entries with their history."""
    loaded: list[tuple[VisionTutorConfigEntry, EventHistory]] = []
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        history = getattr(entry.runtime_data, "history", None)
        if isinstance(history, EventHistory):
            loaded.append((entry, history))
    return loaded


def _history(hass: HomeAssistant, entry_id: str) -> EventHistory | None:
    return next((history for entry, history in _loaded(hass) if entry.entry_id == entry_id), None)


def _percent(value: float | None) -> str:
    return "" if value is None else f" ({round(value * 100)} %)"


class Titles:
    """The media browser's words, in the user's language (translations' `common` section)."""

    def __init__(self, words: dict[str, str]) -> None:
        self._words = words

    @classmethod
    async def load(cls, hass: HomeAssistant) -> Titles:
        translations = await async_get_translations(hass, hass.config.language, "common", [DOMAIN])
        prefix = f"component.{DOMAIN}.common."
        return cls({key.removeprefix(prefix): value for key, value in translations.items()})

    def word(self, key: str, **placeholders: str) -> str:
        text = self._words.get(key, key)
        for name, value in placeholders.items():
            text = text.replace(f"{{{name}}}", value)
        return text

    def seen(self, record: EventRecord) -> str:
        """What the student saw: the hazard's flags, or that it saw none."""
        if record.student.error:
            return self.word("history_unreadable")
        if record.student.flags:
            return self.word("history_hazard", flags=", ".join(record.student.flags))
        if record.hazard:
            return self.word("history_hazard_words")
        return self.word("history_no_hazard")

    def verdict(self, record: EventRecord) -> str:
        """The teacher's word on it, or where the review is."""
        if record.verdict == "confirmed" and record.teacher is not None:
            return self.word("history_confirmed", flags=", ".join(record.teacher.flags))
        if record.verdict == "dismissed":
            return self.word("history_dismissed")
        if record.verdict == "no_hazard":
            return self.word("history_no_hazard_verdict")
        if record.teacher_status:
            return self.word("history_teacher_status", status=record.teacher_status)
        if record.escalation_id:
            return self.word("history_waiting")
        return ""

    def event(self, record: EventRecord) -> str:
        at = dt_util.as_local(record.at).strftime("%Y-%m-%d %H:%M:%S")
        parts = [at, self.seen(record), self.verdict(record)]
        return " · ".join(part for part in parts if part)

    def answer(self, who: str, answer: Answer) -> str:
        summary = answer.summary or answer.error or ""
        return self.word(f"history_{who}", summary=summary) + _percent(answer.confidence)


class VisionTutorMediaSource(MediaSource):
    """The event history of every loaded Vision Tutor entry."""

    name = "Vision Tutor"

    def __init__(self, hass: HomeAssistant) -> None:
        super().__init__(DOMAIN)
        self.hass = hass
        async_register_view(hass)

    def _parse(self, item: MediaSourceItem) -> tuple[str, str, str | None]:
        parts = (item.identifier or "").split("/")
        if len(parts) not in (2, 3) or not all(FOLDER_ID.fullmatch(p) for p in parts[:2]):
            raise Unresolvable(f"not a Vision Tutor history item: {item.identifier!r}")
        if len(parts) == 3 and not EVENT_ID.fullmatch(parts[2]):
            raise Unresolvable(f"not a Vision Tutor event: {item.identifier!r}")
        return parts[0], parts[1], parts[2] if len(parts) == 3 else None

    @override
    async def async_resolve_media(self, item: MediaSourceItem) -> PlayMedia:
        entry_id, camera_id, event = self._parse(item)
        history = _history(self.hass, entry_id)
        if event is None or history is None or history.get(camera_id, event) is None:
            raise Unresolvable(f"no such Vision Tutor event: {item.identifier}")
        return PlayMedia(image_url(entry_id, camera_id, event), MIME_TYPE)

    @override
    async def async_browse_media(self, item: MediaSourceItem) -> BrowseMediaSource:
        titles = await Titles.load(self.hass)
        if not item.identifier:
            return self._root(titles)
        try:
            entry_id, camera_id, event = self._parse(item)
        except Unresolvable as err:
            raise BrowseError(str(err)) from err
        entry = self.hass.config_entries.async_get_entry(entry_id)
        history = _history(self.hass, entry_id)
        if entry is None or history is None or camera_id not in history.records:
            raise BrowseError(f"no such Vision Tutor camera: {item.identifier}")
        if event is None:
            return self._camera(titles, entry, camera_id, history, with_children=True)
        record = history.get(camera_id, event)
        if record is None:
            raise BrowseError(f"no such Vision Tutor event: {item.identifier}")
        return self._event(titles, entry_id, camera_id, record, with_children=True)

    def _root(self, titles: Titles) -> BrowseMediaSource:
        cameras = [
            self._camera(titles, entry, camera_id, history)
            for entry, history in _loaded(self.hass)
            for camera_id in history.records
        ]
        return BrowseMediaSource(
            domain=DOMAIN,
            identifier=None,
            media_class=MediaClass.APP,
            media_content_type=MediaType.APP,
            title=self.name,
            can_play=False,
            can_expand=True,
            children_media_class=MediaClass.DIRECTORY,
            children=sorted(cameras, key=lambda child: child.title),
        )

    def _camera(
        self,
        titles: Titles,
        entry: VisionTutorConfigEntry,
        camera_id: str,
        history: EventHistory,
        *,
        with_children: bool = False,
    ) -> BrowseMediaSource:
        subentry = entry.subentries.get(camera_id)
        title = subentry.title if subentry is not None else camera_id
        if len(_loaded(self.hass)) > 1:
            title = titles.word("history_camera_of", camera=title, hub=entry.title)
        events = history.events(camera_id)
        node = BrowseMediaSource(
            domain=DOMAIN,
            identifier=f"{entry.entry_id}/{camera_id}",
            media_class=MediaClass.DIRECTORY,
            media_content_type=FOLDER_TYPE,
            title=title,
            can_play=False,
            can_expand=True,
            thumbnail=image_url(entry.entry_id, camera_id, events[0].id) if events else None,
            children_media_class=MediaClass.IMAGE,
        )
        if with_children:
            node.children = [
                self._event(titles, entry.entry_id, camera_id, record) for record in events
            ]
        return node

    def _event(
        self,
        titles: Titles,
        entry_id: str,
        camera_id: str,
        record: EventRecord,
        *,
        with_children: bool = False,
    ) -> BrowseMediaSource:
        identifier = f"{entry_id}/{camera_id}/{record.id}"
        thumbnail = image_url(entry_id, camera_id, record.id)
        node = BrowseMediaSource(
            domain=DOMAIN,
            identifier=identifier,
            media_class=MediaClass.IMAGE,
            media_content_type=MediaType.IMAGE,
            title=titles.event(record),
            can_play=True,
            can_expand=True,
            thumbnail=thumbnail,
            children_media_class=MediaClass.IMAGE,
        )
        if with_children:
            answers = [("student", record.student)]
            if record.teacher is not None:
                answers.append(("teacher", record.teacher))
            node.children = [
                BrowseMediaSource(
                    domain=DOMAIN,
                    identifier=identifier,
                    media_class=MediaClass.IMAGE,
                    media_content_type=MediaType.IMAGE,
                    title=titles.answer(who, answer),
                    can_play=True,
                    can_expand=False,
                    thumbnail=thumbnail,
                )
                for who, answer in answers
            ]
        return node


@callback
def async_register_view(hass: HomeAssistant) -> None:
    """Serve the history's frames (once, whichever comes first: setup or the media source)."""
    if hass.data.get(VIEW_REGISTERED) or getattr(hass, "http", None) is None:
        return
    hass.data[VIEW_REGISTERED] = True
    hass.http.register_view(HistoryImageView(hass))


class HistoryImageView(HomeAssistantView):
    """An event's frame, for signed-in users who may see the camera."""

    url = IMAGE_URL.replace("{event_id}.jpg", "{event_id}")
    name = "api:vision_tutor:history"

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass

    async def get(
        self, request: web.Request, entry_id: str, camera_id: str, event_id: str
    ) -> web.StreamResponse:
        event = event_id.removesuffix(".jpg")
        history = _history(self.hass, entry_id)
        valid = FOLDER_ID.fullmatch(camera_id) and EVENT_ID.fullmatch(event)
        record = history.get(camera_id, event) if history is not None and valid else None
        if history is None or record is None:
            return self.json_message("no such Vision Tutor event", HTTPStatus.NOT_FOUND)
        user = request[KEY_HASS_USER]
        if not user.permissions.check_entity(record.camera, POLICY_READ):
            raise Unauthorized(entity_id=record.camera)
        jpeg = await history.async_image(camera_id, event)
        if jpeg is None:
            return self.json_message("the event's frame is gone", HTTPStatus.NOT_FOUND)
        return web.Response(
            body=jpeg,
            content_type=MIME_TYPE,
            headers={"Cache-Control": "private, max-age=86400"},
        )
