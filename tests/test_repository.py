"""The repository's packaging files, checked the way HACS, hassfest and the Supervisor read them."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
from urllib.parse import urlparse

from awesomeversion import AwesomeVersion, AwesomeVersionStrategy
import pytest
import yaml

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
