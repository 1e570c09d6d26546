"""The firmware process: bring up the board, run the asyncio loop, shut down cleanly."""

import asyncio
import functools
import logging
import logging.handlers
import signal
from pathlib import Path

from drivers.bringup import Board

from . import __version__
from .events import EventBus, LogTail
from .monitor import Monitor

log = logging.getLogger("glasses")

DATA_SUBDIRS = ("photos", "videos", "recordings", "notes", "logs")
SAMPLE_PERIOD_S = 5.0


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
    """The running application: owns the board, the monitor and the console."""

    version = __version__

    def __init__(self, config, data_dir: Path, clock, log_tail: LogTail, models_dir=None):
        self.config = config
        self.data_dir = data_dir
        self.clock = clock
        self.log_tail = log_tail
        self.models_dir = models_dir
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.lifecycle = "starting"
        self.worker_state = "not_started"  # the inference worker arrives with its own issue
        self.events = EventBus()
        self.gestures: asyncio.Queue = asyncio.Queue()
        self.board = Board(config, data_dir, clock, on_gesture=self._from_thread(self._gesture))
        self.board.imu.int1.when_activated = self._from_thread(self._imu_wake)
        self.monitor = Monitor(self.board, clock, self.events)
        self.started_at = clock.monotonic()

    def _from_thread(self, fn):
        # Device callbacks run on driver threads: they only hand over to the loop.
        return lambda *args: self.loop.call_soon_threadsafe(fn, *args)

    def _gesture(self, button: str, gesture: str) -> None:
        if gesture in ("click", "double", "long"):
            self.events.emit("button", f"{button} {gesture}")

    def _imu_wake(self) -> None:
        self.monitor.sample()

    async def run_blocking(self, fn, *args):
        """Run a blocking call (device probes, subprocesses) off the loop."""
        return await self.loop.run_in_executor(None, functools.partial(fn, *args))

    def models_info(self) -> list[dict]:
        return []

    async def sample_forever(self) -> None:
        while True:
            self.monitor.sample()
            await self.clock.asleep(SAMPLE_PERIOD_S)

    def stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            log.info("stopping: %s", reason)
            self.lifecycle = "stopping"
            self.stopping.set()

    def close(self) -> None:
        self.board.close()


async def _main(config, data_dir: Path, clock, console: str, log_tail, models_dir) -> int:
    from .transports import open_console
    fw = Firmware(config, data_dir, clock, log_tail, models_dir)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, fw.stop, signal.Signals(sig).name)
    con = None
    tasks = [asyncio.create_task(fw.sample_forever(), name="monitor")]
    try:
        con = open_console(fw, console)
        fw.board.status_led.blink()
        fw.lifecycle = "running"
        log.info("glasses %s running on board %s, data in %s", __version__, config.name, data_dir)
        if console != "stdio":
            print(f"glasses {__version__}: running on board {config.name}, data in {data_dir}"
                  f"{', console at ' + console if console not in ('none', 'auto') else ''}; "
                  "Ctrl-C to stop", flush=True)
        await fw.stopping.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if con is not None:
            con.close()
        fw.close()
    log.info("stopped cleanly")
    return 0


def run_firmware(config, data_dir: Path, clock, console: str = "none", speed: str = "1",
                 models_dir=None) -> int:
    data_dir = Path(data_dir)
    prepare_data_dir(data_dir)
    tail = LogTail()
    setup_logging(data_dir, tail)
    return asyncio.run(_main(config, data_dir, clock, console, tail, models_dir))
