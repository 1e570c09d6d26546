"""The voice loop's table: every declared transition, undeclared events ignored, the diagram."""

import itertools
from pathlib import Path

import pytest

from glasses_firmware.firmware.voice import loop as v

DOC = Path(__file__).resolve().parent.parent / "docs" / "assistant.md"


@pytest.mark.parametrize("state, event", sorted(v.TRANSITIONS))
def test_every_declared_transition(state, event):
    loop = v.VoiceLoop(initial=state)
    seen = []
    loop.subscribe(lambda *change: seen.append(change))
    assert loop.fire(event, "test") is True
    assert loop.state == v.TRANSITIONS[(state, event)]
    assert seen == [(state, loop.state, event, "test")] and loop.history[-1] == (state, event, loop.state)


UNDECLARED = [(s, e) for s, e in itertools.product(v.STATES, v.EVENTS) if (s, e) not in v.TRANSITIONS]


@pytest.mark.parametrize("state, event", UNDECLARED)
def test_undeclared_events_are_ignored_not_errors(state, event):
    loop = v.VoiceLoop(initial=state)
    assert loop.fire(event, "late") is False
    assert loop.state == state and not loop.history and loop.ignored == 1


def test_unknown_event_is_a_bug():
    with pytest.raises(ValueError, match="unknown voice event 'sing'"):
        v.VoiceLoop().fire("sing")


def test_every_state_reachable_with_a_way_out_and_mode_off_always_wins():
    reached = {v.IDLE} | set(v.TRANSITIONS.values())
    assert reached == set(v.STATES)
    for state in v.STATES:
        assert any(src == state and dst != state for (src, _), dst in v.TRANSITIONS.items()), state
        if state != v.IDLE:
            assert v.TRANSITIONS[(state, "mode_off")] == v.IDLE
    # While thinking or speaking, the wake word or a button interrupts and listens.
    for state in (v.RECOGNIZE, v.RESPOND, v.SPEAK):
        assert v.TRANSITIONS[(state, "barge_in")] == v.LISTEN
    # A turn that heard nothing returns to waiting for the wake word.
    assert v.TRANSITIONS[(v.LISTEN, "no_speech")] == v.TRANSITIONS[(v.FOLLOW_UP, "no_speech")] == v.WAKE


def test_docs_diagrams_are_generated_from_the_tables():
    from glasses_firmware.firmware.tools import docgen
    assert docgen.stale() == [], "run: python -m glasses_firmware.firmware.tools.docgen"
    # docs/architecture.md's "State machines" table lists every machine docgen draws.
    section = (docgen.DOCS / "architecture.md").read_text().split("## State machines\n\n", 1)[1]
    table = section.split("\n\n")[1].splitlines()[2:]
    assert [row.split("|")[-2].strip(" `") for row in table] == list(docgen.DIAGRAMS)
    assert v.mermaid() in DOC.read_text()
