"""Operating modes: a declared table of states, events and transitions.

Every change goes through `ModeMachine.fire`, which checks the table, logs the reason
and emits an event; anything not in the table is refused with TransitionError. What
each mode may power is declared in POLICY. `docs/modes.md` is generated from these
tables (`python -m glasses_firmware.firmware.tools.docgen`).

Activity modes (INTERACTIVE, CAPTURE, RECORDING) end with an event whose target is
BASE: the machine returns to the base mode the conditions call for (STANDBY,
LOW_BATTERY or CHARGING), so "done" needs one declared row, not one per base mode.
"""

import logging
from dataclasses import dataclass

from glasses_firmware.drivers.errors import GlassesError

from .. import statetable
from ..statetable import Machine

log = logging.getLogger("glasses.modes")

SLEEP, STANDBY, INTERACTIVE, CAPTURE, RECORDING = "SLEEP", "STANDBY", "INTERACTIVE", "CAPTURE", "RECORDING"
LOW_BATTERY, CRITICAL, CHARGING, HOT = "LOW_BATTERY", "CRITICAL", "CHARGING", "HOT"
STATES = (SLEEP, STANDBY, INTERACTIVE, CAPTURE, RECORDING, LOW_BATTERY, CRITICAL, CHARGING, HOT)
BASE = "BASE"  # pseudo-target: STANDBY, LOW_BATTERY or CHARGING, from the conditions

# Inputs, in one place so tests and the diagram see the same names.
EVENTS = ("worn", "unworn", "wake", "turn_done", "capture", "capture_done", "record_start",
          "record_stop", "battery_low", "battery_ok", "battery_critical", "charger_on",
          "charger_off", "hot", "cool")

_BASES = (STANDBY, LOW_BATTERY, CHARGING)
TRANSITIONS: dict[tuple[str, str], str] = {}
for _b in _BASES:
    TRANSITIONS.update({
        (_b, "unworn"): SLEEP, (_b, "wake"): INTERACTIVE, (_b, "capture"): CAPTURE,
        (_b, "record_start"): RECORDING, (_b, "battery_critical"): CRITICAL, (_b, "hot"): HOT,
    })
TRANSITIONS.update({
    (STANDBY, "battery_low"): LOW_BATTERY, (STANDBY, "charger_on"): CHARGING,
    (LOW_BATTERY, "battery_ok"): STANDBY, (LOW_BATTERY, "charger_on"): CHARGING,
    (CHARGING, "charger_off"): BASE,
    (SLEEP, "worn"): BASE,
    (SLEEP, "battery_critical"): CRITICAL, (SLEEP, "hot"): HOT,
    (INTERACTIVE, "turn_done"): BASE, (INTERACTIVE, "capture"): CAPTURE,
    (INTERACTIVE, "record_start"): RECORDING, (INTERACTIVE, "unworn"): SLEEP,
    (INTERACTIVE, "battery_critical"): CRITICAL, (INTERACTIVE, "hot"): HOT,
    (CAPTURE, "capture_done"): BASE, (CAPTURE, "unworn"): SLEEP,
    (CAPTURE, "battery_critical"): CRITICAL, (CAPTURE, "hot"): HOT,
    # A meeting keeps recording through a question or a photo: those are handled
    # without leaving RECORDING (the arbiter shares the microphones, lends the camera).
    (RECORDING, "record_stop"): BASE, (RECORDING, "battery_critical"): CRITICAL,
    (RECORDING, "hot"): HOT, (RECORDING, "unworn"): RECORDING,
    (HOT, "cool"): BASE, (HOT, "battery_critical"): CRITICAL, (HOT, "unworn"): SLEEP,
    (CRITICAL, "charger_on"): CHARGING,
})


@dataclass(frozen=True)
class Policy:
    """What a mode may power. `soc` is the SoC power state for the power model."""

    camera: bool        # photos allowed
    video: bool         # video allowed
    listening: bool     # wake word and buttons live
    llm: bool           # assistant answers with the local LLM
    soc: str            # halt | idle | light | load
    idle_timeout_s: float   # an assistant turn (INTERACTIVE) on top of this base mode ends
                            # after this long without speech or a button: the shorter of
                            # INTERACTIVE's and the base's; 0 where no turn can be open


POLICY = {
    SLEEP: Policy(camera=False, video=False, listening=False, llm=False, soc="halt", idle_timeout_s=0),
    STANDBY: Policy(True, True, True, True, "idle", 60),
    INTERACTIVE: Policy(True, True, True, True, "load", 30),
    CAPTURE: Policy(True, True, True, False, "light", 0),
    RECORDING: Policy(True, False, True, True, "light", 0),
    LOW_BATTERY: Policy(True, False, True, True, "idle", 20),
    CRITICAL: Policy(False, False, False, False, "halt", 0),
    CHARGING: Policy(True, True, True, True, "idle", 60),
    HOT: Policy(False, False, True, False, "idle", 0),
}


class TransitionError(GlassesError, ValueError):
    """An event the table does not allow in the current mode."""


class ModeMachine(Machine):
    """The current mode; `fire(event, reason)` is the only way to change it.

    Services see it through the ModeGate port: `mode` and `policy` (what the mode allows
    now), `allowed(event)`, `fire(event, reason)`, and `subscribe(callback)` for changes.
    """

    def __init__(self, base_for, initial: str = STANDBY):
        super().__init__(TRANSITIONS, initial, log, "mode")
        self._base_for = base_for      # () -> the base mode the conditions call for

    @property
    def mode(self) -> str:
        return self.state

    @property
    def policy(self) -> Policy:
        return POLICY[self.state]

    def base_mode(self) -> str:
        return self._base_for()

    def fire(self, event: str, reason: str = "") -> str:
        """Move by the table; TransitionError if the event is unknown or not allowed here."""
        if event not in EVENTS:
            raise TransitionError(f"unknown event '{event}'; one of: {', '.join(EVENTS)}")
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            raise TransitionError(f"'{event}' is not allowed in {self.state}; allowed here: "
                                  f"{', '.join(self.declared_here())}")
        if target == BASE:
            target = self._base_for()
        self._move(event, target, reason, tell_self_loops=False)
        return target


def mermaid() -> str:
    """The state diagram of TRANSITIONS as Mermaid text."""
    return statetable.mermaid(TRANSITIONS, STANDBY,
                              shown=lambda dst: "base_mode" if dst == BASE else dst)


def markdown() -> str:
    rows = "\n".join(f"| {s} | {'yes' if p.camera else 'no'} | {'yes' if p.video else 'no'} | "
                     f"{'yes' if p.listening else 'no'} | {'yes' if p.llm else 'no'} | {p.soc} | "
                     f"{p.idle_timeout_s:g} |" for s, p in POLICY.items())
    return (f"# Operating modes\n\nGenerated from `firmware/power/modes.py` by "
            f"`python -m glasses_firmware.firmware.tools.docgen`; do not edit by hand.\n\n"
            f"`base_mode` is STANDBY, LOW_BATTERY or CHARGING, whichever the battery and "
            f"charger call for.\n\n```mermaid\n{mermaid()}\n```\n\n"
            f"| mode | photo | video | listening | LLM | SoC | idle timeout s |\n"
            f"|---|---|---|---|---|---|---|\n{rows}\n\n"
            f"Where each column is enforced: photo and video in `firmware/capture/capture.py` "
            f"(before the camera starts; a running video stops when the mode forbids it), "
            f"listening in `firmware/voice/assistant.py` (the voice loop goes idle, the "
            f"microphones off), LLM in `firmware/voice/conversation.py` (refused with a spoken "
            f"reason, a running answer cancelled), SoC in `firmware/power/manager.py`, the idle "
            f"timeout (of an assistant turn on top of the mode) in "
            f"`firmware/power/conditions.py`.\n")
