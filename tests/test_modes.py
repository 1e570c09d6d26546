"""The mode table: every declared transition, every refusal, the generated diagram."""

import itertools

import pytest

from glasses_firmware.firmware.power import modes as m
from glasses_firmware.firmware.arbiter import PRIORITY, SUSPENDS, Arbiter, Busy


@pytest.mark.parametrize("state, event", sorted(m.TRANSITIONS))
def test_every_declared_transition(state, event):
    for base in (m.STANDBY, m.LOW_BATTERY, m.CHARGING):
        changes = []
        machine = m.ModeMachine(base_for=lambda: base, initial=state)
        machine.subscribe(lambda *a: changes.append(a))
        target = machine.fire(event, "test")
        want = m.TRANSITIONS[(state, event)]
        assert target == (base if want == m.BASE else want)
        assert machine.mode == target and machine.history[-1] == (state, event, target)
        assert bool(changes) == (state != target)
        if want != m.BASE:
            break


UNDECLARED = [(s, e) for s, e in itertools.product(m.STATES, m.EVENTS) if (s, e) not in m.TRANSITIONS]


@pytest.mark.parametrize("state, event", UNDECLARED)
def test_undeclared_transitions_are_refused(state, event):
    machine = m.ModeMachine(base_for=lambda: m.STANDBY, initial=state)
    with pytest.raises(m.TransitionError, match=f"'{event}' is not allowed in {state}"):
        machine.fire(event)
    assert machine.mode == state and not machine.history


def test_unknown_event_is_refused():
    with pytest.raises(m.TransitionError, match="unknown event 'explode'"):
        m.ModeMachine(base_for=lambda: m.STANDBY).fire("explode")


def test_every_state_is_reachable_and_has_a_way_out():
    targets = {t for t in m.TRANSITIONS.values()} | {m.STANDBY, m.LOW_BATTERY, m.CHARGING}
    assert set(m.STATES) <= targets
    for s in m.STATES:
        assert any(src == s for src, _ in m.TRANSITIONS), f"{s} is a dead end"
    assert not m.POLICY[m.SLEEP].camera and not m.POLICY[m.CRITICAL].camera
    assert not m.POLICY[m.LOW_BATTERY].video and not m.POLICY[m.HOT].camera


def test_docs_diagram_is_generated_from_the_table():
    from pathlib import Path
    doc = Path(__file__).resolve().parent.parent / "docs" / "modes.md"
    assert doc.read_text() == m.markdown(), "run: python -m glasses_firmware.firmware.tools.docgen"


def test_arbiter_priorities_preemption_and_sharing():
    arb = Arbiter()
    preempted = []
    journal = arb.acquire("journal", ["camera"], on_preempt=lambda: preempted.append("journal"))
    photo = arb.acquire("photo", ["camera"])
    assert preempted == ["journal"] and journal.released
    assert arb.owners("camera") == ["photo"]
    with pytest.raises(Busy, match="camera is in use by photo"):
        arb.acquire("journal", ["camera"])
    arb.release(photo)
    video = arb.acquire("video", ["camera", "microphones"])
    with pytest.raises(Busy, match="in use by video"):
        arb.acquire("photo", ["camera"])            # a photo never cuts a video
    meeting = arb.acquire("meeting", ["microphones"])  # the microphones are shared
    assert set(arb.owners("microphones")) == {"video", "meeting"}
    assert arb.suspended("wake_word") and "wake_word" in SUSPENDS["video"]
    arb.release(video)
    arb.release(meeting)
    assert not arb.suspended("wake_word")
    assert set(PRIORITY) >= {"video", "photo", "assistant", "meeting", "journal", "wake_word"}
    with pytest.raises(ValueError, match="unknown owner"):
        arb.acquire("toaster", ["camera"])
