"""Config flow for Vision Tutor: the hosts, the cameras (subentries) and the options.

A config entry is one student host (unique id: its normalised URL) with the model it runs, and
optionally more hosts with the same model (a student pool, added when reconfiguring), and
where escalations go: the Vision Tutor add-on (found by Supervisor discovery), a teacher service
entered by hand, or nowhere. Each monitored camera is a subentry. Setup and reconfigure share
their steps; which one is running decides only how the flow ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, override

import probatio

from homeassistant.components.binary_sensor import BinarySensorDeviceClass
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentry,
    ConfigSubentryFlow,
    OptionsFlowWithReload,
    SubentryFlowResult,
)
from homeassistant.core import callback
from homeassistant.data_entry_flow import AbortFlow, section
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo

from .const import (
    CONF_AUDIT_RATE,
    CONF_CAMERA_ENTITY,
    CONF_CHANGE_SENSITIVITY,
    CONF_CLEAN_TO_CLEAR,
    CONF_DAY_END,
    CONF_DAY_START,
    CONF_DISMISSAL_CLEARS,
    CONF_EXTRA_STUDENT_URLS,
    CONF_FRAME_WIDTH,
    CONF_HISTORY_DAYS,
    CONF_HISTORY_MAX_MB,
    CONF_MAX_CONCURRENT,
    CONF_MAX_MISS_RATE,
    CONF_MIN_CONFIDENCE,
    CONF_MOTION_ENTITY,
    CONF_OUTBOX_MAX_AGE,
    CONF_QUEUE_LIMIT,
    CONF_RELOOK_MINUTES,
    CONF_REVIEWS_PER_HOUR,
    CONF_SAFETY_KEYWORDS,
    CONF_SCAN_INTERVAL,
    CONF_SCENE_DESCRIPTION,
    CONF_STUDENT_MODEL,
    CONF_STUDENT_TIMEOUT,
    CONF_STUDENT_URL,
    CONF_TARGET,
    CONF_TEACHER_BUDGET,
    CONF_TEACHER_MODE,
    CONF_TEACHER_TOKEN,
    CONF_TEACHER_URL,
    CONF_TIME_BUCKETS,
    CONF_WINDOW_SIZE,
    CONF_WINDOW_TRIGGER,
    DEFAULT_SAFETY_KEYWORDS,
    DEFAULT_SCAN_INTERVAL,
    DEFAULT_STUDENT_MODEL,
    DEFAULT_STUDENT_URL,
    DOMAIN,
    SUBENTRY_CAMERA,
    TARGETS,
    TEACHER_MODE_ADDON,
    TEACHER_MODE_MANUAL,
    TEACHER_MODE_NONE,
    TIME_BUCKETS,
)
from .flow_helpers import (
    MAX_SCAN_INTERVAL,
    MAX_SCENE_DESCRIPTION,
    MIN_SCAN_INTERVAL,
    NO_TEACHER,
    OLLAMA_DEFAULT_PORT,
    OPTION_RANGES,
    OVERRIDES_SECTION,
    FlowError,
    ModelListing,
    Teacher,
    async_check_model,
    async_check_student_hosts,
    async_check_teacher,
    async_list_models,
    async_pull_model,
    camera_data,
    camera_form_values,
    default_options,
    entity_name,
    hub_title,
    manual_teacher,
    options_from_form,
    options_to_form,
    require_url,
    teacher_from_discovery,
    url_title,
)
from .ollama_client import version_text
from .overrides import CAMERA_OVERRIDES

if TYPE_CHECKING:
    from . import VisionTutorConfigEntry

STUDENT_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_STUDENT_URL, default=DEFAULT_STUDENT_URL): TextSelector(
            TextSelectorConfig(type=TextSelectorType.URL)
        )
    }
)

TEACHER_MANUAL_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_TEACHER_URL): TextSelector(
            TextSelectorConfig(type=TextSelectorType.URL)
        ),
        probatio.Required(CONF_TEACHER_TOKEN): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD)
        ),
    }
)


class RangeHintSelector(NumberSelector):
    """A number field whose min and max guide the form but are checked by the flow.

    The flow's own check (`flow_helpers.number_in_range`) refuses a value out of range with a
    translated error that names the range; the number selector's check would refuse it with
    untranslated validator text ("Value 1.5 is too large") before the flow could.
    """

    @override
    def __call__(self, data: Any) -> float:
        value: float = probatio.Coerce(float)(data)
        return value


class CameraPickerSelector(EntitySelector):
    """A camera picker that leaves the already monitored cameras out of its list.

    A monitored camera submitted anyway (through the API) reaches the flow, which says so on
    the field, instead of the selector refusing it in untranslated text.
    """

    @override
    def __call__(self, data: Any) -> str | list[str]:
        config = EntitySelectorConfig(**self.config)
        config.pop("exclude_entities", None)
        return EntitySelector(config)(data)


def _number(
    minimum: float, maximum: float, step: float, unit: str | None = None, *, slider: bool = False
) -> NumberSelector:
    config = NumberSelectorConfig(
        min=minimum,
        max=maximum,
        step=step,
        mode=NumberSelectorMode.SLIDER if slider else NumberSelectorMode.BOX,
    )
    if unit is not None:
        config["unit_of_measurement"] = unit
    return RangeHintSelector(config)


def _option_number(
    key: str, step: float, unit: str | None = None, *, slider: bool = False
) -> NumberSelector:
    """An option's field, with its range from `OPTION_RANGES`."""
    low, high = OPTION_RANGES[key]
    return _number(low, high, step, unit, slider=slider)


OVERRIDE_SELECTORS: Final[Mapping[str, Any]] = {
    # Boxes, not sliders: a slider cannot be left empty, and empty is "as the hub".
    CONF_MIN_CONFIDENCE: _option_number(CONF_MIN_CONFIDENCE, 0.01),
    CONF_SAFETY_KEYWORDS: SelectSelector(
        SelectSelectorConfig(
            options=list(DEFAULT_SAFETY_KEYWORDS), multiple=True, custom_value=True, sort=False
        )
    ),
    CONF_AUDIT_RATE: _option_number(CONF_AUDIT_RATE, 1),
    CONF_TARGET: SelectSelector(
        SelectSelectorConfig(
            options=list(TARGETS), mode=SelectSelectorMode.DROPDOWN, translation_key=CONF_TARGET
        )
    ),
    CONF_TEACHER_BUDGET: _option_number(CONF_TEACHER_BUDGET, 1, "%"),
    CONF_REVIEWS_PER_HOUR: _option_number(CONF_REVIEWS_PER_HOUR, 1, "reviews/h"),
    CONF_MAX_MISS_RATE: _option_number(CONF_MAX_MISS_RATE, 0.1),
}
"""The camera form's field for each overridable option (`overrides.CAMERA_OVERRIDES`)."""


def camera_schema(exclude: list[str]) -> probatio.Schema:
    """The camera form; `exclude` are the cameras the picker leaves out (monitored already)."""
    picker = EntitySelectorConfig(domain="camera")
    if exclude:
        picker["exclude_entities"] = exclude
    return probatio.Schema(
        {
            probatio.Required(CONF_CAMERA_ENTITY): CameraPickerSelector(picker),
            probatio.Required(CONF_SCAN_INTERVAL, default=DEFAULT_SCAN_INTERVAL): _number(
                0, MAX_SCAN_INTERVAL, 1, "s"
            ),
            probatio.Optional(CONF_MOTION_ENTITY): EntitySelector(
                EntitySelectorConfig(
                    domain="binary_sensor",
                    device_class=[
                        BinarySensorDeviceClass.MOTION,
                        BinarySensorDeviceClass.OCCUPANCY,
                        BinarySensorDeviceClass.PRESENCE,
                    ],
                )
            ),
            probatio.Optional(CONF_SCENE_DESCRIPTION): TextSelector(
                TextSelectorConfig(multiline=True)
            ),
            # Optional: a call through the API may leave the section out (nothing overridden).
            probatio.Optional(OVERRIDES_SECTION): section(
                probatio.Schema(
                    {probatio.Optional(key): OVERRIDE_SELECTORS[key] for key in CAMERA_OVERRIDES}
                ),
                {"collapsed": True},
            ),
        }
    )


OPTIONS_SCHEMA = probatio.Schema(
    {
        probatio.Required("routing"): section(
            probatio.Schema(
                {
                    probatio.Required(CONF_MIN_CONFIDENCE): _option_number(
                        CONF_MIN_CONFIDENCE, 0.01, slider=True
                    ),
                    probatio.Required(CONF_SAFETY_KEYWORDS): SelectSelector(
                        SelectSelectorConfig(
                            options=list(DEFAULT_SAFETY_KEYWORDS),
                            multiple=True,
                            custom_value=True,
                            sort=False,
                        )
                    ),
                    probatio.Required(CONF_AUDIT_RATE): _option_number(CONF_AUDIT_RATE, 1),
                    probatio.Required(CONF_QUEUE_LIMIT): _option_number(CONF_QUEUE_LIMIT, 1),
                    probatio.Required(CONF_OUTBOX_MAX_AGE): _option_number(
                        CONF_OUTBOX_MAX_AGE, 1, "min"
                    ),
                }
            ),
            {"collapsed": False},
        ),
        probatio.Required("calibration"): section(
            probatio.Schema(
                {
                    probatio.Required(CONF_TARGET): SelectSelector(
                        SelectSelectorConfig(
                            options=list(TARGETS),
                            mode=SelectSelectorMode.LIST,
                            translation_key=CONF_TARGET,
                        )
                    ),
                    probatio.Required(CONF_TEACHER_BUDGET): _option_number(
                        CONF_TEACHER_BUDGET, 1, "%"
                    ),
                    probatio.Required(CONF_REVIEWS_PER_HOUR): _option_number(
                        CONF_REVIEWS_PER_HOUR, 1, "reviews/h"
                    ),
                    probatio.Required(CONF_MAX_MISS_RATE): _option_number(CONF_MAX_MISS_RATE, 0.1),
                    probatio.Required(CONF_TIME_BUCKETS): SelectSelector(
                        SelectSelectorConfig(
                            options=list(TIME_BUCKETS),
                            mode=SelectSelectorMode.DROPDOWN,
                            translation_key=CONF_TIME_BUCKETS,
                        )
                    ),
                    probatio.Required(CONF_DAY_START): _option_number(CONF_DAY_START, 1, "h"),
                    probatio.Required(CONF_DAY_END): _option_number(CONF_DAY_END, 1, "h"),
                }
            ),
            {"collapsed": True},
        ),
        probatio.Required("safety_sensor"): section(
            probatio.Schema(
                {
                    probatio.Required(CONF_WINDOW_SIZE): _option_number(CONF_WINDOW_SIZE, 1),
                    probatio.Required(CONF_WINDOW_TRIGGER): _option_number(CONF_WINDOW_TRIGGER, 1),
                    probatio.Required(CONF_CLEAN_TO_CLEAR): _option_number(CONF_CLEAN_TO_CLEAR, 1),
                    probatio.Required(CONF_DISMISSAL_CLEARS): BooleanSelector(),
                }
            ),
            {"collapsed": False},
        ),
        probatio.Required("performance"): section(
            probatio.Schema(
                {
                    probatio.Required(CONF_CHANGE_SENSITIVITY): _option_number(
                        CONF_CHANGE_SENSITIVITY, 0.05, slider=True
                    ),
                    probatio.Required(CONF_STUDENT_TIMEOUT): _option_number(
                        CONF_STUDENT_TIMEOUT, 0.5, "s"
                    ),
                    probatio.Required(CONF_MAX_CONCURRENT): _option_number(CONF_MAX_CONCURRENT, 1),
                    probatio.Required(CONF_FRAME_WIDTH): _option_number(CONF_FRAME_WIDTH, 1, "px"),
                    probatio.Required(CONF_RELOOK_MINUTES): _option_number(
                        CONF_RELOOK_MINUTES, 1, "min"
                    ),
                }
            ),
            {"collapsed": True},
        ),
        probatio.Required("history"): section(
            probatio.Schema(
                {
                    probatio.Required(CONF_HISTORY_DAYS): _option_number(CONF_HISTORY_DAYS, 1, "d"),
                    probatio.Required(CONF_HISTORY_MAX_MB): _option_number(
                        CONF_HISTORY_MAX_MB, 10, "MB"
                    ),
                }
            ),
            {"collapsed": True},
        ),
    }
)


def _form_error(errors: dict[str, str], placeholders: dict[str, str], err: FlowError) -> None:
    """Put a failed check on the form."""
    errors[err.field] = err.reason
    placeholders.update(err.placeholders)


class VisionTutorConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up a student host, its model and its teacher; or link the discovered add-on."""

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Nothing chosen yet."""
        self._student_url: str | None = None
        self._listing = ModelListing([], frozenset(), 0, None)
        self._model: str | None = None
        self._pull_task: asyncio.Task[None] | None = None
        self._model_error: FlowError | None = None
        """Why the chosen model cannot be used; shown when the model step is shown again."""
        self._addon: Teacher | None = None
        """The add-on teacher found by discovery."""
        self._addon_name = ""
        self._extra_hosts: list[str] | None = None
        """More student hosts with the same model (reconfigure); None: keep the entry's."""

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: VisionTutorConfigEntry) -> VisionTutorOptionsFlow:
        """The routing, safety sensor and performance options."""
        return VisionTutorOptionsFlow()

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: VisionTutorConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """One subentry per monitored camera."""
        return {SUBENTRY_CAMERA: CameraSubentryFlow}

    # --- Student host: setup and reconfigure share these steps ----------------------------------

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the student's Ollama URL."""
        return await self._async_step_student("user", user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the student URL, its model or the teacher of an existing entry."""
        return await self._async_step_student("reconfigure", user_input)

    async def _async_step_student(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """Check the URL answers like Ollama and has a vision model; then choose the model."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            try:
                url = require_url(
                    user_input[CONF_STUDENT_URL],
                    field=CONF_STUDENT_URL,
                    default_port=OLLAMA_DEFAULT_PORT,
                )
                await self._async_claim_student_url(url)
                self._listing = await async_list_models(url)
            except FlowError as err:
                _form_error(errors, placeholders, err)
            else:
                self._student_url = url
                return await self.async_step_model()
        elif self.source == SOURCE_RECONFIGURE:
            user_input = {CONF_STUDENT_URL: self._get_reconfigure_entry().data[CONF_STUDENT_URL]}
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(STUDENT_SCHEMA, user_input),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def _async_claim_student_url(self, url: str) -> None:
        """Abort when another entry already has this student host (also as a pool's host)."""
        editing = self._get_reconfigure_entry() if self.source == SOURCE_RECONFIGURE else None
        if any(
            url in (other.data.get(CONF_EXTRA_STUDENT_URLS) or ())
            for other in self._async_current_entries(include_ignore=False)
            if editing is None or other.entry_id != editing.entry_id
        ):
            raise AbortFlow("already_configured")
        if self.source != SOURCE_RECONFIGURE:
            await self.async_set_unique_id(url)
            self._abort_if_unique_id_configured()
            return
        # Reconfigure may move the entry to another host (a new address for the same Ollama),
        # so its unique id follows the URL; it must not take over another entry's host.
        other = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, url)
        if other is not None and other.entry_id != self._get_reconfigure_entry().entry_id:
            raise AbortFlow("already_configured")

    async def async_step_model(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose the student among the host's vision models, or one to download."""
        listing = self._listing
        errors: dict[str, str] = {}
        placeholders = {
            "url": str(self._student_url),
            "version": version_text(listing.version),
            "skipped": str(listing.skipped),
        }
        # Back from the download step, the form is shown again (that call brings no choice).
        if user_input and CONF_STUDENT_MODEL in user_input:
            model = str(user_input[CONF_STUDENT_MODEL]).strip()
            if model in listing.blind:
                self._model_error = FlowError("model_not_vision", placeholders={"model": model})
            elif model not in listing.vision:
                # Not on the server: Ollama downloads it, then its capabilities are checked.
                self._model = model
                return await self.async_step_pull()
            else:
                self._model = model
                return await self._async_after_model()
        if (err := self._model_error) is not None:
            self._model_error = None
            _form_error(errors, placeholders, err)
        elif listing.skipped:
            errors["base"] = "models_skipped"
        return self.async_show_form(
            step_id="model",
            data_schema=self._model_schema(),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _model_schema(self) -> probatio.Schema:
        """The vision models on the server, then the default student to download if absent."""
        vision = self._listing.vision
        current = (
            self._get_reconfigure_entry().data.get(CONF_STUDENT_MODEL)
            if self.source == SOURCE_RECONFIGURE
            else None
        )
        preferred = next(
            (model for model in (current, DEFAULT_STUDENT_MODEL) if model in vision),
            vision[0] if vision else DEFAULT_STUDENT_MODEL,
        )
        options = [SelectOptionDict(value=model, label=model) for model in vision]
        if DEFAULT_STUDENT_MODEL not in vision:
            options.append(
                SelectOptionDict(
                    value=DEFAULT_STUDENT_MODEL, label=f"{DEFAULT_STUDENT_MODEL} (download)"
                )
            )
        return probatio.Schema(
            {
                probatio.Required(CONF_STUDENT_MODEL, default=preferred): SelectSelector(
                    SelectSelectorConfig(
                        options=options, mode=SelectSelectorMode.DROPDOWN, custom_value=True
                    )
                )
            }
        )

    async def async_step_pull(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ollama downloads the chosen model; the form shows its progress."""
        assert self._student_url is not None
        assert self._model is not None
        url, model = self._student_url, self._model
        if self._pull_task is None:
            self._pull_task = self.hass.async_create_task(
                async_pull_model(url, model, self.async_update_progress),
                f"{DOMAIN} pull {model}",
            )
        if not self._pull_task.done():
            return self.async_show_progress(
                step_id="pull",
                progress_action="pull",
                progress_task=self._pull_task,
                description_placeholders={"model": model, "url": url},
            )
        task, self._pull_task = self._pull_task, None
        try:
            task.result()
            await async_check_model(url, model)
        except FlowError as err:
            self._model_error = err
            return self.async_show_progress_done(next_step_id="model")
        self._listing = ModelListing(
            sorted({*self._listing.vision, model}),
            self._listing.blind,
            self._listing.skipped,
            self._listing.version,
        )
        return self.async_show_progress_done(next_step_id="pulled")

    async def async_step_pulled(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The downloaded model can see: go on as if it had been there."""
        return await self._async_after_model()

    async def _async_after_model(self) -> ConfigFlowResult:
        if self._addon is not None:
            # Discovery: the user already chose the add-on as the teacher.
            return self._async_finish(self._addon)
        if self.source == SOURCE_RECONFIGURE:
            # More hosts are for a setup that works; the first setup stays one host.
            return await self.async_step_student_hosts()
        return await self.async_step_teacher()

    async def async_step_student_hosts(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Add another student host (or remove one): Ollama servers with the same model."""
        assert self._student_url is not None
        assert self._model is not None
        errors: dict[str, str] = {}
        placeholders = {"first": self._student_url, "model": self._model}
        entry = self._get_reconfigure_entry()
        if user_input is not None:
            taken = {
                url: other.title
                for other in self._async_current_entries(include_ignore=False)
                if other.entry_id != entry.entry_id
                for url in (
                    other.data.get(CONF_STUDENT_URL),
                    *(other.data.get(CONF_EXTRA_STUDENT_URLS) or ()),
                )
                if url
            }
            try:
                self._extra_hosts = await async_check_student_hosts(
                    user_input.get(CONF_EXTRA_STUDENT_URLS),
                    first=self._student_url,
                    model=self._model,
                    taken=taken,
                )
            except FlowError as err:
                _form_error(errors, placeholders, err)
            else:
                return await self.async_step_teacher()
        else:
            user_input = {
                CONF_EXTRA_STUDENT_URLS: [
                    url
                    for url in entry.data.get(CONF_EXTRA_STUDENT_URLS) or ()
                    if url != self._student_url
                ]
            }
        listed = [str(url) for url in user_input.get(CONF_EXTRA_STUDENT_URLS) or ()]
        schema = probatio.Schema(
            {
                probatio.Optional(CONF_EXTRA_STUDENT_URLS): SelectSelector(
                    SelectSelectorConfig(
                        options=listed, multiple=True, custom_value=True, sort=False
                    )
                )
            }
        )
        return self.async_show_form(
            step_id="student_hosts",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_teacher(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose where escalations go: nowhere, a teacher service, or (kept) the add-on."""
        current = NO_TEACHER
        if self.source == SOURCE_RECONFIGURE:
            current = Teacher.from_data(self._get_reconfigure_entry().data)
        if user_input is not None:
            mode = user_input[CONF_TEACHER_MODE]
            if mode == TEACHER_MODE_MANUAL:
                return await self.async_step_teacher_manual()
            return self._async_finish(current if mode == TEACHER_MODE_ADDON else NO_TEACHER)
        modes = [TEACHER_MODE_NONE, TEACHER_MODE_MANUAL]
        if current.mode == TEACHER_MODE_ADDON:
            # The add-on is offered only once discovery has linked it: its address and token
            # come from the Supervisor, not from the user.
            modes.insert(0, TEACHER_MODE_ADDON)
        schema = probatio.Schema(
            {
                probatio.Required(CONF_TEACHER_MODE, default=current.mode): SelectSelector(
                    SelectSelectorConfig(
                        options=modes,
                        mode=SelectSelectorMode.LIST,
                        translation_key=CONF_TEACHER_MODE,
                    )
                )
            }
        )
        return self.async_show_form(step_id="teacher", data_schema=schema)

    async def async_step_teacher_manual(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Enter the teacher service's URL and token, checked against its health endpoint."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            try:
                teacher = manual_teacher(
                    user_input[CONF_TEACHER_URL], user_input[CONF_TEACHER_TOKEN]
                )
                await async_check_teacher(async_get_clientsession(self.hass), teacher)
            except FlowError as err:
                _form_error(errors, placeholders, err)
            else:
                return self._async_finish(teacher)
        elif self.source == SOURCE_RECONFIGURE:
            current = Teacher.from_data(self._get_reconfigure_entry().data)
            if current.mode == TEACHER_MODE_MANUAL:
                user_input = {CONF_TEACHER_URL: current.url, CONF_TEACHER_TOKEN: current.token}
        return self.async_show_form(
            step_id="teacher_manual",
            data_schema=self.add_suggested_values_to_schema(TEACHER_MANUAL_SCHEMA, user_input),
            errors=errors,
            description_placeholders=placeholders,
        )

    @callback
    def _async_finish(self, teacher: Teacher) -> ConfigFlowResult:
        """Create the entry, or update the one being reconfigured."""
        assert self._student_url is not None
        data = {
            CONF_STUDENT_URL: self._student_url,
            CONF_STUDENT_MODEL: self._model,
            **teacher.as_data(),
        }
        others = [
            entry.title
            for entry in self._async_current_entries(include_ignore=False)
            if self.source != SOURCE_RECONFIGURE
            or entry.entry_id != self._get_reconfigure_entry().entry_id
        ]
        if self._extra_hosts or (
            self._extra_hosts is not None
            and CONF_EXTRA_STUDENT_URLS in self._get_reconfigure_entry().data
        ):
            # A single host keeps the data it always had; a pool's list may become empty.
            data[CONF_EXTRA_STUDENT_URLS] = self._extra_hosts
        if self.source != SOURCE_RECONFIGURE:
            return self.async_create_entry(
                title=hub_title(others), data=data, options=default_options()
            )
        entry = self._get_reconfigure_entry()
        # Keep a title the user chose. An entry still titled with its host's address (as they
        # were before hubs had names) gets a hub name; its entity ids stay as they are.
        title = entry.title
        if title == url_title(entry.data[CONF_STUDENT_URL]):
            title = hub_title(others)
        changes: dict[str, Any] = {
            "unique_id": self._student_url,
            "title": title,
            "data_updates": data,
        }
        if entry.update_listeners:
            # The entry reloads itself from its update listener (a second reload from here is
            # what Home Assistant warns about); an entry that failed to set up has none.
            return self.async_update_and_abort(entry, **changes)
        return self.async_update_reload_and_abort(entry, **changes)

    # --- Supervisor discovery of the add-on -----------------------------------------------------

    @override
    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The Vision Tutor add-on announced itself (host, port and API token)."""
        addon = teacher_from_discovery(discovery_info.config)
        if addon is None:
            return self.async_abort(reason="invalid_discovery_info")
        # Entries already using the add-on follow it to its new address or token.
        linked = [
            entry
            for entry in self._async_current_entries(include_ignore=False)
            if entry.data.get(CONF_TEACHER_MODE) == TEACHER_MODE_ADDON
        ]
        for entry in linked:
            self._async_update_and_reload(entry, addon)
        if linked:
            return self.async_abort(reason="already_configured")
        # The add-on's slug identifies this discovery, so "ignore" and duplicates work.
        await self.async_set_unique_id(discovery_info.slug)
        self._abort_if_unique_id_configured()
        self._addon = addon
        self._addon_name = discovery_info.name
        self.context["title_placeholders"] = {"name": discovery_info.name}
        if self._async_current_entries(include_ignore=False):
            return await self.async_step_hassio_link()
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm the add-on as the teacher, then set up the student host."""
        return await self._async_step_addon("hassio_confirm", user_input)

    async def async_step_hassio_link(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Confirm the add-on as the teacher of the student hosts already set up."""
        return await self._async_step_addon("hassio_link", user_input)

    async def _async_step_addon(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """Check the add-on answers with its token when the user confirms."""
        assert self._addon is not None
        errors: dict[str, str] = {}
        entries = self._async_current_entries(include_ignore=False)
        if user_input is not None:
            try:
                await async_check_teacher(async_get_clientsession(self.hass), self._addon)
            except FlowError as err:
                errors["base"] = err.reason
            else:
                if step_id == "hassio_confirm":
                    return await self.async_step_user()
                for entry in entries:
                    self._async_update_and_reload(entry, self._addon)
                return self.async_abort(reason="addon_linked")
        if step_id == "hassio_link":
            self._set_confirm_only()
        return self.async_show_form(
            step_id=step_id,
            errors=errors,
            description_placeholders={
                "addon": self._addon_name,
                "entries": ", ".join(entry.title for entry in entries),
            },
        )

    @callback
    def _async_update_and_reload(self, entry: VisionTutorConfigEntry, teacher: Teacher) -> None:
        """Point an entry at this teacher; reload it when that changed anything.

        An entry with an update listener reloads itself when its data changes.
        """
        if (
            self.hass.config_entries.async_update_entry(
                entry, data={**entry.data, **teacher.as_data()}
            )
            and not entry.update_listeners
        ):
            self.hass.config_entries.async_schedule_reload(entry.entry_id)


class CameraSubentryFlow(ConfigSubentryFlow):
    """Add or edit one monitored camera."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Add a camera."""
        return await self._async_step_camera("user", user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Edit a camera."""
        return await self._async_step_camera("reconfigure", user_input)

    async def _async_step_camera(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        """The camera, what triggers an analysis, and words about the scene for the prompt."""
        entry = self._get_entry()
        editing = self._get_reconfigure_subentry() if self.source == SOURCE_RECONFIGURE else None
        errors: dict[str, str] = {}
        placeholders = {
            "min": str(MIN_SCAN_INTERVAL),
            "max": str(MAX_SCENE_DESCRIPTION),
        }
        others = _monitored_by_others(entry, editing)
        if user_input is not None:
            camera = user_input[CONF_CAMERA_ENTITY]
            try:
                if camera in others:
                    raise FlowError("camera_already_monitored", CONF_CAMERA_ENTITY)
                data = camera_data(self.hass, user_input)
            except FlowError as err:
                _form_error(errors, placeholders, err)
            else:
                title = entity_name(self.hass, camera)
                if editing is None:
                    return self.async_create_entry(title=title, data=data, unique_id=camera)
                return self._async_update_and_abort(
                    entry, editing, title=title, data=data, unique_id=camera
                )
        elif editing is not None:
            user_input = camera_form_values(editing.data)
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                camera_schema(sorted(others)), user_input
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    @callback
    def _async_update_and_abort(
        self, entry: VisionTutorConfigEntry, subentry: ConfigSubentry, **changes: Any
    ) -> SubentryFlowResult:
        """Save the edited camera and make the running entry use it.

        An entry that reloads itself from an update listener picks the change up on its own (and
        Home Assistant refuses a second reload from here); otherwise the flow reloads it.
        """
        if entry.update_listeners:
            return self.async_update_and_abort(entry, subentry, **changes)
        return self.async_update_reload_and_abort(entry, subentry, **changes)


def _monitored_by_others(entry: VisionTutorConfigEntry, editing: ConfigSubentry | None) -> set[str]:
    """The cameras the entry's other camera subentries monitor (not the one being edited)."""
    return {
        str(subentry.data.get(CONF_CAMERA_ENTITY))
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_CAMERA
        and (editing is None or subentry.subentry_id != editing.subentry_id)
    }


class VisionTutorOptionsFlow(OptionsFlowWithReload):
    """Routing thresholds, the safety sensor's window and the resource limits."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form in three sections; a bad combination keeps everything the user entered."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            try:
                options = options_from_form(user_input)
            except FlowError as err:
                _form_error(errors, placeholders, err)
            else:
                # An entry that reloads itself from an update listener must not be reloaded
                # here as well (Home Assistant refuses that combination).
                self.automatic_reload = not self.config_entry.update_listeners
                return self.async_create_entry(data=options)
        suggested: Mapping[str, Any] = user_input or options_to_form(self.config_entry.options)
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(OPTIONS_SCHEMA, suggested),
            errors=errors,
            description_placeholders=placeholders,
        )
