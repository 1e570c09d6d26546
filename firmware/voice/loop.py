"""The voice loop: a declared table of states, events and transitions, like power/modes.py.

The segmenter, the buttons, the console and the turn itself produce events; `VoiceLoop.fire`
is the only way the loop's state changes. An event the current state does not declare is
ignored (a tap while the glasses are asleep, a late "answered" after a barge-in) and logged,
never an error: voice events arrive whenever people act. The diagram in docs/assistant.md
and docs/architecture.md is generated from these tables (`python -m glasses_firmware.firmware.tools.docgen`).
"""

import logging

from .. import statetable
from ..statetable import Machine

log = logging.getLogger("glasses.voice")

IDLE, WAKE, LISTEN, RECOGNIZE, RESPOND, SPEAK, FOLLOW_UP, CONVERSE = (
    "idle", "wake", "listen", "recognize", "respond", "speak", "follow_up", "converse")
STATES = (IDLE, WAKE, LISTEN, RECOGNIZE, RESPOND, SPEAK, FOLLOW_UP, CONVERSE)

# What each state means, for the log and the docs.
MEANING = {
    IDLE: "the mode allows no listening: microphones off",
    WAKE: "waiting for the wake word or a button",
    LISTEN: "collecting an utterance (voice activity decides where it ends)",
    RECOGNIZE: "command grammar, then speech recognition",
    RESPOND: "a device action, or the LLM answering (spoken while it is generated)",
    SPEAK: "the answer is complete; its last sentences are playing",
    FOLLOW_UP: "a few seconds listening without the wake word",
    CONVERSE: "conversation translation: every utterance is translated, no wake word",
}

EVENTS = {
    "mode_on": "the mode allows listening",
    "mode_off": "the mode forbids listening (sleep, critical battery)",
    "wake": "the wake word",
    "tap": "a tap on the action button",
    "ptt_down": "the action button held (push-to-talk)",
    "ptt_up": "the push-to-talk button released: the utterance ends with what was said",
    "pause": "a short pause in the utterance (a device command may be complete)",
    "utterance": "speech followed by enough silence",
    "no_speech": "nobody spoke before the timeout",
    "recognized": "the utterance is text and an intent",
    "ask": "a typed question (console `ask`)",
    "answered": "the answer is complete (spoken or still playing)",
    "spoken": "the last sentence of a voice turn has played",
    "done": "the last sentence of a typed turn has played",
    "barge_in": "the wake word or a button while the assistant thinks or speaks",
    "converse_on": "conversation translation is on (switched on, or a turn has played)",
    "converse_off": "conversation translation was switched off",
}

ACTIVE = (LISTEN, RECOGNIZE, RESPOND, SPEAK, FOLLOW_UP, CONVERSE)
TRANSITIONS: dict[tuple[str, str], str] = {(IDLE, "mode_on"): WAKE}
for _s in (WAKE,) + ACTIVE:
    TRANSITIONS[(_s, "mode_off")] = IDLE
for _s in (WAKE, FOLLOW_UP, LISTEN, CONVERSE):
    # Listening again restarts the utterance: a tap while listening starts afresh; while
    # translating, a tap asks the assistant something and the translating resumes after.
    TRANSITIONS.update({(_s, "wake"): LISTEN, (_s, "tap"): LISTEN, (_s, "ptt_down"): LISTEN})
for _s in (RECOGNIZE, RESPOND, SPEAK):
    TRANSITIONS[(_s, "barge_in")] = LISTEN
for _s in (WAKE, FOLLOW_UP, LISTEN, RECOGNIZE, RESPOND, SPEAK, CONVERSE):
    TRANSITIONS[(_s, "ask")] = RESPOND
# Translating goes on from wherever the loop waits; a turn ends in it instead of the
# follow-up window while translation is on.
for _s in (WAKE, FOLLOW_UP, SPEAK):
    TRANSITIONS[(_s, "converse_on")] = CONVERSE
TRANSITIONS.update({
    (LISTEN, "pause"): LISTEN,
    (LISTEN, "utterance"): RECOGNIZE,
    (LISTEN, "ptt_up"): LISTEN,           # the segmenter then ends the utterance
    (LISTEN, "no_speech"): WAKE,
    (FOLLOW_UP, "utterance"): RECOGNIZE,
    (FOLLOW_UP, "pause"): FOLLOW_UP,
    (FOLLOW_UP, "no_speech"): WAKE,
    (RECOGNIZE, "recognized"): RESPOND,
    (RESPOND, "answered"): SPEAK,
    (SPEAK, "spoken"): FOLLOW_UP,
    (SPEAK, "done"): WAKE,
    (CONVERSE, "utterance"): RECOGNIZE,
    (CONVERSE, "pause"): CONVERSE,
    (CONVERSE, "no_speech"): CONVERSE,   # a quiet moment in a conversation: keep listening
    (CONVERSE, "converse_off"): WAKE,
})


class VoiceLoop(Machine):
    """The loop's state; `fire(event, reason)` changes it by the table or ignores the event."""

    def __init__(self, initial: str = IDLE):
        super().__init__(TRANSITIONS, initial, log, "voice")
        self.ignored = 0

    def fire(self, event: str, reason: str = "") -> bool:
        """Apply `event`; False (and nothing changes) if this state does not declare it."""
        if event not in EVENTS:
            raise ValueError(f"unknown voice event '{event}'; one of: {', '.join(EVENTS)}")
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            self.ignored += 1
            log.info("voice: %s ignored in %s (%s)", event, self.state, reason or "no reason given")
            return False
        # Self-loops are told too: "pause" and "ptt_up" act without changing the state.
        self._move(event, target, reason, tell_self_loops=True)
        return True


def mermaid() -> str:
    return statetable.mermaid(TRANSITIONS, IDLE)


def markdown() -> str:
    """The diagram and the tables of states and events, for docs/assistant.md."""
    states = "\n".join(f"| `{s}` | {MEANING[s]} |" for s in STATES)
    events = "\n".join(f"| `{e}` | {what} |" for e, what in EVENTS.items())
    return (f"```mermaid\n{mermaid()}\n```\n\n| state | meaning |\n|---|---|\n{states}\n\n"
            f"| event | what happened |\n|---|---|\n{events}\n")
