"""The sim phone's calls and music, served on the sim board's private D-Bus.

Calls: oFono's hands-free API and BlueALSA's SCO PCMs, from python-dbusmock's `ofono` template
extended by telephony_mock.py (a mock process on Debian's python3, like the BlueZ mock).
Music: a BlueZ MediaPlayer1 (AVRCP) and MediaTransport1 (A2DP, its Volume) added to the
BlueZ mock under the phone's device. The firmware sees all of it only through D-Bus, as it
would see oFono, bluealsad and bluetoothd on a board. The knobs below are the phone's side
(`sim phone call NAME`, `sim phone hangup`, `sim phone music play TITLE ARTIST`); what the
phone heard of a call (the wearer's microphones) lands in `<data>/sim/phone/call-NN.wav`.
"""

import asyncio
import itertools
import logging
import os
import subprocess
import tempfile
from pathlib import Path

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from glasses_firmware.drivers.atomic import write_atomic
from glasses_firmware.drivers.errors import ConfigError, DeviceTimeout, Unreachable
from glasses_firmware.drivers.resample import resample
from glasses_firmware.drivers.wavio import read_wav, wav_bytes

from .processes import die_with_parent, stop

log = logging.getLogger(__name__)

MOCK_PYTHON = "/usr/bin/python3"      # Debian's, where apt's python3-dbusmock lives
TEMPLATE = Path(__file__).with_name("telephony_mock.py")
MOCK = "org.freedesktop.DBus.Mock"
PLAYER = "org.bluez.MediaPlayer1"
TRANSPORT = "org.bluez.MediaTransport1"
PROPS = "org.freedesktop.DBus.Properties"
OM = "org.freedesktop.DBus.ObjectManager"
SIM_QUEUE = "org.glasses.SimPlayer"   # the sim player's own queue (not a BlueZ interface)
A2DP_SINK_UUID = "0000110b-0000-1000-8000-00805f9b34fb"
CALL_RATE_HZ = 16000
START_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 5.0

# The player's methods, run inside the BlueZ mock (dbusmock executes them there).
_PLAY = f'self.UpdateProperties("{PLAYER}", {{"Status": "playing"}})'
_PAUSE = f'self.UpdateProperties("{PLAYER}", {{"Status": "paused"}})'
_STOP = f'self.UpdateProperties("{PLAYER}", {{"Status": "stopped"}})'
_NEXT = (f'q = list(self.Get("{SIM_QUEUE}", "Queue"))\n'
         f'if q:\n'
         f'    self.Set("{SIM_QUEUE}", "Queue", dbus.Array(q[1:], signature="a{{sv}}"))\n'
         f'    self.Set("{PLAYER}", "Track", q[0])\n'
         f'    self.UpdateProperties("{PLAYER}", {{"Status": "playing", "Position": dbus.UInt32(0)}})\n'
         f'else:\n'
         f'    self.UpdateProperties("{PLAYER}", {{"Status": "stopped"}})')
_PREVIOUS = f'self.UpdateProperties("{PLAYER}", {{"Position": dbus.UInt32(0), "Status": "playing"}})'


def caller_voice(text: str, path: Path) -> Path:
    """What the caller says, spoken by espeak-ng, as 16 kHz mono 16-bit (the SCO line's format)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "voice.wav"
        try:
            subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), text], check=True,
                           capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            raise ConfigError(f"espeak-ng could not speak the caller's voice ({e}); "
                              "install espeak-ng") from None
        samples, rate = read_wav(raw)
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    return write_atomic(path, wav_bytes(resample(mono, rate, CALL_RATE_HZ), CALL_RATE_HZ))


class SimTelephony:
    """The phone's telephony and media on the sim bus; `start()` spawns the oFono mock."""

    def __init__(self, data_dir: Path, address: str, device: str, phone_name: str = "Sim Phone"):
        self.address, self.device, self.phone_name = address, device, phone_name
        self.dir = Path(data_dir) / "sim" / "phone"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.player = f"{device}/player0"
        self.transport = f"{device}/fd0"
        self.connected = True
        self.hfp = True                      # the hands-free profile is connected
        self.call: dict | None = None       # {"name", "number", "path", "uplink"}
        self.calls_made = 0
        self._numbers = itertools.count(1)
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._media_added = False

    def start(self) -> None:
        """Spawn the oFono + BlueALSA mock with the phone connected (returns at once)."""
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}
        params = f'{{"device": "{self.device}", "name": "{self.phone_name}"}}'
        self._log = open(self.dir / "ofono-mock.log", "ab")
        try:
            self._proc = subprocess.Popen(
                [MOCK_PYTHON, "-m", "dbusmock", "--template", str(TEMPLATE), "-p", params],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
                preexec_fn=die_with_parent)
        except OSError as e:
            self._log.close()
            raise ConfigError(f"cannot start the sim phone's oFono mock with {MOCK_PYTHON} ({e}); "
                              "install python3-dbusmock (scripts/setup.sh)") from None

    def close(self) -> None:
        proc, self._proc = self._proc, None
        stop(proc, timeout_s=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    # D-Bus to the mocks.
    async def _call(self, service: str, path: str, interface: str, member: str,
                    signature: str = "", body=()) -> list:
        if service == "org.ofono" and self._proc is not None and self._proc.poll() is not None:
            raise Unreachable(f"the sim phone's oFono mock exited (code {self._proc.returncode}); "
                              f"see {self.dir / 'ofono-mock.log'}")
        bus = MessageBus(bus_address=self.address)
        try:
            reply = await self._call_on(bus, service, path, interface, member, signature, body)
        except (asyncio.TimeoutError, EOFError) as e:
            raise DeviceTimeout(f"sim phone: the D-Bus mock did not answer {member} ({e!r})") from None
        finally:
            bus.disconnect()
        if reply.message_type == MessageType.ERROR:
            raise Unreachable(f"sim phone: {interface}.{member}: {reply.error_name}: "
                              f"{reply.body[0] if reply.body else ''}")
        return list(reply.body)

    @staticmethod
    async def _call_on(bus, service, path, interface, member, signature, body):
        await asyncio.wait_for(bus.connect(), CALL_TIMEOUT_S)
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while True:    # the mock may still be starting (a second or so after boot)
            reply = await asyncio.wait_for(bus.call(Message(
                destination=service, path=path, interface=interface, member=member,
                signature=signature, body=list(body))), CALL_TIMEOUT_S)
            starting = reply.message_type == MessageType.ERROR and \
                reply.error_name == "org.freedesktop.DBus.Error.ServiceUnknown"
            if not starting or asyncio.get_running_loop().time() > deadline:
                return reply
            await asyncio.sleep(0.1)

    async def _ofono(self, member: str, signature: str = "", body=()) -> list:
        return await self._call("org.ofono", "/", MOCK, member, signature, body)

    # Calls.
    async def incoming_call(self, name: str, number: str | None = None) -> str:
        """Someone calls the phone: it rings on the glasses. Returns the call's object path."""
        if not self.connected or not self.hfp:
            raise Unreachable("the sim phone is off or its hands-free profile is; "
                              "`sim phone on` / `sim phone hfp on` first")
        if self.call is not None and await self._call_alive():
            raise ConfigError(f"the sim phone is already in a call with {self.call['name']}; "
                              "`sim phone hangup` first")
        number = number or f"+1555000{next(self._numbers):04d}"
        self.calls_made += 1
        voice = await asyncio.to_thread(caller_voice, f"Hello, this is {name}. Can you hear me?",
                                        self.dir / f"caller-{self.calls_made:02d}.wav")
        uplink = self.dir / f"call-{self.calls_made:02d}.wav"
        [path] = await self._ofono("IncomingCall", "ssss", [number, name, str(voice), str(uplink)])
        self.call = {"name": name, "number": number, "path": path, "uplink": uplink}
        return path

    async def _call_alive(self) -> bool:
        [calls] = await self._call("org.ofono", "/hfp" + self.device, "org.ofono.VoiceCallManager",
                                   "GetCalls")
        if not calls:
            self.call = None
        return bool(calls)

    async def hangup(self) -> bool:
        """The caller hangs up; False if no call was up."""
        [ended] = await self._ofono("RemoteHangup")
        self.call = None
        return bool(ended)

    async def set_hfp(self, on: bool) -> None:
        """The phone's hands-free profile alone connects or disconnects (the BLE link and
        Gadgetbridge stay): Android's "Phone calls" switch for the glasses."""
        if on and not self.hfp:
            await self._ofono("AddPhone", "ss", [self.device, self.phone_name])
        elif not on and self.hfp:
            await self._ofono("RemovePhone")
            self.call = None
        self.hfp = on

    async def set_connected(self, on: bool) -> None:
        """The phone comes in range or goes away (its HFP modem and SCO PCMs with it)."""
        if on and not self.connected:
            await self.set_hfp(True)
        elif not on and self.connected:
            await self.set_hfp(False)
            if self._media_added:        # BlueZ drops the player and the stream with the link
                for path, interface in ((self.player, PLAYER), (self.transport, TRANSPORT)):
                    await self._bluez("/", "RemoveObject", "s", [path])
                    await self._bluez("/", "EmitSignal", "sssav", [OM, "InterfacesRemoved", "oas", [
                        Variant("o", path), Variant("as", [interface])]])
                self._media_added = False
        self.connected = on

    # Music.
    async def _bluez(self, path: str, member: str, signature: str, body) -> list:
        return await self._call("org.bluez", path, MOCK, member, signature, body)

    async def _add_media(self) -> None:
        if self._media_added:
            return
        player_props = {
            "Name": Variant("s", "Music"), "Type": Variant("s", "Audio"),
            "Subtype": Variant("s", "Audio Book"), "Device": Variant("o", self.device),
            "Status": Variant("s", "stopped"), "Position": Variant("u", 0),
            "Track": Variant("a{sv}", {}),
        }
        methods = [("Play", "", "", _PLAY), ("Pause", "", "", _PAUSE), ("Stop", "", "", _STOP),
                   ("Next", "", "", _NEXT), ("Previous", "", "", _PREVIOUS)]
        await self._bluez("/", "AddObject", "ssa{sv}a(ssss)",
                          [self.player, PLAYER, player_props, methods])
        await self._bluez(self.player, "AddProperty", "ssv",
                          [SIM_QUEUE, "Queue", Variant("aa{sv}", [])])
        transport_props = {
            "Device": Variant("o", self.device), "UUID": Variant("s", A2DP_SINK_UUID),
            "Codec": Variant("y", 0), "State": Variant("s", "active"),
            "Volume": Variant("q", 100),
        }
        await self._bluez("/", "AddObject", "ssa{sv}a(ssss)",
                          [self.transport, TRANSPORT, transport_props, []])
        # As bluetoothd announces them (dbusmock's AddObject does not, on this template).
        for path, interface, props in ((self.player, PLAYER, player_props),
                                       (self.transport, TRANSPORT, transport_props)):
            await self._bluez("/", "EmitSignal", "sssav", [OM, "InterfacesAdded", "oa{sa{sv}}", [
                Variant("o", path), Variant("a{sa{sv}}", {interface: props})]])
        self._media_added = True

    @staticmethod
    def _track(title: str, artist: str) -> dict:
        return {"Title": Variant("s", title), "Artist": Variant("s", artist),
                "Album": Variant("s", "Sim Sessions"), "Duration": Variant("u", 180000)}

    async def music_play(self, title: str, artist: str) -> None:
        """The phone plays TITLE by ARTIST (its player appears on first use)."""
        if not self.connected:
            raise Unreachable("the sim phone is off; `sim phone on` first")
        await self._add_media()
        # Track through Properties.Set: dbusmock's UpdateProperties cannot wrap a dict.
        await self._call("org.bluez", self.player, PROPS, "Set", "ssv",
                         [PLAYER, "Track", Variant("a{sv}", self._track(title, artist))])
        await self._bluez(self.player, "UpdateProperties", "sa{sv}", [PLAYER, {
            "Status": Variant("s", "playing"), "Position": Variant("u", 0)}])

    async def music_queue(self, title: str, artist: str) -> None:
        """TITLE by ARTIST plays after the current track (`Next`)."""
        await self._add_media()
        [queue] = await self._call("org.bluez", self.player, PROPS, "Get", "ss", [SIM_QUEUE, "Queue"])
        tracks = list(queue.value) + [self._track(title, artist)]
        await self._call("org.bluez", self.player, PROPS, "Set", "ssv",
                         [SIM_QUEUE, "Queue", Variant("aa{sv}", tracks)])

    async def music_state(self) -> dict:
        """{"status", "title", "artist", "volume"} as the phone's player and transport hold them."""
        if not self._media_added:
            return {"status": "none"}
        [player] = await self._call("org.bluez", self.player, PROPS, "GetAll", "s", [PLAYER])
        [transport] = await self._call("org.bluez", self.transport, PROPS, "GetAll", "s", [TRANSPORT])
        track = player["Track"].value
        return {"status": player["Status"].value,
                "title": track["Title"].value if "Title" in track else "",
                "artist": track["Artist"].value if "Artist" in track else "",
                "volume": transport["Volume"].value}

    async def describe(self) -> list[str]:
        """The phone's calls and music, one line each (for `sim phone`)."""
        if self.call is not None and self.hfp:
            await self._call_alive()
        lines = [f"call with {self.call['name']} ({self.call['number']})" if self.call else "no call"]
        music = await self.music_state() if self.connected else {"status": "none"}
        if music["status"] != "none":
            lines.append(f"music {music['status']}: {music['title']} by {music['artist']}, "
                         f"volume {music['volume']}/127")
        return lines
