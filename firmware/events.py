"""Asynchronous events for the console (`EVT ...` lines) and the in-memory log tail."""

import collections
import logging


class EventBus:
    """Fan-out of one-line events to subscribers (console sessions with `events on`)."""

    def __init__(self):
        self._subscribers: list = []
        self.recent = collections.deque(maxlen=200)

    def subscribe(self, callback) -> None:
        self._subscribers.append(callback)

    def unsubscribe(self, callback) -> None:
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def emit(self, kind: str, detail: str = "") -> None:
        """Call on the loop thread. `kind` is one word: mode, capture, fault, button, ..."""
        # One printable line: transcripts of noise can hold anything.
        text = "".join(ch if ch.isprintable() else " " for ch in f"{kind} {detail}".strip())
        self.recent.append(text)
        logging.getLogger("glasses.events").info("%s", text)
        for callback in list(self._subscribers):
            callback(text)


class LogTail(logging.Handler):
    """Keeps the last lines of the log for the console's `log` command."""

    def __init__(self, capacity: int = 500):
        super().__init__()
        self.lines = collections.deque(maxlen=capacity)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                            "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record).replace("\n", " | "))

    def tail(self, n: int) -> list[str]:
        return list(self.lines)[-n:] if n > 0 else []
