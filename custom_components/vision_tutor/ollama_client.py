"""Reach an Ollama host the way the rest of the integration does."""

from __future__ import annotations

import asyncio

import httpx
import ollama

from homeassistant.util.ssl import get_default_context

from .const import CONNECT_TIMEOUT


class CannotConnect(Exception):
    """The host did not answer, or not like an Ollama server."""


def create_client(url: str) -> ollama.AsyncClient:
    """Create a client; the SSL context comes from Home Assistant so no file is read in the loop."""
    return ollama.AsyncClient(host=url, verify=get_default_context())


async def async_list_models(client: ollama.AsyncClient) -> list[str]:
    """Names of the models the host has pulled."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            response = await client.list()
    # The client raises the builtin ConnectionError when nothing listens at the address.
    except (
        TimeoutError,
        ConnectionError,
        httpx.HTTPError,
        ollama.ResponseError,
        ValueError,
    ) as err:
        raise CannotConnect(str(err) or type(err).__name__) from err
    return [model.model for model in response.models if model.model]
