"""The firmware process: bring up the board, run the asyncio loop, shut down cleanly."""

import asyncio
import logging
import logging.handlers
import signal
from pathlib import Path

from drivers.bringup import Board

from . import __version__

log = logging.getLogger("glasses")

DATA_SUBDIRS = ("photos", "videos", "recordings", "notes", "logs")


def prepare_data_dir(data_dir: Path) -> None:
    for sub in DATA_SUBDIRS:
        (data_dir / sub).mkdir(parents=True, exist_ok=True)


def setup_logging(data_dir: Path, verbose: bool = False) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file = logging.handlers.RotatingFileHandler(data_dir / "logs" / "glasses.log",
                                                maxBytes=2_000_000, backupCount=3)
    file.setFormatter(fmt)
    root.addHandler(file)


class Firmware:
    """The running application: owns the board and the loop's long-lived tasks."""

    def __init__(self, config, data_dir: Path, clock):
        self.config = config
        self.data_dir = data_dir
        self.clock = clock
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.board = Board(config, data_dir, clock, on_gesture=self._gesture_from_thread)
        self.started_at = clock.monotonic()
        self.gestures: asyncio.Queue = asyncio.Queue()

    def _gesture_from_thread(self, button: str, gesture: str) -> None:
        # Button threads only hand over; all handling happens on the loop.
        self.loop.call_soon_threadsafe(self.gestures.put_nowait, (button, gesture))

    async def handle_gestures(self) -> None:
        while True:
            button, gesture = await self.gestures.get()
            log.info("button %s: %s", button, gesture)

    def stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            log.info("stopping: %s", reason)
            self.stopping.set()

    def close(self) -> None:
        self.board.close()


async def _main(config, data_dir: Path, clock, console: str) -> int:
    fw = Firmware(config, data_dir, clock)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, fw.stop, signal.Signals(sig).name)
    tasks = [asyncio.create_task(fw.handle_gestures(), name="gestures")]
    fw.board.status_led.blink()
    log.info("glasses %s running on board %s, data in %s", __version__, config.name, data_dir)
    print(f"glasses {__version__}: running on board {config.name}, data in {data_dir}; "
          "Ctrl-C to stop", flush=True)
    try:
        await fw.stopping.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        fw.close()
    log.info("stopped cleanly")
    return 0


def run_firmware(config, data_dir: Path, clock, console: str = "none", speed: str = "1",
                 models_dir=None) -> int:
    data_dir = Path(data_dir)
    prepare_data_dir(data_dir)
    setup_logging(data_dir)
    return asyncio.run(_main(config, data_dir, clock, console))
