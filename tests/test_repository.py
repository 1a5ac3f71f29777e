"""The repository's packaging files, checked the way HACS, hassfest and the Supervisor read them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
import importlib.util
import json
from pathlib import Path
import re
import subprocess
from urllib.parse import urlparse

from awesomeversion import AwesomeVersion, AwesomeVersionStrategy
import pytest
import voluptuous as vol
import yaml

from homeassistant.const import Platform
from homeassistant.helpers import config_validation as cv

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "custom_components" / "vision_tutor"

# hassfest's custom-integration manifest rules (script/hassfest/manifest.py).
MANIFEST_KEYS = {
    "domain", "name", "after_dependencies", "bluetooth", "codeowners", "config_flow",
    "dependencies", "dhcp", "documentation", "homekit", "import_executor", "integration_type",
    "iot_class", "issue_tracker", "loggers", "mqtt", "quality_scale", "requirements",
    "single_config_entry", "ssdp", "usb", "version", "zeroconf",
}  # fmt: skip
IOT_CLASSES = {
    "assumed_state", "calculated", "cloud_polling", "cloud_push", "local_polling", "local_push",
}  # fmt: skip
INTEGRATION_TYPES = {"device", "entity", "hardware", "helper", "hub", "service", "system"}


@pytest.fixture(scope="module")
def manifest() -> dict[str, object]:
    data: dict[str, object] = json.loads((INTEGRATION / "manifest.json").read_text())
    return data


def test_manifest_keys_are_known_and_sorted_as_hassfest_wants(manifest: dict[str, object]) -> None:
    keys = list(manifest)
    assert set(keys) <= MANIFEST_KEYS, set(keys) - MANIFEST_KEYS
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])


def test_manifest_values_follow_the_custom_integration_schema(manifest: dict[str, object]) -> None:
    assert manifest["domain"] == INTEGRATION.name
    assert manifest["config_flow"] is True
    assert manifest["iot_class"] in IOT_CLASSES
    assert manifest["integration_type"] in INTEGRATION_TYPES
    for key in ("documentation", "issue_tracker"):
        assert urlparse(str(manifest[key])).scheme == "https"
    codeowners = manifest["codeowners"]
    assert isinstance(codeowners, list)
    assert all(owner.startswith("@") for owner in codeowners)
    # Custom integrations must carry a version Home Assistant can parse.
    version = AwesomeVersion(str(manifest["version"]))
    assert version.strategy in {AwesomeVersionStrategy.SEMVER, AwesomeVersionStrategy.CALVER}


def test_integration_requires_the_ollama_client_home_assistant_pins(
    manifest: dict[str, object],
) -> None:
    assert manifest["requirements"] == ["ollama==0.6.2"]
    dev_pins = (ROOT / "requirements-dev.txt").read_text().split()
    assert "ollama==0.6.2" in dev_pins


def test_translations_live_in_en_json_and_not_strings_json() -> None:
    assert not (INTEGRATION / "strings.json").exists()
    translations = json.loads((INTEGRATION / "translations" / "en.json").read_text())
    assert translations["config"]["step"]["user"]["data"]


def test_only_the_addon_config_and_integration_manifest_have_scanned_names() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    scanned = {
        path
        for path in tracked
        if Path(path).name in {"config.yaml", "config.yml", "config.json", "manifest.json"}
    }
    assert scanned <= {
        "addon/vision_tutor/config.yaml",
        "custom_components/vision_tutor/manifest.json",
    }


def test_hacs_and_addon_store_files() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert hacs["name"] == "Vision Tutor"
    assert AwesomeVersion(hacs["homeassistant"]) >= AwesomeVersion("2026.10.0")
    store = yaml.safe_load((ROOT / "repository.yaml").read_text())
    assert {"name", "url", "maintainer"} <= set(store)
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


# --- Offline mirrors of the validators GitHub runs (.github/workflows/validate.yaml) -------------
#
# hassfest, the HACS action and frenck's add-on linter only run on GitHub. The rules we once
# failed are transcribed here, so `scripts/test` catches a regression first. Each checker is
# also run on a known-bad input, so a checker that stopped finding anything would fail too.

ADDON = ROOT / "addon" / "vision_tutor"

# script/hassfest/dependencies.py: integrations any integration may import without listing them
# (besides the entity platforms, `Platform`'s values).
HASSFEST_ALLOWED_USED_COMPONENTS = {
    "alert", "automation", "conversation", "default_config", "device_automation", "frontend",
    "group", "homeassistant", "input_boolean", "input_button", "input_datetime", "input_number",
    "input_select", "input_text", "media_source", "onboarding", "panel_custom",
    "persistent_notification", "person", "script", "shopping_list", "sun", "system_health",
    "system_log", "timer", "webhook", "websocket_api", "zone", "mjpeg", "stream",
}  # fmt: skip


def _referenced_components(source: str) -> set[str]:
    """The `homeassistant.components.X` an integration's module imports, as hassfest sees them.

    Imports under `if TYPE_CHECKING:` do not count, and neither does the one exception hassfest
    makes (`async_sign_path` from `http.auth`).
    """
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
        ):
            return
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            names = [alias.name for alias in node.names]
            if node.module == "homeassistant.components.http.auth" and names == ["async_sign_path"]:
                return
            if node.module.startswith("homeassistant.components."):
                found.add(node.module.split(".")[2])
            elif node.module == "homeassistant.components":
                found.update(names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("homeassistant.components."):
                    found.add(alias.name.split(".")[2])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def _undeclared_components(
    integration: Path, manifest: dict[str, object], sources: dict[str, str]
) -> set[str]:
    """Components imported but neither allowed, declared, nor a platform of this integration."""
    allowed = (
        HASSFEST_ALLOWED_USED_COMPONENTS
        | {platform.value for platform in Platform}
        | set(manifest.get("dependencies", []))  # type: ignore[call-overload]
        | set(manifest.get("after_dependencies", []))  # type: ignore[call-overload]
        | {str(manifest["domain"])}
    )
    undeclared: set[str] = set()
    for source in sources.values():
        for ref in _referenced_components(source) - allowed:
            # A module of this integration named like the component (diagnostics.py) is its
            # platform for that component, which hassfest allows.
            if not (integration / f"{ref}.py").is_file() and not (integration / ref).is_dir():
                undeclared.add(ref)
    return undeclared


def test_hassfest_every_imported_component_is_a_declared_dependency(
    manifest: dict[str, object],
) -> None:
    sources = {str(path): path.read_text() for path in INTEGRATION.rglob("*.py")}
    assert _undeclared_components(INTEGRATION, manifest, sources) == set()
    # The rule as hassfest applies it: http is needed to serve the card, and must be declared.
    without_http = {**manifest, "dependencies": ["camera"]}
    assert _undeclared_components(INTEGRATION, without_http, sources) == {"http"}
    typed_only = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import homeassistant.components.zha\n"
    assert _referenced_components(typed_only) == set()


def test_hassfest_dependencies_exist_and_are_not_listed_twice(
    manifest: dict[str, object],
) -> None:
    dependencies = list(manifest.get("dependencies", []))  # type: ignore[call-overload]
    after = list(manifest.get("after_dependencies", []))  # type: ignore[call-overload]
    assert not set(dependencies) & set(after)
    for domain in (*dependencies, *after):
        assert importlib.util.find_spec(f"homeassistant.components.{domain}"), domain


def _strings(node: object, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def _html_strings(translations: object) -> list[str]:
    """Paths of the strings hassfest rejects as HTML (Home Assistant's own validator)."""
    bad = []
    for path, text in _strings(translations):
        try:
            cv.string_with_no_html(text)
        except vol.Invalid:
            bad.append(path)
    return bad


def test_hassfest_no_translation_string_looks_like_html() -> None:
    """The frontend renders such a string as "Translation error: UNCLOSED_TAG"."""
    files = [
        *sorted((INTEGRATION / "translations").glob("*.json")),
        INTEGRATION / "icons.json",
    ]
    for path in files:
        assert _html_strings(json.loads(path.read_text())) == [], path
    for path in [INTEGRATION / "services.yaml", *sorted((ADDON / "translations").glob("*.yaml"))]:
        assert _html_strings(yaml.safe_load(path.read_text())) == [], path
    bad = {"config": {"step": {"model": {"data_description": {"m": "ollama pull <name>"}}}}}
    assert _html_strings(bad) == ["config.step.model.data_description.m"]


# frenck/action-addon-linter (src/config.schema.json and src/lint.py, v2.21.0): the keys it knows,
# and those whose value is its default, which it rejects ("should be removed, it uses a default").
ADDON_LINTER_KEYS = {
    "advanced", "apparmor", "arch", "audio", "auth_api", "auto_uart", "backup", "backup_exclude",
    "backup_post", "backup_pre", "boot", "breaking_versions", "codenotary", "description",
    "devices", "devicetree", "discovery", "docker_api", "environment", "full_access", "gpio",
    "hassio_api", "hassio_role", "homeassistant", "homeassistant_api", "host_dbus", "host_ipc",
    "host_network", "host_pid", "host_uts", "image", "ingress", "ingress_entry", "ingress_port",
    "ingress_stream", "init", "journald", "kernel_modules", "legacy", "machine", "map", "name",
    "options", "panel_admin", "panel_icon", "panel_title", "ports", "ports_description",
    "privileged", "realtime", "schema", "services", "slug", "stage", "startup", "stdin",
    "timeout", "tmpfs", "uart", "udev", "ulimits", "url", "usb", "version", "video", "watchdog",
    "webui",
}  # fmt: skip
ADDON_LINTER_DEFAULTS: dict[str, object] = {
    "advanced": False, "apparmor": True, "audio": False, "auth_api": False, "auto_uart": False,
    "backup": "hot", "boot": "auto", "devicetree": False, "docker_api": False,
    "full_access": False, "gpio": False, "hassio_api": False, "hassio_role": "default",
    "homeassistant": False, "homeassistant_api": False, "host_dbus": False, "host_ipc": False,
    "host_network": False, "host_pid": False, "host_uts": False, "ingress": False,
    "ingress_port": 8099, "ingress_stream": False, "init": True, "journald": False,
    "kernel_modules": False, "legacy": False, "options": {}, "panel_admin": True,
    "panel_icon": "mdi:puzzle", "realtime": False, "schema": {}, "stage": "stable",
    "startup": "application", "stdin": False, "timeout": 10, "tmpfs": False, "uart": False,
    "udev": False, "ulimits": {}, "usb": False, "video": False,
}  # fmt: skip
ADDON_LINTER_REQUIRED = {"arch", "description", "name", "slug", "version"}
DEPRECATED_ARCHS = {"armhf", "armv7", "i386"}


def addon_linter_errors(config: dict[str, object]) -> list[str]:
    """What frenck's add-on linter reports for a config.yaml (errors, and the arch warning)."""
    errors = [f"{key} is required" for key in sorted(ADDON_LINTER_REQUIRED - set(config))]
    errors += [f"{key} is not allowed" for key in sorted(set(config) - ADDON_LINTER_KEYS)]
    errors += [
        f"{key} should be removed, it uses a default value"
        for key, default in ADDON_LINTER_DEFAULTS.items()
        if key in config and config[key] == default
    ]
    for key in ("watchdog", "codenotary", "auto_uart"):
        if key in config and (config[key] or key != "watchdog"):
            errors.append(f"{key} is obsolete")
    if config.get("ingress") and config.get("webui"):
        errors.append("webui should be removed, Ingress is enabled")
    if config.get("ingress") and not config.get("host_network") and config.get("ingress_port") == 0:
        errors.append("ingress_port must not be 0 off the host network")
    if not isinstance(config.get("tmpfs", False), bool):
        errors.append("tmpfs is a boolean")
    if any(":" in str(device) for device in config.get("devices", [])):  # type: ignore[attr-defined]
        errors.append("devices uses the deprecated format")
    errors += [
        f"arch {arch} is deprecated"
        for arch in config.get("arch", [])  # type: ignore[attr-defined]
        if arch in DEPRECATED_ARCHS
    ]
    return errors


def test_addon_linter_finds_nothing_in_the_addon_config() -> None:
    config = yaml.safe_load((ADDON / "config.yaml").read_text())
    assert addon_linter_errors(config) == []
    # The three errors the linter once reported, and what else it rejects.
    old = {**config, "boot": "auto", "backup": "hot", "watchdog": "tcp://[HOST]:[PORT:8765]"}
    assert addon_linter_errors(old) == [
        "backup should be removed, it uses a default value",
        "boot should be removed, it uses a default value",
        "watchdog is obsolete",
    ]
    assert addon_linter_errors({**config, "webui": "http://[HOST]:[PORT:8765]", "arch": ["i386"]})
    assert addon_linter_errors({**config, "build_from": "x"}) == ["build_from is not allowed"]


def test_addon_has_a_healthcheck_and_an_apparmor_profile_of_its_own() -> None:
    """The linter's replacements for `watchdog`, and the Supervisor's security rating."""
    dockerfile = (ADDON / "Dockerfile").read_text()
    healthcheck = re.search(
        r"^HEALTHCHECK\s.*?CMD\s(.+?)(?<!\\)$", dockerfile, re.MULTILINE | re.DOTALL
    )
    assert healthcheck is not None
    assert "/api/v1/health" in healthcheck.group(1)
    assert "/data/token" in healthcheck.group(1)  # the endpoint needs the API token
    config = yaml.safe_load((ADDON / "config.yaml").read_text())
    profile = (ADDON / "apparmor.txt").read_text()
    # The Supervisor renames the profile named after the slug; a second top-level one is an error.
    top = re.findall(r"^profile\s+(\S+)", profile, re.MULTILINE)
    assert top == [config["slug"]]
    assert profile.count("{") == profile.count("}")
    children = dict(
        re.findall(r"^[ \t]+profile (\w+)[^{]*\{(.*?)^[ \t]+\}", profile, re.MULTILINE | re.DOTALL)
    )
    assert set(children) == {"teacher", "healthcheck"}
    assert "/usr/local/bin/python3* cx -> teacher," in profile
    assert "/data/** rwk," in children["teacher"]
    assert "network inet stream," in children["teacher"]
    assert "capability" not in children["teacher"]  # the service needs no capability
    assert "/data/**" not in children["healthcheck"]


# --- The Quality Scale self-assessment, where the code can check it ------------------------------

QUALITY_STATUSES = {"done", "todo", "exempt"}


def _rules() -> dict[str, object]:
    rules: dict[str, object] = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())[
        "rules"
    ]
    return rules


def _status(rule: object) -> str:
    return str(rule["status"] if isinstance(rule, dict) else rule)


def test_quality_scale_rules_have_a_status_and_a_reason_when_not_done() -> None:
    for name, rule in _rules().items():
        assert _status(rule) in QUALITY_STATUSES, name
        if _status(rule) != "done":
            assert isinstance(rule, dict), name
            assert str(rule.get("comment", "")).strip(), name


def test_quality_scale_strict_typing_means_the_typed_entry_everywhere() -> None:
    """No module annotates with the plain ConfigEntry: only __init__ names it, for the alias."""
    assert _status(_rules()["strict-typing"]) == "done"
    plain = re.compile(r"(?<![\w.])ConfigEntry(?!\w)")
    for path in INTEGRATION.glob("*.py"):
        lines = [
            number
            for number, line in enumerate(path.read_text().splitlines(), 1)
            if plain.search(line)
            and not (path.name == "__init__.py" and ("import" in line or "type " in line))
        ]
        assert lines == [], f"{path.name}: plain ConfigEntry at lines {lines}"
    assert plain.search("def f(entry: ConfigEntry) -> None: ...")


def test_quality_scale_diagnostics_redact_the_token_and_the_hosts() -> None:
    from custom_components.vision_tutor import diagnostics

    assert _status(_rules()["diagnostics"]) == "done"
    assert {"teacher_token", "student_url", "teacher_url"} <= diagnostics.TO_REDACT


# hacs/integration (custom_components/hacs/utils/validate.py): hacs.json's keys and types, and
# the integration manifest keys HACS requires. The GitHub-side checks (description, topics,
# issues, brands) only run in the workflow.
HACS_JSON_TYPES: dict[str, type] = {
    "content_in_root": bool, "country": object, "filename": str, "hacs": str,
    "hide_default_branch": bool, "homeassistant": str, "persistent_directory": str,
    "render_readme": bool, "zip_release": bool, "name": str,
}  # fmt: skip
HACS_MANIFEST_REQUIRED = {
    "codeowners",
    "documentation",
    "domain",
    "issue_tracker",
    "name",
    "version",
}


def hacs_errors(hacs: dict[str, object], manifest: dict[str, object]) -> list[str]:
    errors = [f"hacs.json: unknown key {key}" for key in sorted(set(hacs) - set(HACS_JSON_TYPES))]
    errors += [
        f"hacs.json: {key} is not {kind.__name__}"
        for key, kind in HACS_JSON_TYPES.items()
        if key in hacs and not isinstance(hacs[key], kind)
    ]
    if "name" not in hacs:
        errors.append("hacs.json: name is required")
    errors += [
        f"manifest: {key} is required" for key in sorted(HACS_MANIFEST_REQUIRED - set(manifest))
    ]
    return errors


def test_hacs_validation_of_hacs_json_and_the_manifest(manifest: dict[str, object]) -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert hacs_errors(hacs, manifest) == []
    integrations = [
        path.name
        for path in (ROOT / "custom_components").iterdir()
        if path.is_dir() and not path.name.startswith("__")
    ]
    assert integrations == [INTEGRATION.name]  # HACS installs exactly one integration
    assert hacs_errors({"render_readme": "yes", "zip": True}, {"domain": "x"})


def test_the_guard_against_tests_writing_tracked_files_sees_a_write(tmp_path: Path) -> None:
    """tests/conftest.py compares the tracked files before and after the run with this."""
    from tests.conftest import tracked_changes

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "shot.png").write_bytes(b"old")
    (tmp_path / "edited.txt").write_text("mine")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "files")
    (tmp_path / "edited.txt").write_text("being edited")  # a developer's own edit, before
    before = tracked_changes(tmp_path)
    assert before is not None
    assert set(before) == {"edited.txt"}
    (tmp_path / "shot.png").write_bytes(b"new")  # what a test must not do
    (tmp_path / "untracked.png").write_bytes(b"fine")
    after = tracked_changes(tmp_path)
    assert after is not None
    assert {name for name in after if before.get(name) != after[name]} == {"shot.png"}
    assert tracked_changes(tmp_path / "not-a-repo") is None
