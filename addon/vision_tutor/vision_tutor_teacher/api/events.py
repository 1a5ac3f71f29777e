"""``GET /api/v1/events``: the event log as Server-Sent Events, resumable by cursor.

The log itself is `vision_tutor_teacher.reviews.events`; this module writes it on the wire.
"""

from __future__ import annotations

import asyncio
import json
from typing import Final

from aiohttp import web

from vision_tutor_teacher.reviews.events import MAX_CURSOR, EventLog
from vision_tutor_teacher.storage.database import DatabaseClosed, StorageError

from .base import SERVICE, ApiError

RECONNECT_MS: Final = 2000
"""The ``retry:`` an EventSource waits before reconnecting."""
DATABASE_HEADER: Final = "X-Vision-Tutor-Database"
"""The stream's response header with the database's id."""
STORAGE_RETRY_S: Final = 1.0


def parse_cursor(value: str | None) -> int | None:
    """A cursor from a query parameter or Last-Event-ID; ValueError when malformed."""
    if value is None or value.strip() == "":
        return None
    cursor = int(value)
    if not 0 <= cursor <= MAX_CURSOR:
        raise ValueError("a cursor is between 0 and 2^63 - 1")
    return cursor


async def stream(
    request: web.Request, log: EventLog, cursor: int, heartbeat_s: float
) -> web.StreamResponse:
    """Send every event after `cursor`, then follow the log until the client or server stops.

    First the ``hello`` event (no ``id:``, so it moves no client's cursor): the database's id
    and the log's last sequence number. The id is also the ``X-Vision-Tutor-Database`` header.
    """
    database = await log.database_id()
    hello = json.dumps({"database_id": database, "last_seq": await log.last_seq()})
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            # Ask nginx-style proxies (and the Supervisor's ingress) not to buffer the stream.
            "X-Accel-Buffering": "no",
            DATABASE_HEADER: database,
        }
    )
    await response.prepare(request)
    try:
        await response.write(f"retry: {RECONNECT_MS}\nevent: hello\ndata: {hello}\n\n".encode())
        while not log.closed:
            generation = log.generation
            try:
                events = await log.after(cursor)
            except StorageError:
                # The log cannot be read now: keep the cursor and the connection, try again.
                await response.write(b": storage unavailable\n\n")
                await asyncio.sleep(STORAGE_RETRY_S)
                continue
            if events:
                await response.write(b"".join(event.encode() for event in events))
                cursor = events[-1].seq
                continue
            if not await log.wait(generation, heartbeat_s):
                await response.write(b": heartbeat\n\n")
    except ConnectionResetError:
        pass  # the client went away; it resumes from its cursor
    except DatabaseClosed:
        pass  # shutting down
    return response


async def events(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    try:
        # Last-Event-ID wins: an EventSource reconnects with the original URL plus this header.
        cursor = parse_cursor(request.headers.get("Last-Event-ID"))
        if cursor is None:
            cursor = parse_cursor(request.query.get("after"))
    except ValueError:
        raise ApiError(400, "the cursor must be an integer from 0 to 2^63 - 1") from None
    if cursor is None:
        cursor = await service.events.last_seq()
    return await stream(request, service.events, cursor, service.options.heartbeat_s)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/events", events)
