"""The dashboard card: served by the integration and registered as a dashboard resource.

Users get `custom:vision-tutor-card` without copying files or editing resources: the card's
JavaScript is served from the integration's folder, and added to the dashboards' resources
(storage mode) or loaded on every page (YAML mode, where resources are the user's to edit).
The URL carries a hash of the file, so browsers fetch the card again after an update and cache
it otherwise.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Final

from homeassistant.components.frontend import add_extra_js_url
from homeassistant.components.http import StaticPathConfig
from homeassistant.components.lovelace.const import LOVELACE_DATA, MODE_STORAGE
from homeassistant.components.lovelace.resources import ResourceStorageCollection
from homeassistant.core import HomeAssistant
from homeassistant.helpers.start import async_at_started

from .const import DOMAIN

_LOGGER = logging.getLogger(__name__)

CARD_FILE: Final = Path(__file__).parent / "frontend" / "vision-tutor-card.js"
CARD_URL: Final = f"/{DOMAIN}/{CARD_FILE.name}"
"""Where the card is served; a resource URL is this plus ?v=<hash of the file>."""


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


async def async_register_card(hass: HomeAssistant) -> None:
    """Serve the card and, once dashboards are loaded, make it a dashboard resource."""
    if getattr(hass, "http", None) is None:
        # No web server (a minimal or test setup): nobody could load the card.
        return
    version = await hass.async_add_executor_job(_file_hash, CARD_FILE)
    await hass.http.async_register_static_paths(
        [StaticPathConfig(CARD_URL, str(CARD_FILE), cache_headers=True)]
    )
    url = f"{CARD_URL}?v={version}"

    async def _add_resource(hass: HomeAssistant) -> None:
        await async_add_card_resource(hass, url)

    # Dashboards (lovelace) may be set up after this integration; at start they all are.
    async_at_started(hass, _add_resource)


async def async_add_card_resource(hass: HomeAssistant, url: str) -> None:
    """Add or update the card's dashboard resource; in YAML mode load it on every page."""
    lovelace = hass.data.get(LOVELACE_DATA)
    if lovelace is None:
        return
    resources = lovelace.resources
    if lovelace.resource_mode != MODE_STORAGE or not isinstance(
        resources, ResourceStorageCollection
    ):
        add_extra_js_url(hass, url)
        return
    await resources.async_get_info()  # loads the stored resources
    for item in resources.async_items():
        if str(item.get("url", "")).split("?", 1)[0] != CARD_URL:
            continue
        if item["url"] != url:
            _LOGGER.debug("Updating the card's dashboard resource to %s", url)
            await resources.async_update_item(item["id"], {"url": url})
        return
    _LOGGER.debug("Adding the card's dashboard resource %s", url)
    await resources.async_create_item({"res_type": "module", "url": url})
