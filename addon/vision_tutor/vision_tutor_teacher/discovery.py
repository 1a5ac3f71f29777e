"""Announce the service to Home Assistant through the Supervisor's discovery API.

When the service runs as an add-on the Supervisor gives it ``SUPERVISOR_TOKEN``; the service then
posts ``{"service": "vision_tutor", "config": {"host", "port", "token"}}`` to
``http://supervisor/discovery``, and Home Assistant offers the integration a
``async_step_hassio`` flow with those values. The Supervisor keeps one discovery message per
add-on and service, so announcing again on every start is safe (it replaces the old one, e.g.
after the token or hostname changed). A failure is logged and retried a few times, never fatal:
the API works without discovery, the user then enters host and token by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
import logging
import os
import socket
from typing import Any, Final

import aiohttp

_LOGGER = logging.getLogger(__name__)

SERVICE_NAME: Final = "vision_tutor"
DEFAULT_SUPERVISOR_URL: Final = "http://supervisor"
SUPERVISOR_URL_ENV: Final = "VISION_TUTOR_SUPERVISOR_URL"
"""Overrides the Supervisor's address; tests point it at a fake Supervisor on loopback."""
INGRESS_PROXY: Final = "172.30.32.2"
"""The Supervisor's address on the add-on network, from which ingress requests arrive."""
REQUEST_TIMEOUT_S: Final = 10.0
RETRY_DELAYS_S: Final = (1.0, 5.0, 30.0)


@dataclass(frozen=True, slots=True)
class SupervisorAccess:
    url: str
    token: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SupervisorAccess | None:
        """The Supervisor's address and token when running as an add-on, else None."""
        environ = os.environ if environ is None else environ
        token = environ.get("SUPERVISOR_TOKEN", "").strip()
        if not token:
            return None
        url = environ.get(SUPERVISOR_URL_ENV, "").strip() or DEFAULT_SUPERVISOR_URL
        return cls(url.rstrip("/"), token)


class DiscoveryError(Exception):
    pass


async def _call(
    session: aiohttp.ClientSession,
    access: SupervisorAccess,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One Supervisor API call; its ``data`` on ``{"result": "ok"}``, else DiscoveryError."""
    try:
        async with session.request(
            method,
            f"{access.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {access.token}"},
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        ) as response:
            payload = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        raise DiscoveryError(f"{method} {path}: {err or type(err).__name__}") from err
    if not isinstance(payload, dict) or payload.get("result") != "ok":
        message = payload.get("message") if isinstance(payload, dict) else None
        raise DiscoveryError(f"{method} {path} answered {response.status}: {message or payload}")
    data = payload.get("data")
    return data if isinstance(data, dict) else {}


async def own_hostname(session: aiohttp.ClientSession, access: SupervisorAccess) -> str:
    """The add-on's hostname on the Supervisor's network, where Home Assistant reaches it.

    Asked from the Supervisor (``/addons/self/info``); the container's own hostname is the same
    name, so it serves as the fallback.
    """
    try:
        info = await _call(session, access, "GET", "/addons/self/info")
    except DiscoveryError as err:
        _LOGGER.debug("Using the container hostname: %s", err)
        return socket.gethostname()
    hostname = info.get("hostname")
    return hostname if isinstance(hostname, str) and hostname else socket.gethostname()


async def announce(
    session: aiohttp.ClientSession, access: SupervisorAccess, port: int, token: str
) -> str:
    """Post the discovery message once; its uuid, or DiscoveryError."""
    host = await own_hostname(session, access)
    data = await _call(
        session,
        access,
        "POST",
        "/discovery",
        {"service": SERVICE_NAME, "config": {"host": host, "port": port, "token": token}},
    )
    _LOGGER.info("Announced to Home Assistant as %s:%d", host, port)
    return str(data.get("uuid", ""))


async def announce_until_done(
    access: SupervisorAccess,
    port: int,
    token: str,
    retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
) -> bool:
    """Announce, retrying a few times; True once announced, False after giving up."""
    async with aiohttp.ClientSession() as session:
        for attempt, delay in enumerate((*retry_delays_s, None), start=1):
            try:
                await announce(session, access, port, token)
            except DiscoveryError as err:
                if delay is None:
                    _LOGGER.warning(
                        "Could not announce to Home Assistant (%s); add the integration "
                        "by hand with this add-on's hostname, port %d and token",
                        err,
                        port,
                    )
                    return False
                _LOGGER.info("Discovery attempt %d failed, retrying: %s", attempt, err)
                await asyncio.sleep(delay)
            else:
                return True
    return False  # pragma: no cover - the loop always returns
