"""`glasses simulate-day`: a scripted day on the sim board with the real firmware.

The firmware runs unchanged on virtual time (VirtualTimeLoop), the sim's power model
drains the emulated fuel gauge, and the day's script wears the glasses, asks the
assistant, takes photos and video, records a meeting and plays music at set times.
The report projects battery life for the scheduler and for the `always-on` baseline.

Stand-ins, stated where they are used: an assistant turn holds INTERACTIVE (SoC at
load) for its length with the speaker playing the answer's duration; music marks the
speaker as playing (the phone link that streams it is not built yet).
"""

import asyncio
import datetime as dt
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from glasses_firmware.drivers.clock import SimClock
from glasses_firmware.drivers.errors import ConfigError, GlassesError

from ..power import modes as m

PROFILES_DIR = Path(__file__).parent / "profiles"
ACTIONS = ("wear", "assistant", "photos", "video_s", "meeting_min", "music_min")
TURN_LISTEN_S, TURN_ANSWER_S = 4.0, 6.0
SERIES_STEP_S = 120.0


@dataclass(frozen=True)
class Step:
    t_s: float          # seconds since midnight
    action: str
    value: object


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    start_s: float
    end_s: float
    battery_percent: float
    steps: tuple[Step, ...]

    @property
    def hours(self) -> float:
        return (self.end_s - self.start_s) / 3600


def _clock_time(text, where: str) -> float:
    try:
        h, mnt = str(text).split(":")
        value = int(h) * 3600 + int(mnt) * 60
    except ValueError:
        raise ConfigError(f"{where}: time must be \"HH:MM\", got {text!r}") from None
    if not 0 <= value <= 24 * 3600:
        raise ConfigError(f"{where}: time {text} is outside the day")
    return float(value)


def load_profile(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILES_DIR / f"{name_or_path}.toml"
        if not path.exists():
            names = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
            raise ConfigError(f"unknown profile '{name_or_path}'; choose one of: {names}, "
                              "or give a path to a .toml profile")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the profile: {e}") from None
    top = {"name", "description", "start", "end", "battery_percent", "at"}
    for key in data:
        if key not in top:
            raise ConfigError(f"{path}: unknown key '{key}'; expected one of: {', '.join(sorted(top))}")
    steps = []
    for i, entry in enumerate(data.get("at", [])):
        where = f"{path}: at[{i}]"
        if "time" not in entry:
            raise ConfigError(f"{where}: missing 'time'")
        actions = [k for k in entry if k != "time"]
        if len(actions) != 1 or actions[0] not in ACTIONS:
            raise ConfigError(f"{where}: needs exactly one of {', '.join(ACTIONS)}, got {actions}")
        action, value = actions[0], entry[actions[0]]
        ok = isinstance(value, bool) if action == "wear" else \
            isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        if not ok:
            raise ConfigError(f"{where}: '{action}' has a bad value {value!r}")
        steps.append(Step(_clock_time(entry["time"], where), action, value))
    start = _clock_time(data.get("start", "06:00"), f"{path}: start")
    end = _clock_time(data.get("end", "22:00"), f"{path}: end")
    if end <= start:
        raise ConfigError(f"{path}: end must be after start")
    return Profile(data.get("name", path.stem), data.get("description", ""), start, end,
                   float(data.get("battery_percent", 100)), tuple(sorted(steps, key=lambda s: s.t_s)))


class DayRun:
    """One simulated day under one power plan."""

    def __init__(self, config, profile: Profile, plan: str, data_dir: Path, progress=None):
        self.config, self.profile, self.plan = config, profile, plan
        self.data_dir = data_dir
        self.progress = progress
        midnight = dt.datetime(2026, 6, 1).timestamp()
        self.clock = SimClock(realtime=False, start_wall=midnight + profile.start_s)
        self.series: list[tuple[float, float, str]] = []   # (hour of day, percent, mode)
        self.refused = 0
        self.empty_at_h = None
        self.energy_at_empty = None

    def now_s(self) -> float:
        return self.profile.start_s + self.clock.monotonic()

    async def until(self, t_s: float) -> None:
        if t_s > self.now_s():
            await self.clock.asleep(t_s - self.now_s())

    async def run(self) -> dict:
        from ..app import Firmware
        fw = Firmware(self.config, self.data_dir, self.clock, plan=self.plan)
        self.fw = fw
        fw.board.sim.set_battery(self.profile.battery_percent)
        tasks = [asyncio.create_task(fw.sample_forever()), asyncio.create_task(self._watch())]
        try:
            for step in self.profile.steps:
                await self.until(step.t_s)
                await self._do(step)
            await self.until(self.profile.end_s)
            fw.sample()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await fw.shutdown()
        return self._report()

    async def _watch(self) -> None:
        last_hour = None
        while True:
            pct = self.fw.board.sim.fuel_gauge.percent
            hour = self.now_s() / 3600
            self.series.append((hour, pct, self.fw.mode))
            if self.empty_at_h is None and self.fw.mode == m.CRITICAL:
                self.empty_at_h = hour - self.profile.start_s / 3600
                self.energy_at_empty = self.fw.energy.total_wh
            if self.progress and int(hour) != last_hour:
                last_hour = int(hour)
                self.progress(f"{self.plan}: {last_hour:02d}:00  battery {pct:5.1f} %  {self.fw.mode}")
            await self.clock.asleep(SERIES_STEP_S)

    async def _do(self, step: Step) -> None:
        fw, sim = self.fw, self.fw.board.sim
        if step.action == "wear":
            sim.set_worn(step.value)
            fw.sample()
        elif step.action == "assistant":
            for _ in range(int(step.value)):
                if not fw.modes.allowed("wake"):
                    self.refused += 1
                    continue
                fw.modes.fire("wake", "simulated assistant turn")
                await self.clock.asleep(TURN_LISTEN_S)
                fw.board.speaker.mark_phone_audio(True)      # the answer being spoken
                await self.clock.asleep(TURN_ANSWER_S)
                fw.board.speaker.mark_phone_audio(False)
                if fw.mode == m.INTERACTIVE:
                    fw.modes.fire("turn_done", "answer spoken")
        elif step.action == "photos":
            for _ in range(int(step.value)):
                try:
                    await fw.capture.photo()
                except GlassesError:
                    self.refused += 1
                await self.clock.asleep(5)
        elif step.action == "video_s":
            try:
                await fw.capture.start_video(float(step.value))
                await self.clock.asleep(float(step.value) + 1)
                await fw.capture.stop_video()
            except GlassesError:
                self.refused += 1
        elif step.action == "meeting_min":
            try:
                await fw.recorder.start()
                await self.clock.asleep(60 * float(step.value))
                await fw.recorder.stop()
            except GlassesError:
                self.refused += 1
        elif step.action == "music_min":
            fw.board.speaker.mark_phone_audio(True)
            await self.clock.asleep(60 * float(step.value))
            fw.board.speaker.mark_phone_audio(False)

    def _report(self) -> dict:
        e = self.fw.energy
        cfg = self.config.battery
        capacity_wh = cfg.capacity_mah / 1000 * cfg.nominal_v
        usable_wh = capacity_wh * (1 - cfg.critical_percent / 100)
        elapsed_h = self.empty_at_h if self.empty_at_h is not None else self.profile.hours
        used_wh = self.energy_at_empty if self.energy_at_empty is not None else e.total_wh
        avg_w = used_wh / elapsed_h
        return {
            "plan": self.plan,
            "hours": round(usable_wh / avg_w, 2),
            "average_w": round(avg_w, 3),
            "energy_wh": round(e.total_wh, 3),
            "energy_wh_by_mode": {k: round(v, 3) for k, v in sorted(e.by_mode.items())},
            "energy_wh_by_feature": {k: round(v, 3) for k, v in sorted(e.by_feature.items())},
            "hours_by_mode": {k: round(v / 3600, 3) for k, v in sorted(e.seconds_by_mode.items())},
            "battery_end_percent": round(self.fw.board.sim.fuel_gauge.percent, 1),
            "battery_empty_after_h": None if self.empty_at_h is None else round(self.empty_at_h, 2),
            "photos": self.fw.capture.photos_taken,
            "refused": self.refused,
        }


def simulate(config, profile: Profile, plan: str, progress=None) -> tuple[dict, list]:
    from ..virtualtime import VirtualTimeLoop
    with tempfile.TemporaryDirectory(prefix="glasses-day-") as tmp:
        day = DayRun(config, profile, plan, Path(tmp), progress)
        with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(day.clock)) as runner:
            report = runner.run(day.run())
    return report, day.series


def run_day(config, profile_name: str, plan: str = "scheduler", plot: str | None = None,
            quiet: bool = False) -> dict:
    profile = load_profile(profile_name)
    t0 = time.monotonic()

    def progress(text):
        if not quiet:
            print(f"  {text}", file=sys.stderr, flush=True)

    report, series = simulate(config, profile, plan, progress)
    baseline, base_series = simulate(config, profile, "always-on", progress)
    report.update({
        "profile": profile.name, "board": config.name, "day_hours": round(profile.hours, 2),
        "baseline_hours": baseline["hours"],
        "ratio": round(report["hours"] / baseline["hours"], 2),
        "baseline": baseline,
        "wall_s": round(time.monotonic() - t0, 2),
    })
    if plot:
        from .dayplot import plot_day
        plot_day(plot, profile, series, base_series, report)
    return report
