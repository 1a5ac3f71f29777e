"""The integration's side of the teacher service (the add-on): escalations out, verdicts in.

Submitting never blocks a camera's pipeline: escalations go through the outbox
(`outbox.EscalationOutbox`), which retries them until the service has them. Verdicts, review
status changes and queue statistics arrive on the service's Server-Sent Events stream, followed
from a cursor that is saved, so a reconnect (or a restart of Home Assistant) misses nothing.

The cursor is only meaningful for the database it was read from: it is saved with the
database's id, which the stream announces (its ``X-Vision-Tutor-Database`` header and a first
``hello`` event with the log's last sequence number). When the id differs from the saved one
(the add-on was reinstalled, or its database deleted) or the saved cursor is above the log's
end (a database restored from an older backup), the cursor goes back to 0 and the log is read
again; verdicts and "not reviewed" outcomes are applied once each, by review id, so a re-read
delivers nothing twice.
"""

from __future__ import annotations

import asyncio
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

APPLIED_KEPT: Final = 2000
"""Review outcomes remembered (and saved) so that a re-read log applies none of them twice."""
DATABASE_HEADER: Final = "X-Vision-Tutor-Database"
NOT_REVIEWED: Final = frozenset({"shed", "failed", "superseded"})
"""Review statuses that end a review without a verdict."""

type SubmitOutcome = Literal["queued", "duplicate", "refused", "retry"]


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What one POST of an escalation achieved."""

    outcome: SubmitOutcome
    """queued/duplicate: the service has it; refused: it never will; retry: try again later."""
    review_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    """Seconds the service asked to wait (a 429's Retry-After)."""
    service_down: bool = False
    """The service did not work (unreachable, 5xx, a body that is not a review); a 429 is a
    working service with a full queue."""


class TeacherRequestError(Exception):
    """A call to the teacher service failed; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One Server-Sent Event of the service's stream."""

    id: int | None
    """None for an event outside the log (the stream's ``hello``)."""
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
            if data and (event_id is not None or event_type == "hello"):
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
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.teacher_cursor"
        )
        self.cursor = 0
        self.database_id: str | None = None
        self._applied: dict[str, None] = {}
        self.connected = False
        self.submit_error: str | None = None
        """Why the latest submission failed; None once one succeeds."""
        self.queue_depth: int | None = None
        self.agreement_rate: float | None = None

    @property
    def available(self) -> bool:
        """Whether the teacher service works: its stream is up and submissions get through."""
        return self.connected and self.submit_error is None

    async def async_load_cursor(self) -> None:
        """Resume from the last event this entry saw, across restarts."""
        stored = await self._store.async_load() or {}
        self.cursor = int(stored.get("cursor", 0))
        database_id = stored.get("database_id")
        self.database_id = database_id if isinstance(database_id, str) else None
        self._applied = dict.fromkeys(str(key) for key in stored.get("applied", ()))

    def _save_cursor(self) -> None:
        self._store.async_delay_save(
            lambda: {
                "cursor": self.cursor,
                "database_id": self.database_id,
                "applied": list(self._applied),
            },
            CURSOR_SAVE_DELAY,
        )

    async def async_submit(self, body: Mapping[str, Any]) -> SubmitResult:
        """POST one escalation (its image already in the body); what the service made of it.

        Only a 202 or a 200 whose body is a review means the service has it; a 200 with any
        other body (a proxy's page, a captive portal) is an error to retry, not a duplicate.
        """
        try:
            async with self._session.post(
                f"{self.url}/api/v1/reviews",
                json=body,
                headers=self._headers,
                timeout=SUBMIT_TIMEOUT,
            ) as response:
                result = await self._submit_result(response, str(body.get("idempotency_key")))
        except (aiohttp.ClientError, TimeoutError) as err:
            result = SubmitResult(
                "retry", error=f"unreachable: {str(err) or type(err).__name__}", service_down=True
            )
        self._set_submit_error(result.error if result.service_down else None)
        return result

    async def _submit_result(self, response: aiohttp.ClientResponse, key: str) -> SubmitResult:
        status = response.status
        if status in (200, 202):
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = None
            if (
                isinstance(body, dict)
                and isinstance(body.get("id"), str)
                and isinstance(body.get("status"), str)
                and body.get("idempotency_key", key) == key
            ):
                return SubmitResult("queued" if status == 202 else "duplicate", body["id"])
            return SubmitResult(
                "retry", error=f"{status} without a review in the body", service_down=True
            )
        message = await _error_message(response)
        if status == 429 or status >= 500 or status == 408:
            retry_after = response.headers.get("Retry-After", "")
            return SubmitResult(
                "retry",
                error=f"{status}: {message}",
                retry_after=float(retry_after) if retry_after.isdigit() else None,
                service_down=status != 429,
            )
        _LOGGER.warning("The teacher service refused an escalation (%s): %s", status, message)
        return SubmitResult("refused", error=f"{status}: {message}")

    def _set_submit_error(self, error: str | None) -> None:
        if error != self.submit_error:
            if error is not None and self.submit_error is None:
                _LOGGER.info("Escalations do not reach the teacher service: %s", error)
            self.submit_error = error
            self._on_status()

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
                    message = await _error_message(response)
                    raise TeacherRequestError(f"{response.status}: {message}")
                return await response.json()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise TeacherRequestError(str(err) or type(err).__name__) from err

    async def async_follow_events(self) -> None:
        """Keep the event stream open for as long as the entry is loaded; reconnect on loss."""
        failures = 0
        while True:
            try:
                if await self._read_stream():
                    continue  # the cursor was reset: read the log again from its start, now
                failures = 0
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                if self.connected or failures == 0:
                    _LOGGER.info("Lost the teacher's event stream (%s); reconnecting", err)
                failures += 1
            self._set_connected(False)
            await asyncio.sleep(RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)])

    async def _read_stream(self) -> bool:
        """Follow the stream until it ends; True when the cursor was stale and was reset."""
        async with self._session.get(
            f"{self.url}/api/v1/events",
            params={"after": str(self.cursor)},
            headers={**self._headers, "Accept": "text/event-stream"},
            timeout=STREAM_TIMEOUT,
        ) as response:
            response.raise_for_status()
            if self._stale(response.headers.get(DATABASE_HEADER), None):
                return True
            # The queue sensors should be right at once, not at the next stats event.
            await self._fetch_stats()
            self._set_connected(True)
            async for event in parse_sse(response.content):
                if event.id is None:
                    if event.type == "hello" and self._stale(
                        event.data.get("database_id"), event.data.get("last_seq")
                    ):
                        return True
                    continue
                if event.id <= self.cursor:
                    continue  # at-least-once delivery: a replayed event is already applied
                self.cursor = event.id
                if event.type == "stats":
                    self._apply_stats(event.data)
                if self._first_time(event):
                    self._on_event(event)
                self._save_cursor()
        return False

    def _stale(self, database_id: object, last_seq: object) -> bool:
        """Whether the saved cursor is about another database, or beyond this one's log.

        Either way it goes back to 0 (and the caller reads the log again); otherwise the
        database's id is remembered with the cursor.
        """
        if not isinstance(database_id, str) or not database_id:
            return False  # an add-on that does not say: keep the cursor
        other = self.database_id is not None and database_id != self.database_id
        behind = isinstance(last_seq, int) and self.cursor > last_seq
        if database_id != self.database_id:
            self.database_id = database_id
            self._save_cursor()
        if not (other or behind) or self.cursor == 0:
            return False
        _LOGGER.warning(
            "The teacher service's event log %s (cursor %s, its last event %s); reading it "
            "again from the start",
            "belongs to another database" if other else "is behind this entry's cursor",
            self.cursor,
            last_seq if isinstance(last_seq, int) else "unknown",
        )
        self.cursor = 0
        self._save_cursor()
        return True

    def _first_time(self, event: StreamEvent) -> bool:
        """Whether a review's outcome (verdict, or end without one) is new to this entry."""
        review_id = event.data.get("review_id")
        if event.type == "verdict":
            key = f"verdict:{review_id}"
        elif event.type == "review" and event.data.get("status") in NOT_REVIEWED:
            key = f"{event.data.get('status')}:{review_id}"
        else:
            return True
        if key in self._applied:
            return False
        self._applied[key] = None
        while len(self._applied) > APPLIED_KEPT:
            del self._applied[next(iter(self._applied))]
        return True

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


async def _error_message(response: aiohttp.ClientResponse) -> str:
    """The service's error text from an error response (its JSON ``error``, or the body)."""
    try:
        message = (await response.json(content_type=None)).get("error", "")
    except ValueError, AttributeError, aiohttp.ClientError:
        message = ""
    if not message:
        try:
            message = (await response.text())[:200]
        except aiohttp.ClientError, UnicodeDecodeError:
            message = ""
    return str(message or response.reason or "")
