"""The student pool: one entry's cameras over several Ollama hosts with the same student model.

No Home Assistant here; the entry's setup wires it to the hosts' coordinators.

- **Sticky.** A camera's frames go to the host it is assigned to while that host is healthy: the
  model stays warm there and one camera's answers come from one server.
- **Spread by load.** A camera without a host (at start, or when its host went down) goes to the
  healthy host with the least load, a camera's load being the frames it asks for per minute
  (one analysis per interval; a camera that waits for motion counts as one a minute).
- **Failover.** A host that fails a frame (it does not answer, or lost the model) is marked down
  and the frame is asked again of the camera's next host at once, so its cameras move within
  their interval, not at the next poll. The hosts' polls mark them down and up too.
- **Coming back.** When a host is healthy again, just enough cameras move to it to even out the
  load (the fewest moves that lower the busiest host's load); the others stay where they are warm.

With every host down a camera keeps its host, so the error it shows is that host's, and the
first answer from any host marks it up again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
import logging
from typing import Final

from .contract import StudentError
from .pipeline import Student, StudentAnswer, StudentUnavailable

_LOGGER = logging.getLogger(__name__)

MOTION_ONLY_LOAD: Final = 1.0
"""Frames per minute a camera without an interval (motion or actions only) is counted as."""


def camera_load(scan_interval_s: float) -> float:
    """Frames per minute a camera asks the student for."""
    return 60.0 / scan_interval_s if scan_interval_s > 0 else MOTION_ONLY_LOAD


@dataclass(frozen=True, slots=True)
class Move:
    """A camera moved from one host to another (None: it had none yet)."""

    camera: str
    source: str | None
    target: str


class StudentPool:
    """Which host each camera's frames go to; see the module docstring."""

    def __init__(self, hosts: Sequence[str]) -> None:
        if not hosts:
            raise ValueError("a student pool needs at least one host")
        self.hosts: tuple[str, ...] = tuple(dict.fromkeys(hosts))
        self.healthy: dict[str, bool] = dict.fromkeys(self.hosts, True)
        """Until a poll or a frame says otherwise, a host is taken to work."""
        self.assignment: dict[str, str] = {}
        self.loads: dict[str, float] = {}
        """Each camera's load (frames per minute)."""
        self.moves: list[Move] = []
        """Every move, for the diagnostics (the last few are kept)."""

    def load(self, host: str) -> float:
        return sum(self.loads[camera] for camera, on in self.assignment.items() if on == host)

    def cameras_on(self, host: str) -> list[str]:
        return [camera for camera, on in self.assignment.items() if on == host]

    def add_camera(self, camera: str, load: float) -> str:
        """Register a camera and give it a host; the host."""
        self.loads[camera] = load
        self.assignment.pop(camera, None)
        return self.host_for(camera)

    def host_for(self, camera: str) -> str:
        """The host this camera's next frame goes to (it keeps it while healthy)."""
        current = self.assignment.get(camera)
        if current is not None and self.healthy[current]:
            return current
        candidates = [host for host in self.hosts if self.healthy[host]]
        if not candidates:
            # Nothing works: stay (or start on the first host) so the error is a real one.
            chosen = current or self.hosts[0]
        else:
            chosen = min(candidates, key=lambda host: (self.load(host), self.hosts.index(host)))
        if chosen != current:
            self._move(camera, current, chosen)
        return chosen

    def mark_down(self, host: str) -> list[Move]:
        """The host does not work: its cameras go to the others now; the moves."""
        if host not in self.healthy or not self.healthy[host]:
            return []
        self.healthy[host] = False
        _LOGGER.info("Student host %s is down; moving its cameras", host)
        moves: list[Move] = []
        for camera in self.cameras_on(host):
            before = len(self.moves)
            self.host_for(camera)
            moves.extend(self.moves[before:])
        return moves

    def mark_up(self, host: str) -> list[Move]:
        """The host works again: even out the load onto it; the moves."""
        if host not in self.healthy or self.healthy[host]:
            return []
        self.healthy[host] = True
        _LOGGER.info("Student host %s works again", host)
        return self.rebalance()

    def set_healthy(self, host: str, healthy: bool) -> list[Move]:
        return self.mark_up(host) if healthy else self.mark_down(host)

    def rebalance(self) -> list[Move]:
        """Move cameras from the busiest healthy host to the least busy while that lowers the
        busiest host's load; the moves (cameras whose host is down are left to `host_for`)."""
        moves: list[Move] = []
        while True:
            healthy = [host for host in self.hosts if self.healthy[host]]
            if len(healthy) < 2:
                return moves
            busiest = max(healthy, key=lambda host: (self.load(host), -self.hosts.index(host)))
            idlest = min(healthy, key=lambda host: (self.load(host), self.hosts.index(host)))
            movable = sorted(self.cameras_on(busiest), key=lambda camera: self.loads[camera])
            camera = next(
                (
                    camera
                    for camera in movable
                    if self.load(idlest) + self.loads[camera] < self.load(busiest)
                ),
                None,
            )
            if camera is None:
                return moves
            self._move(camera, busiest, idlest)
            moves.append(self.moves[-1])

    def _move(self, camera: str, source: str | None, target: str) -> None:
        self.assignment[camera] = target
        self.moves.append(Move(camera, source, target))
        del self.moves[:-50]


class PooledStudent:
    """One camera's student in a pool: its host's client, and the next host when that fails."""

    def __init__(
        self,
        pool: StudentPool,
        clients: Mapping[str, Student],
        camera: str,
        *,
        on_host_failed: Callable[[str, StudentUnavailable], None] = lambda url, err: None,
        on_host_answered: Callable[[str], None] = lambda url: None,
    ) -> None:
        self.pool = pool
        self.clients = clients
        self.camera = camera
        self._on_host_failed = on_host_failed
        self._on_host_answered = on_host_answered
        first = clients[pool.hosts[0]]
        self.model = first.model
        self.timeout = first.timeout

    @property
    def host(self) -> str:
        """The host this camera's frames go to now."""
        return self.pool.host_for(self.camera)

    async def ask(self, jpeg: bytes, system_prompt: str) -> StudentAnswer | StudentError:
        """The camera's host answers; when it fails for good, the next host, once each.

        Raises the last host's StudentUnavailable (with its URL) when none could answer.
        """
        tried: set[str] = set()
        last: StudentUnavailable | None = None
        while True:
            host = self.pool.host_for(self.camera)
            if host in tried and last is not None:
                raise last
            tried.add(host)
            try:
                answer = await self.clients[host].ask(jpeg, system_prompt)
            except StudentUnavailable as err:
                last = StudentUnavailable(err.reason, str(err), url=host)
                self.pool.mark_down(host)
                self._on_host_failed(host, last)
                continue
            self.pool.mark_up(host)
            self._on_host_answered(host)
            return answer
