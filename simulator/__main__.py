"""``python -m simulator``: serve the simulated Ollama until SIGINT or SIGTERM.

The parsing and serving live in `simulator.server` (``parse_args``, ``serve``) where tests can
reach them; this wrapper only sets up logging and prints where the server listens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import logging
import sys

from simulator.server import RunningSimulator, parse_args, serve


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(
        level=options.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def announce(running: RunningSimulator) -> None:
        config = running.config
        print(
            f"Vision Tutor simulator (Ollama {config.version} API) listening on {running.url}"
            f" - models: {', '.join(config.models)}; time scale {config.time_scale:g}",
            flush=True,
        )

    try:
        asyncio.run(serve(options.config, host=options.host, port=options.port, ready=announce))
    except OSError as err:  # the port is taken, the address is not ours, ...
        print(f"cannot serve on {options.host}:{options.port}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
