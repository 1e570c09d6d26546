"""Music from the phone: A2DP sink audio with AVRCP control, through BlueZ on D-Bus.

BlueZ shows the phone's player as org.bluez.MediaPlayer1 (Play, Pause, Next, Previous; the
Status and Track properties) and the A2DP stream as org.bluez.MediaTransport1, whose
Volume (0-127) is AVRCP absolute volume: setting it turns the music down on the phone. The
audio itself is bluealsad's A2DP sink, played by bluealsa-aplay (docs/phone.md). Music is
ducked while the glasses speak (the volume down, then back), paused for a call and resumed
after it; `on_playing(bool)` tells the speaker whether music plays (the energy meter).
"""

import asyncio
import logging
from dataclasses import dataclass

from glasses_firmware.drivers.errors import GlassesError, SaidError

from ..tasks import spawn
from . import dbus as d

log = logging.getLogger("glasses.phone.media")

BLUEZ = "org.bluez"
PLAYER, TRANSPORT = "org.bluez.MediaPlayer1", "org.bluez.MediaTransport1"
MAX_VOLUME = 127                      # AVRCP absolute volume


class MediaError(SaidError):
    """A music command that cannot be done now (no player on the phone, bad volume)."""


@dataclass(frozen=True)
class MediaSettings:
    call_timeout_s: float = 5.0
    duck_ratio: float = 0.3           # of the wearer's volume while the glasses speak
    duck_poll_s: float = 0.1
    restore_after_s: float = 0.5      # of silence before the music comes back up
    volume_step: int = 16             # "volume up": about an eighth of the range
    reconnect_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0)


class Media:
    """The phone's music player as the wearer controls it; `start()` once the loop runs."""

    def __init__(self, address, speech, events, clock, on_playing=lambda playing: None,
                 settings: MediaSettings = MediaSettings()):
        self.address, self.speech, self.events, self.clock = address, speech, events, clock
        self.on_playing, self.s = on_playing, settings
        self.bus = None
        self.player: str | None = None
        self.transport: str | None = None
        self.status = "none"              # BlueZ's: playing, stopped, paused, ... or none
        self.track: dict = {}
        self.volume: int | None = None    # the transport's, 0..127
        self.ducked_from: int | None = None
        self._task = self._ducker = None

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._run(), name="media")

    async def close(self) -> None:
        for task in (self._task, self._ducker):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._ducker = None
        if self.bus is not None:
            self.bus.disconnect()

    async def _run(self) -> None:
        await d.stay_connected(self.address, self.s.call_timeout_s, self.s.reconnect_s,
                               self._watch, self._lost, "media")

    async def _watch(self, bus) -> None:
        self.bus = bus
        for callback, interface, rule in (
                (self._changed, d.PROPERTIES, {"member": "PropertiesChanged",
                                               "path_namespace": "/org/bluez"}),
                (self._objects, d.OBJECT_MANAGER, {}),
                (self._owner_changed, "org.freedesktop.DBus", {"member": "NameOwnerChanged"})):
            await d.subscribe(bus, callback, interface=interface, timeout_s=self.s.call_timeout_s,
                              **rule)
        await self.scan()

    async def _lost(self) -> None:
        self._forget()

    async def scan(self) -> None:
        """Find the phone's player and transport among BlueZ's objects now."""
        try:
            objects = await d.managed_objects(self.bus, BLUEZ, self.s.call_timeout_s)
        except d.BusCallFailed as e:
            log.info("media: BlueZ not on the bus (%s)", e.name)
            return
        for path, interfaces in objects.items():
            self._added(path, interfaces)

    def _owner_changed(self, msg) -> None:
        name, _old, new = msg.body
        if name == BLUEZ:                 # bluetoothd (re)started or went away
            self._forget() if not new else spawn(self.scan(), name="media-scan")

    def _objects(self, msg) -> None:
        if msg.member == "InterfacesAdded":
            self._added(msg.body[0], d.unwrap(msg.body[1]))
        elif msg.member == "InterfacesRemoved":
            path, interfaces = msg.body
            if PLAYER in interfaces and path == self.player:
                self.player, self.track = None, {}
                self._set_status("none")
            if TRANSPORT in interfaces and path == self.transport:
                self.transport, self.volume = None, None

    def _added(self, path: str, interfaces: dict) -> None:
        if PLAYER in interfaces:
            self.player = path
            self._player_props(interfaces[PLAYER])
        if TRANSPORT in interfaces:
            self.transport = path
            self.volume = interfaces[TRANSPORT].get("Volume", self.volume)

    def _changed(self, msg) -> None:
        interface, changed = msg.body[0], d.unwrap(msg.body[1])
        if interface == PLAYER and msg.path == self.player:
            self._player_props(changed)
        elif interface == PLAYER and self.player is None:
            self.player = msg.path
            self._player_props(changed)
        elif interface == TRANSPORT and "Volume" in changed:
            self.transport = self.transport or msg.path
            if msg.path == self.transport:
                self.volume = int(changed["Volume"])

    def _player_props(self, props: dict) -> None:
        if "Track" in props and props["Track"] != self.track:
            self.track = dict(props["Track"])
            if self.track.get("Title"):
                self.events.emit("music", f"track {self.describe()}")
        if "Status" in props:
            self._set_status(props["Status"])

    def _set_status(self, status: str) -> None:
        if status == self.status:
            return
        self.status = status
        self.on_playing(status == "playing")
        self.events.emit("music", f"{status}" + (f": {self.describe()}" if self.track else ""))
        if status == "playing" and (self._ducker is None or self._ducker.done()):
            self._ducker = spawn(self._duck(), name="music-ducking")

    def _forget(self) -> None:
        self.player = self.transport = None
        self.track, self.volume = {}, None
        self._set_status("none")

    # Ducking: the volume down while the glasses speak, back up after.
    async def _duck(self) -> None:
        quiet_s = 0.0
        while self.status == "playing" or self.ducked_from is not None:
            await self.clock.asleep(self.s.duck_poll_s)
            speaking = self.speech.busy and self.status == "playing"
            quiet_s = 0.0 if speaking else quiet_s + self.s.duck_poll_s
            try:
                if speaking and self.ducked_from is None and self.volume is not None:
                    self.ducked_from = self.volume
                    await self._volume(max(1, round(self.volume * self.s.duck_ratio)))
                    self.events.emit("music", "ducked under speech")
                elif self.ducked_from is not None and quiet_s >= self.s.restore_after_s:
                    back, self.ducked_from = self.ducked_from, None
                    await self._volume(back)
                    self.events.emit("music", "back up after speech")
            except (GlassesError, OSError) as e:
                log.warning("media: ducking: %s", e)    # the stream went; nothing to restore
                self.ducked_from = None

    # The wearer's commands.
    def _need_player(self) -> str:
        if self.player is None:
            raise MediaError("no music player on the phone; start some music on the phone first")
        return self.player

    async def _player(self, member: str) -> None:
        try:
            await d.call(self.bus, BLUEZ, self._need_player(), PLAYER, member,
                         timeout_s=self.s.call_timeout_s)
        except d.BusCallFailed as e:
            raise MediaError(f"the phone's player refused {member} ({e.name or e})") from None

    async def play(self) -> str:
        await self._player("Play")
        return "Playing."

    async def pause(self) -> str:
        await self._player("Pause")
        return "Paused."

    async def next(self) -> str:
        await self._player("Next")
        return "Next track."

    async def previous(self) -> str:
        await self._player("Previous")
        return "Previous track."

    async def _volume(self, value: int) -> None:
        if self.transport is None:
            raise MediaError("no music stream from the phone; start some music on the phone first")
        try:
            await d.set_property(self.bus, BLUEZ, self.transport, TRANSPORT, "Volume",
                                 d.Variant("q", int(value)), self.s.call_timeout_s)
        except d.BusCallFailed as e:
            raise MediaError(f"the phone refused the volume ({e.name or e})") from None
        self.volume = int(value)

    async def set_volume(self, percent: float) -> str:
        """The music's volume, 0..100 percent of the phone's range."""
        if not 0 <= percent <= 100:
            raise MediaError(f"volume {percent:g} is outside 0..100 percent")
        value = round(percent * MAX_VOLUME / 100)
        if self.ducked_from is not None:
            self.ducked_from = value      # applied when the glasses stop speaking
        else:
            await self._volume(value)
        return f"Music volume {round(percent)} percent."

    async def step_volume(self, steps: int) -> str:
        current = self.ducked_from if self.ducked_from is not None else (self.volume or 0)
        value = min(MAX_VOLUME, max(0, current + steps * self.s.volume_step))
        return await self.set_volume(value * 100 / MAX_VOLUME)

    def describe(self) -> str:
        title, artist = self.track.get("Title", ""), self.track.get("Artist", "")
        return f"{title} by {artist}" if title and artist else title or "an unnamed track"

    def now(self) -> str:
        """What is playing, as said aloud ("what song is this")."""
        if self.player is None or not self.track.get("Title"):
            return "Nothing is playing from the phone."
        verb = "This is" if self.status == "playing" else f"{self.status.capitalize()}:"
        return f"{verb} {self.describe()}."

    # A call stops the music and brings it back.
    async def pause_for_call(self) -> bool:
        """Pause for a call; True if music was playing (so the call's end resumes it)."""
        if self.status != "playing":
            return False
        try:
            await self._player("Pause")
        except (MediaError, d.Unreachable) as e:
            log.warning("media: could not pause for the call: %s", e)
            return False
        return True

    async def resume_after_call(self) -> None:
        try:
            await self._player("Play")
        except (MediaError, d.Unreachable) as e:
            log.warning("media: could not resume after the call: %s", e)

    def status_line(self) -> dict:
        out = {"status": self.status}
        if self.track.get("Title"):
            out["track"] = self.describe()
        if self.volume is not None:
            out["volume_percent"] = round(self.volume * 100 / MAX_VOLUME)
        if self.ducked_from is not None:
            out["ducked"] = True
        return out
