"""Buttons with gestures: click, double, long, plus raw press and release.

Edges come from a gpiozero Button (any pin factory) and are stamped with the injected
clock; one thread per button resolves timeouts (the double-click window, the long-press
threshold) on that clock, so the sim's virtual time gives the same gestures.
"""

import queue
import threading

GESTURES = ("press", "release", "click", "double", "long")
EPS_S = 1e-9  # deadlines computed in float must count as reached


class GestureDetector:
    """Pure state machine: feed edges and time, get gestures. No threads, no I/O."""

    def __init__(self, long_press_s: float = 0.8, double_window_s: float = 0.35):
        self.long_press_s = long_press_s
        self.double_window_s = double_window_s
        self._down_at = None       # time of the current press, while held
        self._long_sent = False
        self._clicks = 0           # releases waiting for the double window to close
        self._released_at = None

    @property
    def deadline(self) -> float | None:
        """Clock time at which `expire` may produce a gesture, or None."""
        if self._down_at is not None and not self._long_sent:
            return self._down_at + self.long_press_s
        if self._clicks:
            return self._released_at + self.double_window_s
        return None

    def press(self, t: float) -> list[str]:
        out = self.expire(t)
        self._down_at, self._long_sent = t, False
        return out + ["press"]

    def release(self, t: float) -> list[str]:
        out = self.expire(t)
        if self._down_at is None:
            return out  # a release without a press (e.g. at start-up): ignore
        self._down_at = None
        out.append("release")
        if self._long_sent:
            return out
        self._clicks += 1
        self._released_at = t
        if self._clicks == 2:
            self._clicks = 0
            out.append("double")
        return out

    def expire(self, t: float) -> list[str]:
        out = []
        if self._down_at is not None and not self._long_sent and t - self._down_at >= self.long_press_s - EPS_S:
            self._long_sent = True
            self._clicks = 0
            out.append("long")
        if self._clicks and self._down_at is None and t - self._released_at >= self.double_window_s - EPS_S:
            self._clicks = 0
            out.append("click")
        return out


class GestureButton:
    """A named button that reports gestures through `on_gesture(name, gesture)`.

    `device` is a gpiozero Button (pressed = active). Callbacks run on this object's
    thread; the firmware hands them to its loop with call_soon_threadsafe.
    """

    def __init__(self, name, device, clock, on_gesture=None, long_press_s=0.8, double_window_s=0.35):
        self.name = name
        self.device = device
        self.clock = clock
        self.on_gesture = on_gesture
        self.detector = GestureDetector(long_press_s, double_window_s)
        self._edges: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._closed = threading.Event()
        device.when_pressed = lambda: self._edge("press")
        device.when_released = lambda: self._edge("release")
        self._thread = threading.Thread(target=self._run, name=f"button-{name}", daemon=True)
        self._thread.start()

    @property
    def is_pressed(self) -> bool:
        return bool(self.device.is_pressed)

    def _edge(self, kind: str) -> None:
        self._edges.put((kind, self.clock.monotonic()))
        self._wake.set()

    def _run(self) -> None:
        while not self._closed.is_set():
            deadline = self.detector.deadline
            if deadline is None:
                self._wake.wait(1.0)  # the timeout only re-checks `_closed`
            else:
                self.clock.sleep(deadline - self.clock.monotonic(), stop=self._wake)
            self._wake.clear()
            gestures = []
            while not self._edges.empty():
                kind, t = self._edges.get()
                gestures += getattr(self.detector, kind)(t)
            gestures += self.detector.expire(self.clock.monotonic())
            for g in gestures:
                if self.on_gesture is not None:
                    self.on_gesture(self.name, g)

    def probe(self) -> str:
        return f"pin {self.device.pin}, {'pressed' if self.is_pressed else 'released'}"

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=2.0)
        if self._thread.is_alive():
            raise RuntimeError(f"button {self.name}: gesture thread did not stop within 2 s")
        self.device.close()
