"""The integration's side of the teacher service (the add-on): escalations out, verdicts in.

Submitting never blocks a camera's pipeline: it runs as a background task, and when the
teacher is down the escalation is recorded as teacher_unavailable. Verdicts, review status
changes and queue statistics arrive on the service's Server-Sent Events stream, followed from
a cursor that is saved, so a reconnect (or a restart of Home Assistant) misses nothing.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
import json
import logging
from typing import Any, Final, Literal

import aiohttp

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.storage import Store

from .const import DOMAIN

_LOGGER = logging.getLogger(__name__)

SUBMIT_TIMEOUT: Final = aiohttp.ClientTimeout(total=15)
# The service sends a heartbeat every few seconds; silence this long means the link is dead.
STREAM_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, connect=10, sock_read=90)
RECONNECT_DELAYS: Final = (1, 2, 5, 10, 30)
CURSOR_SAVE_DELAY: Final = 5
STORAGE_VERSION: Final = 1

type SubmitOutcome = Literal["queued", "duplicate", "refused", "unavailable", "rejected"]


class TeacherRequestError(Exception):
    """A call to the teacher service failed; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One Server-Sent Event of the service's stream."""

    id: int
    type: str
    data: Mapping[str, Any]


async def parse_sse(lines: AsyncIterable[bytes]) -> AsyncIterator[StreamEvent]:
    """Events from a text/event-stream body; heartbeats and malformed events are skipped."""
    event_id: int | None = None
    event_type = "message"
    data: list[str] = []
    async for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data and event_id is not None:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    _LOGGER.warning("Skipping a teacher event that is not JSON: %s", data[:1])
                else:
                    if isinstance(payload, dict):
                        yield StreamEvent(event_id, event_type, payload)
            event_id, event_type, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id" and value.isdigit():
            event_id = int(value)
        elif field == "event":
            event_type = value
        elif field == "data":
            data.append(value)


class TeacherLink:
    """Submits escalations to the teacher service and follows its event stream."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        url: str,
        token: str,
        on_event: Callable[[StreamEvent], None],
        on_status: Callable[[], None],
    ) -> None:
        self.hass = hass
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._on_event = on_event
        self._on_status = on_status
        self._session = async_get_clientsession(hass)
        self._store: Store[dict[str, int]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.teacher_cursor"
        )
        self.cursor = 0
        self.connected = False
        self.queue_depth: int | None = None
        self.agreement_rate: float | None = None

    async def async_load_cursor(self) -> None:
        """Resume from the last event this entry saw, across restarts."""
        stored = await self._store.async_load()
        self.cursor = int(stored.get("cursor", 0)) if stored else 0

    async def async_submit(self, review: dict[str, Any], jpeg: bytes) -> SubmitOutcome:
        """POST one escalation; the outcome says whether the teacher has it."""
        body = {**review, "image": base64.b64encode(jpeg).decode("ascii")}
        try:
            async with self._session.post(
                f"{self.url}/api/v1/reviews",
                json=body,
                headers=self._headers,
                timeout=SUBMIT_TIMEOUT,
            ) as response:
                if response.status == 202:
                    return "queued"
                if response.status == 200:
                    return "duplicate"
                message = await response.text()
                if response.status == 429:
                    _LOGGER.info("The teacher's queue is full; %s not reviewed", review["camera"])
                    return "refused"
                _LOGGER.warning(
                    "The teacher service refused an escalation (%s): %s", response.status, message
                )
                return "unavailable" if response.status >= 500 else "rejected"
        except (aiohttp.ClientError, TimeoutError) as err:
            _LOGGER.debug("The teacher service is unreachable: %s", err)
            return "unavailable"

    async def async_call(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON call to the service's API (the prompt lab's endpoints)."""
        try:
            async with self._session.request(
                method,
                f"{self.url}{path}",
                json=body,
                headers=self._headers,
                timeout=SUBMIT_TIMEOUT,
            ) as response:
                if response.status >= 400:
                    try:
                        message = (await response.json()).get("error", "")
                    except aiohttp.ContentTypeError, ValueError, AttributeError:
                        message = await response.text()
                    raise TeacherRequestError(f"{response.status}: {message or response.reason}")
                return await response.json()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise TeacherRequestError(str(err) or type(err).__name__) from err

    async def async_follow_events(self) -> None:
        """Keep the event stream open for as long as the entry is loaded; reconnect on loss."""
        failures = 0
        while True:
            try:
                await self._read_stream()
                failures = 0
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                if self.connected or failures == 0:
                    _LOGGER.info("Lost the teacher's event stream (%s); reconnecting", err)
                failures += 1
            self._set_connected(False)
            await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])

    async def _read_stream(self) -> None:
        async with self._session.get(
            f"{self.url}/api/v1/events",
            params={"after": str(self.cursor)},
            headers={**self._headers, "Accept": "text/event-stream"},
            timeout=STREAM_TIMEOUT,
        ) as response:
            response.raise_for_status()
            # The queue sensors should be right at once, not at the next stats event.
            await self._fetch_stats()
            self._set_connected(True)
            async for event in parse_sse(response.content):
                if event.id <= self.cursor:
                    continue  # at-least-once delivery: a replayed event is already applied
                self.cursor = event.id
                if event.type == "stats":
                    self._apply_stats(event.data)
                self._on_event(event)
                self._store.async_delay_save(lambda: {"cursor": self.cursor}, CURSOR_SAVE_DELAY)

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self._on_status()

    async def _fetch_stats(self) -> None:
        async with self._session.get(
            f"{self.url}/api/v1/stats", headers=self._headers, timeout=SUBMIT_TIMEOUT
        ) as response:
            if response.status == 200:
                self._apply_stats(await response.json())

    def _apply_stats(self, stats: Mapping[str, Any]) -> None:
        queued = stats.get("queued")
        self.queue_depth = int(queued) if isinstance(queued, int) else self.queue_depth
        rate = stats.get("agreement_rate")
        self.agreement_rate = float(rate) if isinstance(rate, int | float) else None
