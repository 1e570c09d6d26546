"""Energy accounting by mode and by feature, from the board's power table."""

from collections import defaultdict

from drivers.power import PowerTable


class EnergyMeter:
    """Integrates the board's draw; `tick()` before anything changes what is powered."""

    def __init__(self, fw):
        self.fw = fw
        self.table = PowerTable(fw.config.power)
        self.by_mode: dict[str, float] = defaultdict(float)
        self.by_feature: dict[str, float] = defaultdict(float)
        self.seconds_by_mode: dict[str, float] = defaultdict(float)
        self._last = fw.clock.monotonic()
        self.watts = 0.0

    def feature(self) -> str:
        fw = self.fw
        mode = fw.machine.mode
        if fw.capture.recording_video:
            return "video"
        if mode == "CAPTURE":
            return "photo"
        if mode == "INTERACTIVE":
            return "assistant"
        if fw.recorder.running:
            return "meeting"
        if fw.board.media_playing:
            return "music"
        return "sleep" if mode in ("SLEEP", "CRITICAL") else "standby"

    def tick(self) -> None:
        now = self.fw.clock.monotonic()
        dt = max(0.0, now - self._last)
        self._last = now
        self.watts = self.table.total_w(self.fw.board.component_states())
        wh = self.watts * dt / 3600
        mode = self.fw.machine.mode
        self.by_mode[mode] += wh
        self.seconds_by_mode[mode] += dt
        self.by_feature[self.feature()] += wh

    @property
    def total_wh(self) -> float:
        return sum(self.by_mode.values())
