"""Entry point: ``python -m vision_tutor_teacher [--config FILE] [--data DIR] [--host H] [--port P]``.

In the add-on the s6 service runs it with the defaults: options from ``/data/options.json`` (which
the Supervisor writes), state in ``/data``, listening on port 8765. Standalone users (Home
Assistant Container or Core) point ``--config`` at their own options JSON and ``--data`` at a
directory that persists.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 2 for invalid options or arguments, 3 when the
data directory is already in use or the port cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
import logging
from pathlib import Path
import sys
from typing import Final

from . import __version__
from .discovery import SupervisorAccess
from .options import DEFAULT_OPTIONS_FILE, OptionsError, load_options
from .service import RunningService, serve_until_stopped
from .storage.datadir import DataDirLocked

DEFAULT_DATA_DIR: Final = Path("/data")
DEFAULT_PORT: Final = 8765
EXIT_CONFIG: Final = 2
EXIT_RUNTIME: Final = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vision_tutor_teacher",
        description="Vision Tutor's teacher service: the durable review queue and its API.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_OPTIONS_FILE,
        help=f"options JSON (default: {DEFAULT_OPTIONS_FILE}, written by the Supervisor)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"directory for the database and token (default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0 picks a free one)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        options = load_options(args.config)
    except OptionsError as err:
        logging.getLogger(__name__).error("%s", err)
        return EXIT_CONFIG
    logging.getLogger().setLevel(options.log_level.upper())

    def announce(running: RunningService) -> None:
        # Whatever the log level: scripts (and the tests) wait for this line.
        sys.stderr.write(
            f"Vision Tutor teacher {__version__} listening on {running.url} with data in {args.data}\n"
        )
        sys.stderr.flush()

    try:
        asyncio.run(
            serve_until_stopped(
                options,
                args.data,
                host=args.host,
                port=args.port,
                supervisor=SupervisorAccess.from_environ(),
                ready=announce,
            )
        )
    except (DataDirLocked, OSError) as err:
        logging.getLogger(__name__).error("Cannot start: %s", err)
        return EXIT_RUNTIME
    return 0


if __name__ == "__main__":
    sys.exit(main())
