"""The phone link's latency on the sim's real D-Bus: `.venv/bin/python scripts/bench_phone.py`.

A private dbus-daemon and the BlueZ mock (drivers/sim/bluetooth.py), the real PhoneLink and
Companion, and the phone acting as Gadgetbridge. Measured: start to linked (the UART
subscribed); a notification from the phone's first 20-byte write to the moment it is handed
to speech (parse and dispatch included, synthesis not: speech here only notes the time);
a product look-up's round trip (the sim phone adds 50 ms for the app and the network).
"""

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from glasses_firmware.drivers.clock import Clock
from glasses_firmware.drivers.sim.bluetooth import SimBluetooth, gadgetbridge_line
from glasses_firmware.firmware.events import EventBus
from glasses_firmware.firmware.phone.bluez import LinkSettings, PhoneLink
from glasses_firmware.firmware.phone.companion import Companion

ROUNDS = 30
NOTE = {"t": "notify", "src": "Signal", "title": "Ana", "body": "Dinner at eight? " * 3}


class _NotingSpeech:
    """The Speaks port, noting when each text arrives (the bench times the link, not espeak)."""

    busy = False
    first_audio_at = None

    def __init__(self):
        self.said: list[float] = []

    async def say(self, text: str, language: str = "en") -> None:
        self.said.append(time.perf_counter())

    async def drain(self) -> None:
        pass

    def stop(self) -> None:
        pass


async def _bench() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimBluetooth(Path(tmp))
        link = PhoneLink(LinkSettings(sim.address), EventBus(), Clock())
        speech = _NotingSpeech()
        companion = Companion(link, speech, EventBus(), Clock(), busy=lambda: False)
        task = asyncio.create_task(link.run())
        try:
            t0 = time.perf_counter()
            while not (companion.connected and sim.phone.linked):
                if time.perf_counter() - t0 > 20:
                    raise SystemExit("the link did not come up within 20 s")
                await asyncio.sleep(0.01)
            linked_s = time.perf_counter() - t0
            notes = []
            for i in range(ROUNDS):
                t, n = time.perf_counter(), len(speech.said)
                await sim.phone.send(dict(NOTE, id=i))
                while len(speech.said) == n:
                    await asyncio.sleep(0.001)
                notes.append(speech.said[-1] - t)
            sim.phone.products["4006381333931"] = "Pencil"
            looks = []
            for _ in range(ROUNDS):
                t = time.perf_counter()
                await companion.lookup("4006381333931")
                looks.append(time.perf_counter() - t)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            link.close()
            sim.close()
    size = len(gadgetbridge_line(dict(NOTE, id=1)))
    return {"start_to_linked_s": round(linked_s, 2), "notification_bytes": size,
            "notification_writes": -(-size // 20),
            "notification_to_speech_ms": {"median": round(statistics.median(notes) * 1000, 1),
                                          "max": round(max(notes) * 1000, 1)},
            "lookup_round_trip_ms": {"median": round(statistics.median(looks) * 1000, 1),
                                     "max": round(max(looks) * 1000, 1)}}


def main() -> int:
    print(json.dumps(asyncio.run(_bench()), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
