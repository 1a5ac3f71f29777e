"""Start and stop a real `ollama serve` on a free loopback port.

The server is the binary `scripts/ollama-build` made. It gets a private HOME (it writes
`~/.ollama/id_ed25519` there), the shared models folder of the cache (created by
`realollama.models`), no cloud, one request at a time per model, and a CPU-sized context, so that
what it does in a test is what a user's small CPU box does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import contextlib
import ctypes
from dataclasses import dataclass, field
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from .paths import build_binary, models_dir

READY_TIMEOUT_S = 60.0
PR_SET_PDEATHSIG = 1


class OllamaStartError(RuntimeError):
    """The server did not come up; the message carries the end of its log."""


@dataclass
class OllamaServer:
    """A running server: its URL, its log file and the process."""

    url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(repr=False, default=None)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(
    home: Path, models: Path, port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a test server: loopback, private HOME, the cached models."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env.update(
        {
            "HOME": str(home),
            "OLLAMA_HOST": f"127.0.0.1:{port}",
            "OLLAMA_MODELS": str(models),
            "OLLAMA_NO_CLOUD": "1",
            "OLLAMA_NUM_PARALLEL": "1",
            # Keep the models the tests use loaded; the tests' own timing is not a load test.
            "OLLAMA_KEEP_ALIVE": "30m",
            "OLLAMA_MAX_LOADED_MODELS": "4",
            "OLLAMA_CONTEXT_LENGTH": "4096",
        }
    )
    env.update(extra or {})
    return env


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, even by SIGKILL (Linux's PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_ready(url: str, process: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    """Poll `GET /` until the server says it is running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise OllamaStartError(f"ollama serve exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.URLError, ConnectionError, TimeoutError:
            pass
        time.sleep(0.1)
    raise OllamaStartError(f"ollama serve did not answer on {url} within {timeout_s:.0f} s")


@contextlib.contextmanager
def run_ollama(
    binary: Path | None = None,
    models: Path | None = None,
    *,
    port: int = 0,
    env: Mapping[str, str] | None = None,
) -> Iterator[OllamaServer]:
    """Run `ollama serve` for the duration of the block."""
    binary = binary or build_binary()
    models = models or models_dir()
    models.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    home = Path(tempfile.mkdtemp(prefix="vt-ollama-home-"))
    log_path = home / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "serve"],
            env=server_env(home, models, port, env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    server = OllamaServer(url=url, log_path=log_path, process=process)
    try:
        try:
            wait_ready(url, process, READY_TIMEOUT_S)
        except OllamaStartError as err:
            raise OllamaStartError(f"{err}\n{server.log_tail()}") from err
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # The runner subprocesses belong to the server's session; make sure none survives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, 9)
        shutil.rmtree(home, ignore_errors=True)
