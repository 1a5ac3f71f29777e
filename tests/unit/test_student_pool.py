"""The student pool on its own: sticky cameras, spread by load, failover and coming back."""

from __future__ import annotations

import pytest

from custom_components.vision_tutor.contract import StudentError
from custom_components.vision_tutor.pipeline import StudentAnswer, StudentUnavailable
from custom_components.vision_tutor.student_pool import (
    MOTION_ONLY_LOAD,
    Move,
    PooledStudent,
    StudentPool,
    camera_load,
)

A, B, C = "http://a:11434", "http://b:11434", "http://c:11434"


def pool_of(*hosts: str, cameras: dict[str, float] | None = None) -> StudentPool:
    pool = StudentPool(hosts)
    for camera, load in (cameras or {}).items():
        pool.add_camera(camera, load)
    return pool


def test_a_cameras_load_is_its_frames_per_minute() -> None:
    assert camera_load(30) == 2.0
    assert camera_load(5) == 12.0
    assert camera_load(0) == MOTION_ONLY_LOAD


def test_cameras_are_spread_by_load_and_keep_their_host() -> None:
    pool = pool_of(A, B, cameras={"busy": 12.0, "one": 2.0, "two": 2.0, "three": 2.0})
    # The busy camera fills A; the others go to B until B is as loaded, then A takes one.
    assert pool.assignment == {"busy": A, "one": B, "two": B, "three": B}
    pool.add_camera("four", 2.0)
    assert pool.assignment["four"] == B
    pool.add_camera("five", 2.0)
    assert pool.assignment["five"] == B  # B at 8 is still below A's 12
    # Sticky: asking again never moves a camera while its host is healthy.
    for _ in range(3):
        assert {camera: pool.host_for(camera) for camera in pool.assignment} == pool.assignment


def test_a_host_going_down_moves_only_its_cameras_to_the_least_loaded() -> None:
    pool = pool_of(A, B, C, cameras={"a1": 2.0, "b1": 2.0, "c1": 2.0, "a2": 2.0, "b2": 2.0})
    assert pool.cameras_on(A) == ["a1", "a2"]

    moves = pool.mark_down(A)

    assert moves == [Move("a1", A, C), Move("a2", A, B)]
    assert pool.assignment == {"a1": C, "b1": B, "c1": C, "a2": B, "b2": B}
    assert pool.mark_down(A) == []  # already down: nothing more happens


def test_a_host_coming_back_takes_just_enough_cameras_to_even_the_load() -> None:
    pool = pool_of(A, B, cameras={f"cam{n}": 2.0 for n in range(4)})
    pool.mark_down(B)
    assert pool.cameras_on(A) == ["cam0", "cam1", "cam2", "cam3"]

    moves = pool.mark_up(B)

    assert len(moves) == 2
    assert all((move.source, move.target) == (A, B) for move in moves)
    assert (len(pool.cameras_on(A)), len(pool.cameras_on(B))) == (2, 2)
    assert pool.mark_up(B) == []


def test_one_heavy_camera_is_not_moved_back_and_forth() -> None:
    pool = pool_of(A, B, cameras={"heavy": 12.0, "light": 2.0})
    pool.mark_down(A)
    pool.mark_up(A)
    # The light camera went back to A; moving the heavy one too would only swap the loads.
    assert pool.assignment == {"heavy": B, "light": A}
    before = dict(pool.assignment)
    assert pool.rebalance() == []
    assert pool.assignment == before


def test_with_every_host_down_a_camera_keeps_its_host() -> None:
    pool = pool_of(A, B, cameras={"cam": 2.0, "other": 2.0})
    pool.mark_down(A)
    pool.mark_down(B)
    assert pool.host_for("cam") == B
    assert pool.host_for("other") == B
    # The first host back takes them both (the other is still down).
    pool.mark_up(A)
    assert (pool.host_for("cam"), pool.host_for("other")) == (A, A)


class FakeStudent:
    def __init__(self, name: str, failure: str | None = None) -> None:
        self.model = "gemma4:e2b"
        self.timeout = 20.0
        self.name = name
        self.failure = failure
        self.asked = 0

    async def ask(self, jpeg: bytes, system_prompt: str) -> StudentAnswer | StudentError:
        self.asked += 1
        if self.failure is not None:
            raise StudentUnavailable(self.failure, f"{self.name} failed")  # type: ignore[arg-type]
        return StudentAnswer(self.name, (), 1.0)


async def test_a_failed_frame_is_asked_of_the_next_host_at_once() -> None:
    pool = pool_of(A, B, cameras={"cam": 2.0})
    clients = {A: FakeStudent("a", failure="unreachable"), B: FakeStudent("b")}
    failed: list[tuple[str, str]] = []
    student = PooledStudent(
        pool, clients, "cam", on_host_failed=lambda url, err: failed.append((url, err.reason))
    )
    assert student.host == A

    answer = await student.ask(b"jpeg", "prompt")

    assert isinstance(answer, StudentAnswer)
    assert answer.text == "b"
    assert failed == [(A, "unreachable")]
    assert (pool.healthy[A], student.host) == (False, B)
    # The camera stays on B from now on, even once A answers again and B is healthy.
    clients[A].failure = None
    await student.ask(b"jpeg", "prompt")
    assert (clients[A].asked, clients[B].asked) == (1, 2)


async def test_a_host_without_the_model_is_left_like_a_host_that_is_down() -> None:
    pool = pool_of(A, B, cameras={"cam": 2.0})
    clients = {A: FakeStudent("a", failure="model_missing"), B: FakeStudent("b")}
    answer = await PooledStudent(pool, clients, "cam").ask(b"jpeg", "prompt")
    assert isinstance(answer, StudentAnswer)
    assert answer.text == "b"
    assert pool.healthy == {A: False, B: True}


async def test_when_no_host_answers_the_last_error_names_its_host() -> None:
    pool = pool_of(A, B, cameras={"cam": 2.0})
    clients = {A: FakeStudent("a", "unreachable"), B: FakeStudent("b", "unreachable")}
    with pytest.raises(StudentUnavailable) as caught:
        await PooledStudent(pool, clients, "cam").ask(b"jpeg", "prompt")
    assert (caught.value.url, str(caught.value)) == (B, "b failed")
    assert (clients[A].asked, clients[B].asked) == (1, 1)
    # A host that answers again is marked up by its answer.
    clients[B].failure = None
    await PooledStudent(pool, clients, "cam").ask(b"jpeg", "prompt")
    assert pool.healthy[B] is True
