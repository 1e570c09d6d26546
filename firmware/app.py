"""The firmware process: bring up the board, run the asyncio loop, shut down cleanly."""

import asyncio
import functools
import logging
import logging.handlers
import signal
from pathlib import Path

from drivers.bringup import Board
from drivers.errors import GlassesError

from . import __version__, notify
from . import modes as m
from .arbiter import Arbiter
from .assistant import Assistant
from .audio_hub import AudioHub
from .capture import Capture
from .cues import Cues
from .energy import EnergyMeter
from .events import EventBus, LogTail
from .monitor import Monitor
from .recorder import Recorder
from .supervisor import Conditions, Supervisor

log = logging.getLogger("glasses")

DATA_SUBDIRS = ("photos", "videos", "recordings", "notes", "logs")
SAMPLE_PERIOD_S = 5.0
BOOT_S = 25.0  # a CM5 from halt to a running firmware (Lite image, measured range 15-30 s)


def prepare_data_dir(data_dir: Path) -> None:
    for sub in DATA_SUBDIRS:
        (data_dir / sub).mkdir(parents=True, exist_ok=True)


def setup_logging(data_dir: Path, tail: LogTail) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    file = logging.handlers.RotatingFileHandler(data_dir / "logs" / "glasses.log",
                                                maxBytes=2_000_000, backupCount=3)
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file)
    root.addHandler(tail)


class Firmware:
    """The running application: owns the board, the modes and the services."""

    version = __version__

    def __init__(self, config, data_dir: Path, clock, log_tail: LogTail | None = None,
                 models_dir=None, policy: str = "scheduler"):
        self.config = config
        self.data_dir = Path(data_dir)
        prepare_data_dir(self.data_dir)
        self.clock = clock
        self.log_tail = log_tail or LogTail()
        self.models_dir = models_dir
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.lifecycle = "starting"
        # Two supervised workers: the voice worker (wake word, VAD, command grammar, TTS)
        # answers within milliseconds even while the model worker (LLM, ASR) is busy
        # generating, so listening, barge-in and the first spoken sentence never queue
        # behind a whole answer.
        self.worker = self.voice = None
        if models_dir is not None:
            from .worker import InferenceClient
            self.worker = InferenceClient(models_dir, threads=config.inference.threads,
                                          preload=("llm", "asr"))
            self.voice = InferenceClient(models_dir, threads=1,
                                         preload=("wake", "vad", "commands", "tts"))
        self.events = EventBus()
        self.board = Board(config, self.data_dir, clock, on_gesture=self._from_thread(self._gesture))
        self.board.imu.int1.when_activated = self._from_thread(self._imu_wake)
        self.monitor = Monitor(self.board, clock, self.events)
        self.arbiter = Arbiter(self.events)
        self.machine = m.ModeMachine(base_for=lambda: self.supervisor.base_mode(),
                                     on_change=self._mode_changed)
        self.supervisor = Supervisor(config, self.machine, policy)
        self.cues = Cues(self.board.speaker)
        self.capture = Capture(self)
        self.recorder = Recorder(self)
        self.audio = AudioHub(self)
        self.assistant = Assistant(self)
        self.energy = EnergyMeter(self)
        clock_listeners = getattr(clock, "listeners", None)
        if isinstance(clock_listeners, list):
            clock_listeners.append(self.energy.tick)
        self.started_at = clock.monotonic()
        self._boot_until = 0.0
        self._active_at = self.started_at

    @property
    def mode(self) -> str:
        return self.machine.mode

    @property
    def worker_state(self) -> str:
        return self.worker.state if self.worker is not None else "not_started"

    async def start_worker(self) -> None:
        """Start the inference workers in the background; their state shows in `status`."""
        if self.machine.policy.listening:
            self.assistant.listener.start()
        for name, client in (("voice", self.voice), ("worker", self.worker)):
            if client is None:
                continue
            try:
                await client.start()
                self.events.emit("worker", f"{name} ready")
            except GlassesError as e:
                self.events.emit("fault", f"{name} worker {e}")

    def _from_thread(self, fn):
        # Device callbacks run on driver threads: they only hand over to the loop.
        return lambda *args: self.loop.call_soon_threadsafe(fn, *args)

    def _gesture(self, button: str, gesture: str) -> None:
        if gesture in ("click", "double", "long"):
            self.events.emit("button", f"{button} {gesture}")
        self.touch()
        self.assistant.gesture(button, gesture)
        if button == "capture" and gesture == "click" and self.machine.policy.camera:
            self.loop.create_task(self._button_photo())

    async def _button_photo(self) -> None:
        try:
            await self.capture.photo()
        except GlassesError as e:
            self.events.emit("capture", f"button photo refused: {e}")

    def _imu_wake(self) -> None:
        self.sample()

    def sample(self):
        """Read the sensors now and let the supervisor act on them (loop thread)."""
        self._expire_interactive()
        snap = self.monitor.sample()
        self.energy.tick()
        g = snap.gauge
        self.supervisor.update(Conditions(
            worn=self.monitor.worn, charging=self.monitor.charging,
            percent=g.percent if g else self.supervisor.conditions.percent,
            temperature_c=self.monitor.temperature_c))
        return snap

    def interactive_timeout_s(self) -> float:
        """How long an assistant turn may sit idle: shorter when the battery is low."""
        base = self.supervisor.base_mode()
        return min(m.POLICY[m.INTERACTIVE].idle_timeout_s, m.POLICY[base].idle_timeout_s)

    def touch(self) -> None:
        """Note user activity (speech, a button): restarts the idle timeout."""
        self._active_at = self.clock.monotonic()

    def _expire_interactive(self) -> None:
        if self.machine.mode == m.INTERACTIVE and \
                self.clock.monotonic() - self._active_at > self.interactive_timeout_s():
            self.machine.fire("turn_done", "idle timeout")

    def _mode_changed(self, old: str, new: str, event: str, reason: str) -> None:
        self.energy.tick()  # the time so far belongs to the old mode
        self._active_at = self.clock.monotonic()
        self.assistant.mode_changed(new)
        self.events.emit("mode", f"{new} {reason}".strip())
        policy = m.POLICY[new]
        soc = self.board.soc
        if policy.soc == "halt":
            self.loop.create_task(self._power_down(new))
            return
        if soc.halted:
            # Waking from halt is a boot: charge it at full load before the mode's level.
            soc.wake()
            soc.set_level("load")
            self._boot_until = self.clock.monotonic() + BOOT_S
            self.loop.call_later(BOOT_S, self._settle_soc)
        elif not self._booting():
            soc.set_level(policy.soc)
        if self.supervisor.policy == "always-on":
            return
        if not policy.video and self.capture.recording_video:
            self.loop.create_task(self.capture.stop_video(f"{new} mode"))

    def _booting(self) -> bool:
        return self.board.soc.level == "load" and self._boot_until > self.clock.monotonic()

    def _settle_soc(self) -> None:
        policy = m.POLICY[self.machine.mode]
        if policy.soc != "halt" and not self.board.soc.halted:
            self.board.soc.set_level(policy.soc)

    async def _power_down(self, mode: str) -> None:
        """SLEEP and CRITICAL: close every file, then halt (RTC or wear/button wake).

        Each step runs even if one before it failed: a camera fault must not leave a
        meeting recording open when the battery dies.
        """
        steps = [("video", self.capture.close_all(f"{mode} mode"))]
        if mode == m.CRITICAL:
            steps.insert(0, ("recording", self.recorder.stop("battery critical")))
        steps += [("camera", self.run_blocking(self.board.camera.stop)),
                  ("microphones", self.run_blocking(self.board.microphones.stop))]
        for name, step in steps:
            try:
                await step
            except GlassesError as e:
                log.warning("power down: %s: %s", name, e)
                self.events.emit("fault", f"{name} while powering down: {e}")
        self.board.capture_led.off()
        if self.machine.mode == mode:
            self.events.emit("power", f"halt ({mode})")
            self.board.soc.halt(None)

    async def run_blocking(self, fn, *args):
        """Run a blocking call (device I/O, subprocesses) off the loop."""
        return await self.loop.run_in_executor(None, functools.partial(fn, *args))

    def models_info(self) -> list[dict]:
        """One row per model in the manifest (blocking: hashes files)."""
        if self.models_dir is None:
            return []
        from models.manifest import load
        from models.verify import verify_all
        return verify_all(load(self.models_dir))

    async def sample_forever(self) -> None:
        while True:
            try:
                self.sample()
            except GlassesError as e:
                log.warning("sampling failed: %s", e)
            await self.clock.asleep(SAMPLE_PERIOD_S)

    def stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            log.info("stopping: %s", reason)
            self.lifecycle = "stopping"
            self.stopping.set()

    async def shutdown(self) -> None:
        self.assistant.interrupt()
        await self.audio.close()
        await self.capture.close_all("shutting down")
        await self.recorder.stop("shutting down")
        for client in (self.voice, self.worker):
            if client is not None:
                await client.stop()
        self.energy.tick()
        listeners = getattr(self.clock, "listeners", None)
        if isinstance(listeners, list) and self.energy.tick in listeners:
            listeners.remove(self.energy.tick)
        self.board.close()


async def serve(fw: Firmware, console: str) -> int:
    from .transports import open_console
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, fw.stop, signal.Signals(sig).name)
    con = None
    tasks = [asyncio.create_task(fw.sample_forever(), name="monitor"),
             asyncio.create_task(fw.start_worker(), name="worker-start"),
             asyncio.create_task(notify.keep_watchdog_fed(), name="watchdog")]
    try:
        con = open_console(fw, console)
        fw.board.status_led.blink()
        fw.lifecycle = "running"
        notify.notify(f"READY=1\nSTATUS=running on {fw.config.name}")
        log.info("glasses %s running on board %s, data in %s", __version__, fw.config.name, fw.data_dir)
        if console != "stdio":
            print(f"glasses {__version__}: running on board {fw.config.name}, data in {fw.data_dir}"
                  f"{', console at ' + console if console not in ('none', 'auto') else ''}; "
                  "Ctrl-C to stop", flush=True)
        await fw.stopping.wait()
        notify.notify("STOPPING=1")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if con is not None:
            con.close()
        await fw.shutdown()
    log.info("stopped cleanly")
    return 0


def run_firmware(config, data_dir: Path, clock, console: str = "none", speed: str = "1",
                 models_dir=None) -> int:
    from .vloop import VirtualTimeLoop
    data_dir = Path(data_dir)
    prepare_data_dir(data_dir)
    tail = LogTail()
    setup_logging(data_dir, tail)

    async def main():
        return await serve(Firmware(config, data_dir, clock, tail, models_dir), console)

    factory = (lambda: VirtualTimeLoop(clock)) if speed == "max" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())
