"""Declared state machines: a table of (state, event) -> next state, one way to move.

The mode machine (power/modes.py) and the voice loop (voice/loop.py) are both such tables.
This is what they share: the move itself (checked against the table, logged with its
reason, kept in the history, told to subscribers in order) and the Mermaid diagram the docs
are generated from. What an undeclared event means differs: a refused mode change is an
error, a late voice event is ignored; each machine's `fire` says which.
"""

import logging


class Machine:
    """The current `state` of a declared table; `_move` is the only way it changes."""

    def __init__(self, transitions: dict[tuple[str, str], str], initial: str,
                 log: logging.Logger, label: str):
        self.transitions = transitions
        self.state = initial
        self.history: list[tuple[str, str, str]] = []
        self._log, self._label = log, label
        self._listeners: list = []

    def subscribe(self, callback) -> None:
        """`callback(old, new, event, reason)` after every move, in subscription order."""
        self._listeners.append(callback)

    def allowed(self, event: str) -> bool:
        return (self.state, event) in self.transitions

    def declared_here(self) -> list[str]:
        return [e for (s, e) in self.transitions if s == self.state]

    def _move(self, event: str, target: str, reason: str, tell_self_loops: bool) -> None:
        old, self.state = self.state, target
        self.history.append((old, event, target))
        self._log.info("%s %s -> %s on %s (%s)", self._label, old, target, event,
                       reason or "no reason given")
        if old != target or tell_self_loops:
            for listener in list(self._listeners):
                listener(old, target, event, reason)


def mermaid(transitions: dict[tuple[str, str], str], initial: str, shown=lambda dst: dst) -> str:
    """The state diagram of a table as Mermaid text (`shown` renames pseudo-targets)."""
    lines = ["stateDiagram-v2", f"    [*] --> {initial}"]
    for (src, event), dst in sorted(transitions.items()):
        lines.append(f"    {src} --> {shown(dst)} : {event}")
    return "\n".join(lines)
