"""A small client of Home Assistant's own REST and websocket APIs, as its web UI uses them.

The demo sets Home Assistant up the way a person would in the browser: onboarding creates the
user, the integration is added through its config flow (and each camera through the camera
subentry flow), the dashboard and the automation are saved through the same calls the UI makes.
Nothing is written into `.storage` by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
import contextlib
import itertools
from typing import Any

import aiohttp


class HomeAssistantError(RuntimeError):
    """Home Assistant answered a call with an error."""


class HomeAssistant:
    """Calls to one Home Assistant instance, as one user."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.client_id = f"{self.url}/"
        self.token: str | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_ids = itertools.count(1)
        self._ws_lock = asyncio.Lock()

    # --- REST ---------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def request(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        async with self.session.request(
            method, f"{self.url}{path}", json=json, headers=self._headers(), **kwargs
        ) as response:
            body = await response.text()
            if response.status >= 400:
                raise HomeAssistantError(f"{method} {path} answered {response.status}: {body}")
            if response.content_type != "application/json":
                return body
            return await response.json() if body else None

    async def ready(self) -> bool:
        """Whether the web server answers (it does once Home Assistant has started)."""
        try:
            async with self.session.get(
                f"{self.url}/api/onboarding", timeout=aiohttp.ClientTimeout(total=2)
            ) as response:
                return response.status == 200
        except aiohttp.ClientError, TimeoutError:
            return False

    async def running(self) -> bool:
        """Whether Home Assistant has finished starting (every integration set up)."""
        config = await self.request("GET", "/api/config")
        return bool(config.get("state") == "RUNNING")

    async def onboard(self, *, name: str, username: str, password: str) -> None:
        """Create the owner and finish onboarding, as the onboarding pages do."""
        created = await self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": name,
                "username": username,
                "password": password,
                "language": "en",
            },
        )
        await self._token_from_code(created["auth_code"])
        await self.request("POST", "/api/onboarding/core_config", {})
        await self.request("POST", "/api/onboarding/analytics", {})
        await self.request(
            "POST",
            "/api/onboarding/integration",
            {"client_id": self.client_id, "redirect_uri": f"{self.url}/?auth_callback=1"},
        )

    async def _token_from_code(self, code: str) -> None:
        async with self.session.post(
            f"{self.url}/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
        ) as response:
            if response.status != 200:
                raise HomeAssistantError(f"login failed: {await response.text()}")
            self.token = (await response.json())["access_token"]

    async def flow(self, path: str, start: Mapping[str, Any], *steps: Mapping[str, Any]) -> Any:
        """Run a data-entry flow (config, options or subentry) step by step, as the UI does.

        Each step's data answers the form the previous call showed; a form that comes back
        with errors stops the flow with them.
        """
        result = await self.request("POST", path, dict(start))
        for data in steps:
            if result.get("type") != "form":
                raise HomeAssistantError(f"expected a form from {path}, got {result}")
            flow_id = result["flow_id"]
            result = await self.request("POST", f"{path}/{flow_id}", dict(data))
            if result.get("type") == "form" and result.get("errors"):
                raise HomeAssistantError(
                    f"step {result.get('step_id')} of {path} refused {dict(data)}: "
                    f"{result['errors']}"
                )
        return result

    async def states(self) -> dict[str, dict[str, Any]]:
        return {state["entity_id"]: state for state in await self.request("GET", "/api/states")}

    # --- websocket ----------------------------------------------------------------------------

    async def _socket(self) -> aiohttp.ClientWebSocketResponse:
        if self._ws is None or self._ws.closed:
            ws = await self.session.ws_connect(f"{self.url}/api/websocket", heartbeat=30)
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self.token})
            answer = await ws.receive_json()
            if answer.get("type") != "auth_ok":
                raise HomeAssistantError(f"websocket login failed: {answer}")
            self._ws = ws
        return self._ws

    async def command(self, message_type: str, **data: Any) -> Any:
        """One websocket command and its result (not for subscriptions)."""
        async with self._ws_lock:
            ws = await self._socket()
            message_id = next(self._ws_ids)
            await ws.send_json({"id": message_id, "type": message_type, **data})
            while True:
                answer = await ws.receive_json()
                if answer.get("id") == message_id and answer.get("type") == "result":
                    break
        if not answer.get("success"):
            raise HomeAssistantError(f"{message_type} failed: {answer.get('error')}")
        return answer.get("result")

    @contextlib.asynccontextmanager
    async def events(self, *event_types: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """Bus events of these types, on a connection of their own, as a queue."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        async with self.session.ws_connect(f"{self.url}/api/websocket", heartbeat=30) as ws:
            await ws.receive_json()
            await ws.send_json({"type": "auth", "access_token": self.token})
            if (await ws.receive_json()).get("type") != "auth_ok":
                raise HomeAssistantError("websocket login failed")
            for number, event_type in enumerate(event_types, start=1):
                await ws.send_json(
                    {"id": number, "type": "subscribe_events", "event_type": event_type}
                )

            async def pump() -> None:
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    data = message.json()
                    if data.get("type") == "event":
                        queue.put_nowait(data["event"])
                    elif data.get("type") == "result" and not data.get("success"):
                        raise HomeAssistantError(f"subscription failed: {data.get('error')}")

            task = asyncio.create_task(pump())
            try:
                yield queue
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, HomeAssistantError):
                    await task

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
