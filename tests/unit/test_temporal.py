"""The safety sensor's temporal window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custom_components.vision_tutor.temporal import SafetyWindow, WindowConfig, WindowProgress

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _at(frame: int) -> datetime:
    return T0 + timedelta(seconds=10 * frame)


def _feed(window: SafetyWindow, frames: list[tuple[str, ...] | None]) -> list[bool]:
    return [window.add_frame(flags, _at(i)).on for i, flags in enumerate(frames)]


def test_one_flagged_frame_is_not_enough_but_two_of_five_are() -> None:
    window = SafetyWindow(WindowConfig(size=5, flagged_to_trigger=2))
    assert _feed(window, [(), ("fire",), (), ()]) == [False, False, False, False]
    state = window.add_frame(("fire", "smoke"), _at(4))
    assert state.on
    # Only fire has two of the frames: smoke in one frame is not (yet) persisting.
    assert state.flags == ("fire",)
    assert state.flags[0] == "fire"  # the most persistent flag first
    assert state.since == _at(4)
    assert not state.confirmed_by_teacher


def test_flags_that_fell_out_of_the_window_do_not_count() -> None:
    window = SafetyWindow(WindowConfig(size=3, flagged_to_trigger=2))
    assert _feed(window, [("fire",), (), (), (), ("fire",)]) == [False] * 5


def test_the_sensor_clears_only_after_a_run_of_clean_frames() -> None:
    window = SafetyWindow(WindowConfig(size=5, flagged_to_trigger=2, clean_to_clear=3))
    _feed(window, [("fire",), ("fire",)])
    assert window.state.on
    # Two clean frames, a flagged one, then three clean: only the third clean frame clears.
    states = [window.add_frame(flags, _at(2 + i)).on for i, flags in enumerate(
        [(), (), ("smoke",), (), (), ()]
    )]  # fmt: skip
    assert states == [True, True, True, True, True, False]
    assert window.state.flags == ()
    assert window.state.since is None


def test_unreadable_frames_never_count_towards_all_clear() -> None:
    window = SafetyWindow(WindowConfig(size=5, flagged_to_trigger=2, clean_to_clear=2))
    _feed(window, [("weapon",), ("weapon",)])
    assert _feed(window, [(), None, (), None, None]) == [True] * 5
    assert window.add_frame((), _at(9)).on is True
    assert window.add_frame((), _at(10)).on is False


def test_new_flags_while_on_are_added_and_since_is_kept() -> None:
    window = SafetyWindow(WindowConfig(size=5, flagged_to_trigger=1))
    window.add_frame(("smoke",), _at(0))
    state = window.add_frame(("fire",), _at(1))
    assert state.flags == ("smoke", "fire")
    assert state.since == _at(0)


def test_teacher_confirmation_turns_the_sensor_on_at_once() -> None:
    window = SafetyWindow()
    window.add_frame(("fall",), _at(0))
    state = window.teacher_confirmed(("fall",), _at(1))
    assert state.on
    assert state.confirmed_by_teacher
    assert state.since == _at(1)
    # Confirmation survives further flagged frames and keeps its start time.
    state = window.add_frame(("fall",), _at(2))
    assert state.confirmed_by_teacher
    assert state.since == _at(1)


def test_teacher_dismissal_clears_and_forgets_the_flagged_frames() -> None:
    window = SafetyWindow(WindowConfig(size=5, flagged_to_trigger=2))
    _feed(window, [("intrusion",), ("intrusion",)])
    assert window.teacher_dismissed().on is False
    # The dismissed frames no longer count: one more flagged frame is not two of five.
    assert window.add_frame(("intrusion",), _at(3)).on is False


def test_temporal_change_is_a_flag_the_window_did_not_have() -> None:
    window = SafetyWindow(WindowConfig(size=3))
    assert window.is_new(("fire",))
    window.add_frame(("fire",), _at(0))
    assert not window.is_new(("fire",))
    assert window.is_new(("fire", "smoke"))
    _feed(window, [(), (), ()])
    assert window.is_new(("fire",))
    assert not window.is_new(())


@pytest.mark.parametrize(("size", "k", "clear"), [(0, 1, 1), (3, 0, 1), (3, 4, 1), (3, 2, 0)])
def test_impossible_windows_are_rejected_with_a_reason(size: int, k: int, clear: int) -> None:
    with pytest.raises(ValueError, match=r"\w+"):
        WindowConfig(size=size, flagged_to_trigger=k, clean_to_clear=clear)


def test_a_hazard_after_a_cleared_one_replaces_it() -> None:
    window = SafetyWindow(WindowConfig(size=5, flagged_to_trigger=2, clean_to_clear=1))
    _feed(window, [("fire",), ("fire", "smoke"), ()])
    assert not window.state.on
    state = window.add_frame(("weapon",), _at(3))
    assert not state.on  # the fire frames before the clear do not count
    state = window.add_frame(("weapon",), _at(4))
    assert state.on
    assert state.flags == ("weapon",)
    # The history is still there for the temporal-change signal.
    assert window.recent_flags == {"fire", "smoke", "weapon"}


def test_while_on_a_flag_that_went_away_drops_out_and_a_new_one_joins() -> None:
    window = SafetyWindow(WindowConfig(size=5, flagged_to_trigger=2, clean_to_clear=3))
    _feed(window, [("fire",), ("fire",)])
    assert window.state.flags == ("fire",)
    flags = [window.add_frame(("weapon",), _at(2 + i)).flags for i in range(3)]
    assert flags == [("fire",), ("fire", "weapon"), ("weapon",)]
    assert window.state.on


def test_an_unreadable_frame_does_not_count_as_a_flag_being_absent() -> None:
    window = SafetyWindow(WindowConfig(size=5, flagged_to_trigger=2, clean_to_clear=2))
    _feed(window, [("fire",), ("fire",), None, None, None])
    assert window.state.flags == ("fire",)


def test_different_flags_in_k_frames_turn_it_on_with_both() -> None:
    window = SafetyWindow(WindowConfig(size=5, flagged_to_trigger=2))
    _feed(window, [("fire",), ("smoke",)])
    assert window.state.on
    assert window.state.flags == ("fire", "smoke")


def test_a_teacher_confirmed_flag_is_shown_until_it_has_gone_like_any_other() -> None:
    window = SafetyWindow(WindowConfig(size=5, flagged_to_trigger=2, clean_to_clear=2))
    state = window.teacher_confirmed(("fire",), _at(0))
    assert state.on
    assert state.confirmed_by_teacher
    assert state.flags == ("fire",)
    window.add_frame(("weapon",), _at(1))
    state = window.add_frame(("weapon",), _at(2))
    assert state.flags == ("weapon",)
    assert not state.confirmed_by_teacher


def test_the_state_says_how_far_the_evidence_has_got() -> None:
    """What the card explains: "watching: 1 of 2 flagged frames", "clearing: 2 of 3 clean"."""
    window = SafetyWindow(WindowConfig(size=5, flagged_to_trigger=2, clean_to_clear=3))
    assert window.add_frame((), _at(0)).progress is None
    watching = window.add_frame(("fire",), _at(1))
    assert not watching.on
    assert watching.progress == WindowProgress("watching", 1, 2)
    # A clean frame does not make the flagged one vanish: it is still in the window.
    assert window.add_frame((), _at(2)).progress == WindowProgress("watching", 1, 2)
    on = window.add_frame(("fire",), _at(3))
    assert on.on
    assert on.progress is None, "on, and nothing on its way to clearing it"
    assert window.add_frame((), _at(4)).progress == WindowProgress("clearing", 1, 3)
    assert window.add_frame((), _at(5)).progress == WindowProgress("clearing", 2, 3)
    # An unreadable frame breaks the clean run.
    assert window.add_frame(None, _at(6)).progress is None
    window.add_frame((), _at(7))
    window.add_frame((), _at(8))
    cleared = window.add_frame((), _at(9))
    assert not cleared.on
    assert cleared.progress is None, "cleared: the old flagged frames no longer count"
    assert window.teacher_dismissed().progress is None
