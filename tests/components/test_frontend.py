"""The dashboard card: served by the integration, registered as a resource, its logic unit-tested."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
import shutil
import subprocess

import pytest
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL
from homeassistant.components.lovelace.const import LOVELACE_DATA
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component

from custom_components.vision_tutor.const import DOMAIN
from custom_components.vision_tutor.frontend import (
    CARD_FILE,
    CARD_URL,
    async_add_card_resource,
    async_register_card,
)

CARD_TESTS = Path(__file__).parent / "card"


def test_card_rendering_logic_under_node() -> None:
    """The card's pure functions (model, HTML, timeline), with Node's built-in test runner."""
    node = shutil.which("node")
    assert node is not None, (
        "Node.js is needed to unit-test the dashboard card (node --test); install Node 18 or "
        "newer (Debian: apt-get install nodejs)"
    )
    result = subprocess.run(
        [node, "--test", *sorted(str(p) for p in CARD_TESTS.glob("*.test.mjs"))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout


async def _resources(hass: HomeAssistant) -> list[dict[str, str]]:
    resources = hass.data[LOVELACE_DATA].resources
    await resources.async_get_info()
    return list(resources.async_items())


async def test_the_card_is_served_and_becomes_a_dashboard_resource(
    hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    assert await async_setup_component(hass, "lovelace", {})
    assert await async_setup_component(hass, DOMAIN, {})
    await hass.async_block_till_done()

    client = await hass_client()
    response = await client.get(CARD_URL)
    assert response.status == HTTPStatus.OK
    assert "javascript" in response.content_type
    assert await response.text() == CARD_FILE.read_text(encoding="utf-8")

    resources = await _resources(hass)
    assert len(resources) == 1
    assert resources[0]["type"] == "module"
    url = resources[0]["url"]
    # A hash of the file: browsers fetch the card again when it changes, and cache it otherwise.
    assert url.startswith(f"{CARD_URL}?v=")
    response = await client.get(url)
    assert response.status == HTTPStatus.OK


async def test_an_updated_card_updates_its_resource_instead_of_adding_one(
    hass: HomeAssistant,
) -> None:
    assert await async_setup_component(hass, "lovelace", {})
    resources = hass.data[LOVELACE_DATA].resources
    await resources.async_get_info()
    await resources.async_create_item({"res_type": "module", "url": "/local/other-card.js"})
    await resources.async_create_item({"res_type": "module", "url": f"{CARD_URL}?v=old"})

    await async_add_card_resource(hass, f"{CARD_URL}?v=new")
    await async_add_card_resource(hass, f"{CARD_URL}?v=new")

    urls = sorted(item["url"] for item in await _resources(hass))
    assert urls == ["/local/other-card.js", f"{CARD_URL}?v=new"]


async def test_yaml_dashboards_load_the_card_on_every_page(hass: HomeAssistant) -> None:
    """In YAML mode the resources are the user's file: the card is loaded without touching it."""
    # Lovelace first: the frontend would set it up in storage mode.
    assert await async_setup_component(hass, "lovelace", {"lovelace": {"resource_mode": "yaml"}})
    assert await async_setup_component(hass, "frontend", {})
    await async_add_card_resource(hass, f"{CARD_URL}?v=1")
    assert f"{CARD_URL}?v=1" in hass.data[DATA_EXTRA_MODULE_URL].urls
    assert await _resources(hass) == []


async def test_without_a_web_server_the_card_is_not_served(hass: HomeAssistant) -> None:
    """A minimal Home Assistant without `http`: nothing to serve the card with, and no error."""
    assert getattr(hass, "http", None) is None
    await async_register_card(hass)
    await hass.async_block_till_done()
    assert LOVELACE_DATA not in hass.data


async def test_without_dashboards_nothing_is_registered(hass: HomeAssistant) -> None:
    await async_add_card_resource(hass, f"{CARD_URL}?v=1")
    assert LOVELACE_DATA not in hass.data


@pytest.mark.parametrize("name", ["vision-tutor-card.js"])
def test_the_card_ships_inside_the_integration(name: str) -> None:
    """HACS installs the integration's folder: the card must live in it, not in www/."""
    assert CARD_FILE.name == name
    assert CARD_FILE.is_relative_to(Path(__file__).parents[2] / "custom_components" / DOMAIN)
