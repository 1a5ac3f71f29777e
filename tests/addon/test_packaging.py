"""The add-on folder as the Supervisor builds and reads it.

There is no Docker engine here, so the build is checked by what it depends on: ``config.yaml``
against the Supervisor's own schema, the Dockerfile's base image, labels and copied paths, the s6
service scripts, translations, icons and documentation.

The Supervisor rules below are transcribed from its source (``supervisor/addons/validate.py`` and
``supervisor/addons/options.py``, whose add-on configuration schema the developer documentation
at developers.home-assistant.io/docs/add-ons/configuration describes key by key). A config the
Supervisor rejects does not fail loudly: the store just skips the add-on.
"""

from __future__ import annotations

from importlib.metadata import version
import os
import re
import shlex
import tomllib
from typing import Any

from packaging.requirements import Requirement
from PIL import Image
import pytest
import voluptuous as vol
import yaml

from tests.addon.conftest import ADDON, ROOT
from vision_tutor_teacher import __version__
from vision_tutor_teacher.api.openapi import build_spec
from vision_tutor_teacher.options import Options, TeacherHostOption

# supervisor/addons/options.py
RE_SCHEMA_ELEMENT = re.compile(
    r"^(?:"
    r"|bool"
    r"|email"
    r"|url"
    r"|port"
    r"|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>-?\d+)?,(?P<i_max>-?\d+)?\))?"
    r"|float(?:\((?P<f_min>-?\d*\.?\d+)?,(?P<f_max>-?\d*\.?\d+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>.+)\)"
    r")\??$"
)
ARCH_ALL = ["armhf", "armv7", "aarch64", "amd64", "i386"]
STARTUP = ["initialize", "system", "services", "application", "once"]
ROLES = ["default", "homeassistant", "backup", "manager", "admin"]
NETWORK_PORT = vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))
SCHEMA_ELEMENT = vol.Schema(
    vol.Any(
        vol.Match(RE_SCHEMA_ELEMENT),
        [vol.Any(vol.Match(RE_SCHEMA_ELEMENT), {str: vol.Self})],
        {str: vol.Self},
    )
)
# supervisor/addons/validate.py: _SCHEMA_ADDON_CONFIG (the keys this add-on can use, with their
# types; extra=PREVENT_EXTRA instead of the Supervisor's REMOVE_EXTRA so a typo fails here).
SUPERVISOR_ADDON_SCHEMA = vol.Schema(
    {
        vol.Required("name"): str,
        vol.Required("version"): vol.All(str, vol.Match(r"^\d+\.\d+\.\d+")),
        vol.Required("slug"): vol.Match(r"^[-_.A-Za-z0-9]+$"),
        vol.Required("description"): str,
        vol.Required("arch"): [vol.In(ARCH_ALL)],
        vol.Optional("url"): vol.Url(),
        vol.Optional("startup"): vol.In(STARTUP),
        vol.Optional("boot"): vol.In(["auto", "manual", "manual_only"]),
        vol.Optional("init"): bool,
        vol.Optional("advanced"): bool,
        vol.Optional("stage"): vol.In(["stable", "experimental", "deprecated"]),
        vol.Optional("ports"): {vol.Match(r"^\d+(?:/(?:tcp|udp))?$"): vol.Maybe(NETWORK_PORT)},
        vol.Optional("ports_description"): {vol.Match(r"^\d+(?:/(?:tcp|udp))?$"): str},
        vol.Optional("watchdog"): vol.Match(
            r"^(?:https?|\[PROTO:\w+\]|tcp):\/\/\[HOST\]:(\[PORT:\d+\]|\d+).*$"
        ),
        vol.Optional("webui"): vol.Match(r"^(?:https?|\[PROTO:\w+\]):\/\/\[HOST\]:\[PORT:\d+\].*$"),
        vol.Optional("ingress"): bool,
        vol.Optional("ingress_port"): vol.Any(NETWORK_PORT, vol.Equal(0)),
        vol.Optional("ingress_entry"): str,
        vol.Optional("ingress_stream"): bool,
        vol.Optional("panel_icon"): str,
        vol.Optional("panel_title"): str,
        vol.Optional("panel_admin"): bool,
        vol.Optional("homeassistant"): str,
        vol.Optional("host_network"): bool,
        vol.Optional("map"): list,
        vol.Optional("environment"): {vol.Match(r"\w*"): str},
        vol.Optional("hassio_api"): bool,
        vol.Optional("hassio_role"): vol.In(ROLES),
        vol.Optional("homeassistant_api"): bool,
        vol.Optional("auth_api"): bool,
        vol.Optional("discovery"): [str],
        vol.Optional("backup_exclude"): [str],
        vol.Optional("backup"): vol.In(["hot", "cold"]),
        vol.Optional("options"): dict,
        vol.Optional("schema"): vol.Any(vol.Schema({str: SCHEMA_ELEMENT}), False),
        vol.Optional("image"): str,
        vol.Optional("timeout"): vol.All(vol.Coerce(int), vol.Range(min=10, max=300)),
        vol.Optional("tmpfs"): bool,
    },
    extra=vol.PREVENT_EXTRA,
)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ADDON / "config.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (ADDON / "Dockerfile").read_text()


# --- config.yaml ---------------------------------------------------------------------------------


def test_config_passes_the_supervisors_schema(config: dict[str, Any]) -> None:
    SUPERVISOR_ADDON_SCHEMA(config)


def test_config_says_what_this_addon_needs(config: dict[str, Any]) -> None:
    assert config["slug"] == "vision_tutor"
    assert config["version"] == __version__
    assert config["arch"] == ["aarch64", "amd64"]
    assert config["init"] is False  # s6-overlay v3 in the base image must be PID 1
    assert config["startup"] == "services"
    assert config["ingress"] is True
    assert config["ingress_port"] == 8765
    assert "8765/tcp" in config["ports"]
    assert config["discovery"] == ["vision_tutor"]
    assert config["homeassistant_api"] is True
    # Left out because they are the defaults (hot backups, started at boot), and the obsolete
    # watchdog: the Dockerfile's HEALTHCHECK replaces it (tests/test_repository.py has the rules).
    assert not {"backup", "boot", "watchdog"} & set(config)
    assert config["panel_icon"].startswith("mdi:")


def test_options_and_schema_match_the_services_options(config: dict[str, Any]) -> None:
    options, schema = config["options"], config["schema"]
    assert set(options) <= set(schema)
    assert set(schema) <= set(Options.model_fields)
    fields = Options.model_fields
    for name, default in options.items():
        assert fields[name].default == default, name
    # In the schema without a default: the Supervisor asks the user before starting.
    required = set(schema) - set(options)
    optional = {name for name in required if schema[name].endswith("?")}
    assert required - optional == {name for name in fields if fields[name].is_required()}
    for name, element in schema.items():
        if isinstance(element, list):  # a list of dicts: the teacher pool's hosts
            (item,) = element
            assert set(item) <= set(TeacherHostOption.model_fields), name
            assert not item["url"].endswith("?")
            for key, sub in item.items():
                match = RE_SCHEMA_ELEMENT.match(sub)
                assert match is not None, (name, key)
                for bound in (match.group("i_min"), match.group("i_max")):
                    if bound is not None:
                        host = {"url": "http://t2:1", key: int(bound)}
                        Options.model_validate({"teacher_url": "http://t:1", name: [host]})
            continue
        match = RE_SCHEMA_ELEMENT.match(element)
        assert match is not None, name
        bounds = [v for v in (match.group("i_min"), match.group("i_max")) if v is not None]
        for bound in bounds:  # every bound the Supervisor allows, the service accepts too
            Options.model_validate({"teacher_url": "http://t:1", name: int(bound)})
    log_levels = RE_SCHEMA_ELEMENT.match(schema["log_level"])
    assert log_levels is not None
    for level in log_levels.group("list").split("|"):
        Options.model_validate({"teacher_url": "http://t:1", "log_level": level})


def test_translations_name_and_describe_every_option_and_port(config: dict[str, Any]) -> None:
    translations = yaml.safe_load((ADDON / "translations" / "en.yaml").read_text())
    assert set(translations) == {"configuration", "network"}
    assert set(translations["configuration"]) == set(config["schema"])
    for name, text in translations["configuration"].items():
        assert text["name"], name
        assert len(text["description"]) > 20, name
    assert set(translations["network"]) == set(config["ports"])


# --- Dockerfile and s6 ---------------------------------------------------------------------------


def test_dockerfile_names_the_base_image_and_labels(dockerfile: str) -> None:
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    # A dated release of home-assistant/docker-base, not the moving tag.
    assert len(froms) == 1
    assert re.fullmatch(
        r"ghcr\.io/home-assistant/base-python:3\.14-alpine3\.\d+-\d{4}\.\d{2}\.\d+", froms[0]
    ), froms
    for label in ("io.hass.version", "io.hass.type", "io.hass.arch", "io.hass.name"):
        assert f"{label}=" in dockerfile
    assert 'io.hass.type="addon"' in dockerfile
    assert "pip3 install --no-cache-dir ." in dockerfile
    assert not (ADDON / "build.yaml").exists()


def test_every_path_the_dockerfile_copies_exists(dockerfile: str) -> None:
    copies = re.findall(r"^(?:COPY|ADD)\s+(.+)$", dockerfile, re.MULTILINE)
    assert copies
    for line in copies:
        *sources, _destination = shlex.split(line)
        for source in sources:
            assert not source.startswith("--"), "no COPY --from or flags expected"
            assert (ADDON / source).exists(), source


def test_the_s6_service_runs_the_entry_point_with_the_addon_paths() -> None:
    service = ADDON / "rootfs" / "etc" / "services.d" / "teacher"
    run, finish = service / "run", service / "finish"
    for script in (run, finish):
        assert os.access(script, os.X_OK), script
        assert script.read_text().startswith("#!/usr/bin/")
    text = run.read_text()
    assert "exec python3 -m vision_tutor_teacher" in text
    assert "--config /data/options.json" in text
    assert "--data /data" in text
    assert "with-contenv" in text.splitlines()[0]  # SUPERVISOR_TOKEN reaches the service
    # Exit statuses the entry point uses for problems a restart cannot fix stop the container.
    assert '"${exit_code}" -eq 2' in finish.read_text()
    assert '"${exit_code}" -eq 3' in finish.read_text()


def test_the_addon_package_metadata_agrees_with_the_repository(config: dict[str, Any]) -> None:
    project = tomllib.loads((ADDON / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__ == config["version"]
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        installed = version(requirement.name)
        assert requirement.specifier.contains(installed), (dependency, installed)
    pins = (ROOT / "requirements-dev.txt").read_text()
    assert "ollama==0.6.2" in project["dependencies"]
    assert "ollama==0.6.2" in pins


# --- Store presentation and documentation --------------------------------------------------------


def test_icon_and_logo_have_the_stores_sizes() -> None:
    with Image.open(ADDON / "icon.png") as icon:
        assert icon.format == "PNG"
        assert icon.size[0] == icon.size[1]
        assert icon.size[0] in (128, 256)
    with Image.open(ADDON / "logo.png") as logo:
        assert logo.format == "PNG"
        assert 200 <= logo.size[0] <= 300
        assert 80 <= logo.size[1] <= 120


def test_docs_cover_every_option_and_endpoint(config: dict[str, Any]) -> None:
    docs = (ADDON / "DOCS.md").read_text()
    for option in config["schema"]:
        assert f"`{option}`" in docs, option
    for path in build_spec()["paths"]:
        assert path in docs, path
    changelog = (ADDON / "CHANGELOG.md").read_text()
    assert f"## {__version__}" in changelog
