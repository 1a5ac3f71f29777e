"""`python -m realollama serve|prepare`: the real Ollama of the tests, for people and scripts.

- `prepare`: build (or reuse) the binary and create (or reuse) the test models, then exit.
- `serve [--port N]`: the same, then run the server on loopback, print its URL and the model
  names, and stop on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .models import EMBED, MODELS, STUDENT, TEACHER, TEXT, ensure_models
from .paths import models_dir
from .server import run_ollama


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m realollama", description=__doc__)
    parser.add_argument("command", choices=["serve", "prepare"])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    args = parser.parse_args(argv)

    # `prepare` runs at every scripts/setup: skip starting a server when the cache has the models.
    stamp = models_dir() / ".vision-tutor-models"
    names = "\n".join(model.name for model in MODELS)
    if args.command == "prepare" and stamp.is_file() and stamp.read_text() == names:
        return 0

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with run_ollama(port=args.port) as server:
        made = ensure_models(server.url, log=_say)
        if made:
            _say(f"created {len(made)} test model(s)")
        stamp.write_text(names)
        if args.command == "prepare":
            return 0
        print(server.url, flush=True)
        _say(f"student {STUDENT}, teacher {TEACHER}, text {TEXT}, embeddings {EMBED}")
        _say("Ctrl-C stops the server")
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
