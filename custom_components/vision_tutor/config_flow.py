"""Config flow for Vision Tutor."""

from __future__ import annotations

from typing import Any, override

import probatio
from yarl import URL

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.helpers.selector import TextSelector, TextSelectorConfig, TextSelectorType

from .const import CONF_STUDENT_URL, DEFAULT_STUDENT_URL, DOMAIN
from .ollama_client import CannotConnect, async_list_models, create_client


def _normalise_url(raw: str) -> str | None:
    """An http(s) URL without trailing slash, or None when it is not one."""
    try:
        url = URL(raw.strip())
    except ValueError:
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return str(url).rstrip("/")


class VisionTutorConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up Vision Tutor from the UI."""

    VERSION = 1

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the student's Ollama host and check that it answers."""
        errors: dict[str, str] = {}
        if user_input is not None:
            url = _normalise_url(user_input[CONF_STUDENT_URL])
            if url is None:
                errors[CONF_STUDENT_URL] = "invalid_url"
            else:
                await self.async_set_unique_id(url)
                self._abort_if_unique_id_configured()
                try:
                    await async_list_models(create_client(url))
                except CannotConnect:
                    errors["base"] = "cannot_connect"
                else:
                    return self.async_create_entry(
                        title=URL(url).host or url, data={CONF_STUDENT_URL: url}
                    )
        schema = probatio.Schema(
            {
                probatio.Required(CONF_STUDENT_URL, default=DEFAULT_STUDENT_URL): TextSelector(
                    TextSelectorConfig(type=TextSelectorType.URL)
                )
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )
