"""A call's audio: BlueALSA's HFP PCMs bridged to the glasses' speaker and microphones.

bluealsad (bluez-alsa, `--profile=hfp-ofono`) terminates the SCO link and offers it as two
PCM objects on D-Bus (org.bluealsa.PCM1, Transport "HFP-HF"): `Open()` on the "source" PCM
gives a pipe carrying the phone's audio (the caller's voice), on the "sink" PCM a pipe the
wearer's voice is written into. The firmware owns the I2S card (the speaker and microphones
it already drives), so it bridges the two itself instead of running bluealsa-aplay, which
would fight it for the card. Samples are S16LE mono at the PCM's `Sampling` (16 kHz with
mSBC, 8 kHz with CVSD).
"""

import asyncio
import logging
import os

import numpy as np
from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus

from glasses_firmware.drivers.errors import GlassesError, Unreachable
from glasses_firmware.drivers.resample import resample

from ..tasks import spawn
from .dbus import BusUnavailable, call, unwrap

log = logging.getLogger("glasses.phone.sco")

BLUEALSA = "org.bluealsa"
HF_TRANSPORTS = ("HFP-HF", "HSP-HS")
HUB_RATE_HZ = 16000
BATCH_S = 0.1            # the phone's voice goes to the speaker in batches this long
PRIME_S = 0.2            # and only once this much is buffered: the speaker's queue never runs dry
PLAY_TIMEOUT_S = 2.0
UPLINK_PERIOD_S = 0.02


class CallAudioUnavailable(Unreachable):
    """No SCO audio for the call (no bluealsad, no HFP PCM, or it would not open)."""


async def _connect_fds(address: str | None, timeout_s: float) -> MessageBus:
    """A bus connection that can receive file descriptors (PCM1.Open returns two)."""
    bus = MessageBus(bus_address=address, negotiate_unix_fd=True) if address else \
        MessageBus(bus_type=BusType.SYSTEM, negotiate_unix_fd=True)
    try:
        return await asyncio.wait_for(bus.connect(), timeout_s)
    except (asyncio.TimeoutError, OSError, EOFError, ValueError) as e:
        raise BusUnavailable(f"cannot reach D-Bus at {address or 'the system bus'} for the "
                             f"call's audio: {e!r}") from None


class ScoLink:
    """One call's two audio pipes; `open()` when the call is answered, `close()` when it ends."""

    def __init__(self, address: str | None, speaker, hub, blocking, timeout_s: float = 5.0):
        self.address, self.speaker, self.hub, self.blocking = address, speaker, hub, blocking
        self.timeout_s = timeout_s
        self.rate_hz = HUB_RATE_HZ
        self.bytes_up = self.bytes_down = 0
        self._bus: MessageBus | None = None
        self._down = self._up = None          # file descriptors
        self._pending = bytearray()
        self._queue: asyncio.Queue | None = None
        self._player: asyncio.Task | None = None
        self._primed = False
        self.on_lost = None                   # () -> None: the phone closed the line

    async def open(self, device: str | None = None) -> None:
        """Open the HFP PCMs of `device` (a BlueZ device path; None: any). CallAudioUnavailable."""
        self._pending, self._primed = bytearray(), False
        self.bytes_up = self.bytes_down = 0
        try:
            self._bus = await _connect_fds(self.address, self.timeout_s)
            [pcms] = await call(self._bus, BLUEALSA, "/org/bluealsa", "org.bluealsa.Manager1",
                                "GetPCMs", timeout_s=self.timeout_s)
            found = {}
            for path, props in unwrap(pcms).items():
                if props.get("Transport") in HF_TRANSPORTS and \
                        (device is None or props.get("Device") == device):
                    found[props.get("Mode")] = (path, props)
            if set(found) != {"sink", "source"}:
                raise CallAudioUnavailable(f"bluealsad offers no HFP audio for {device or 'the phone'} "
                                           f"(found {sorted(found) or 'none'}); is it running with "
                                           "--profile=hfp-ofono?")
            self.rate_hz = int(found["source"][1].get("Sampling", HUB_RATE_HZ))
            self._down = await self._open_pcm(found["source"][0])
            self._up = await self._open_pcm(found["sink"][0])
        except (BusUnavailable, Unreachable) as e:
            await self.close()
            if isinstance(e, CallAudioUnavailable):
                raise
            raise CallAudioUnavailable(f"the call's audio did not open: {e}") from None
        os.set_blocking(self._down, False)
        os.set_blocking(self._up, False)
        self._queue = asyncio.Queue()
        self._player = spawn(self._play(), name="call-downlink")
        asyncio.get_running_loop().add_reader(self._down, self._downlink)
        self.hub.subscribe("call", self._uplink, UPLINK_PERIOD_S)

    async def _open_pcm(self, path: str) -> int:
        msg = Message(destination=BLUEALSA, path=path, interface="org.bluealsa.PCM1", member="Open")
        try:
            reply = await asyncio.wait_for(self._bus.call(msg), self.timeout_s)
        except (asyncio.TimeoutError, EOFError, OSError) as e:
            raise CallAudioUnavailable(f"bluealsad did not open {path}: {e!r}") from None
        if reply is None or reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply is not None and reply.body else "no reply"
            raise CallAudioUnavailable(f"bluealsad would not open {path}: {text}")
        pcm, control = reply.body[0], reply.body[1]
        fds = reply.unix_fds
        pcm_fd, control_fd = (fds[pcm], fds[control]) if fds and isinstance(pcm, int) else (pcm, control)
        os.close(control_fd)       # Drain/Pause commands are not needed for a live call
        return pcm_fd

    # Phone -> speaker.
    def _downlink(self) -> None:
        try:
            data = os.read(self._down, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self.bytes_down += len(data)
        self._pending += data
        batch = int(BATCH_S * self.rate_hz) * 2
        if not self._primed and len(self._pending) < int(PRIME_S * self.rate_hz) * 2:
            return
        self._primed = True
        while len(self._pending) >= batch:
            chunk, self._pending = bytes(self._pending[:batch]), self._pending[batch:]
            self._queue.put_nowait(np.frombuffer(chunk, "<i2").astype(np.float32) / 32768.0)

    async def _play(self) -> None:
        while True:
            samples = await self._queue.get()
            try:
                await self.blocking.run(self.speaker.play, samples, self.rate_hz,
                                        timeout_s=PLAY_TIMEOUT_S)
            except (GlassesError, OSError, ValueError) as e:
                log.warning("call audio to the speaker: %s", e)

    # Microphones -> phone.
    def _uplink(self, chunk: np.ndarray) -> None:
        if self._up is None:
            return
        x = chunk if self.rate_hz == HUB_RATE_HZ else resample(chunk, HUB_RATE_HZ, self.rate_hz)
        pcm = (np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        try:
            self.bytes_up += os.write(self._up, pcm)
        except BlockingIOError:
            pass                  # the phone is behind: a real-time line drops, never queues
        except OSError:
            self._lost()

    def _lost(self) -> None:
        if self._down is None:
            return
        spawn(self.close(), name="call-audio-close")
        if self.on_lost is not None:
            self.on_lost()

    async def close(self) -> None:
        """Stop both directions; idempotent."""
        self.hub.unsubscribe("call")
        if self._down is not None:
            asyncio.get_running_loop().remove_reader(self._down)
        for fd in (self._down, self._up):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._down = self._up = None
        if self._player is not None:
            self._player.cancel()
            self._player = None
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None
