"""Calls: the glasses as the phone's hands-free unit (HFP HF), call control through oFono.

oFono (hfp_hf_bluez5) turns the phone's HFP link into a modem on D-Bus: an incoming call is
`VoiceCallManager.CallAdded` with State "incoming", LineIdentification and Name; `Answer`
and `Hangup` (which also rejects a ringing call) act on it; `PropertyChanged` and
`CallRemoved` say how it goes; when the phone goes away, its modem is removed (and oFono
itself may vanish from the bus). The call's audio is BlueALSA's (sco.py). While a call rings
or runs, the call holds the speaker and microphones (arbiter owner "call": the wake word and
media are suspended), music is paused and resumed after. Every end of a call is one
`EVT call ended: REASON` and releases everything, whatever side ended it.
"""

import asyncio
import logging
from dataclasses import dataclass

from glasses_firmware.drivers.errors import GlassesError, SaidError

from .. import statetable
from ..statetable import Machine
from ..tasks import spawn
from ..voice.cues import RATE_HZ as CUE_RATE_HZ, tone
from . import dbus as d
from .sco import CallAudioUnavailable, ScoLink

log = logging.getLogger("glasses.phone.calls")

OFONO = "org.ofono"
MANAGER, CALLS, CALL = "org.ofono.Manager", "org.ofono.VoiceCallManager", "org.ofono.VoiceCall"

IDLE, RINGING, ACTIVE = "idle", "ringing", "active"
TRANSITIONS = {
    (IDLE, "incoming"): RINGING,
    (RINGING, "answered"): ACTIVE,
    (RINGING, "ended"): IDLE,
    (ACTIVE, "ended"): IDLE,
}
REASONS = {"local": "you hung up", "remote": "the caller hung up",
           "network": "the network dropped the call"}
PHONE_GONE = "the phone disconnected"
RING = tone([880, 660, 880, 660], each_s=0.12, level=0.25)


class CallError(SaidError):
    """A call action that cannot be done now (no call ringing, the phone said no)."""


@dataclass(frozen=True)
class CallSettings:
    connect_timeout_s: float = 5.0
    call_timeout_s: float = 5.0         # every D-Bus call to oFono
    ring_repeat_s: float = 5.0          # "Call from ..." again while it rings
    ring_announcements: int = 6         # then only the phone rings (its voicemail takes over)
    reconnect_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0)


class CallMachine(Machine):
    """The call's state (idle, ringing, active); `fire` is the only way it changes."""

    def __init__(self):
        super().__init__(TRANSITIONS, IDLE, log, "call", undeclared="ignore")


def mermaid() -> str:
    """The call's state diagram as Mermaid text, for docs/architecture.md."""
    return statetable.mermaid(TRANSITIONS, IDLE)


class Calls:
    """Incoming calls from the paired phone: ring, answer, reject, hang up, audio, clean ends.

    `address`: the D-Bus oFono and bluealsad are on (None: the system bus). `media`: the music
    service (paused for the call, resumed after), or None.
    """

    def __init__(self, address, claims, speaker, hub, speech, events, clock, blocking,
                 media=None, companion=None, settings: CallSettings = CallSettings()):
        self.address, self.claims, self.speaker, self.hub = address, claims, speaker, hub
        self.speech, self.events, self.clock, self.blocking = speech, events, clock, blocking
        self.media, self.s = media, settings
        # Gadgetbridge's call lines (companion.py): the call without an HFP link.
        self.companion = companion
        if companion is not None:
            companion.on_call(self.companion_call)
        self.machine = CallMachine()
        self.machine.subscribe(self._moved)
        self.bus = None
        self.modems: set[str] = set()
        self.path: str | None = None      # the current call's object path
        self.caller = {"name": "", "number": ""}
        self.started_at: float | None = None
        self.source = ""                  # "ofono" or "gadgetbridge": who told us of the call
        self._reason: str | None = None
        self._claim = None
        self._ringer: asyncio.Task | None = None
        self._task: asyncio.Task | None = None
        self._paused_media = False
        self.audio = ScoLink(address, speaker, hub, blocking, settings.call_timeout_s)
        self.audio.on_lost = lambda: log.info("the phone closed the call's audio")
        self.listeners: list = []         # (state, caller) -> None, e.g. the voice listener

    @property
    def state(self) -> str:
        return self.machine.state

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._run(), name="calls")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._ended("the glasses are shutting down")
        if self.bus is not None:
            self.bus.disconnect()

    # The link to oFono: connect, watch, reconnect with back-off.
    async def _run(self) -> None:
        await d.stay_connected(self.address, self.s.connect_timeout_s, self.s.reconnect_s,
                               self._watch, self._lost, "calls")

    async def _lost(self) -> None:
        if self.state != IDLE:
            await self._ended(PHONE_GONE)

    async def _watch(self, bus) -> None:
        self.bus = bus
        for interface in (MANAGER, CALLS, CALL):
            await d.subscribe(bus, self._signal, interface=interface,
                              timeout_s=self.s.call_timeout_s)
        await d.subscribe(bus, self._owner_changed, interface="org.freedesktop.DBus",
                          member="NameOwnerChanged", timeout_s=self.s.call_timeout_s)
        await self._scan()

    async def _scan(self) -> None:
        """The modems and calls there are now (at start, and when oFono (re)appears)."""
        try:
            [modems] = await d.call(self.bus, OFONO, "/", MANAGER, "GetModems",
                                    timeout_s=self.s.call_timeout_s)
        except d.BusCallFailed as e:
            log.info("calls: no oFono on the bus (%s); calls need ofono (docs/phone.md)", e.name)
            return
        self.modems = {path for path, _ in modems}
        for modem in self.modems:
            try:
                [calls] = await d.call(self.bus, OFONO, modem, CALLS, "GetCalls",
                                       timeout_s=self.s.call_timeout_s)
            except d.BusCallFailed:
                continue
            for path, props in calls:
                self._call_added(path, d.unwrap(props))

    def _owner_changed(self, msg) -> None:
        name, _old, new = msg.body
        if name != OFONO:
            return
        if not new:
            self.modems.clear()
            if self.state != IDLE:
                spawn(self._ended(PHONE_GONE), name="call-ended")
        else:
            spawn(self._scan(), name="calls-scan")

    def _signal(self, msg) -> None:
        member, body = msg.member, msg.body
        if member == "ModemAdded":
            self.modems.add(body[0])
        elif member == "ModemRemoved":
            self.modems.discard(body[0])
            if self.path is not None and self.path.startswith(body[0] + "/"):
                spawn(self._ended(PHONE_GONE), name="call-ended")
        elif member == "CallAdded":
            self._call_added(body[0], d.unwrap(body[1]))
        elif member == "CallRemoved":
            if body[0] == self.path:
                spawn(self._ended(self._reason or "the caller hung up"), name="call-ended")
        elif msg.path != self.path:
            return
        elif member == "PropertyChanged" and body[0] == "State" and \
                d.unwrap(body[1]) == "disconnected":
            spawn(self._ended(self._reason or "the caller hung up"), name="call-ended")
        elif member == "PropertyChanged" and body[0] == "State" and d.unwrap(body[1]) == "active":
            spawn(self._answered(), name="call-answered")
        elif member == "DisconnectReason":
            self._reason = self._reason or REASONS.get(body[0], f"ended ({body[0]})")

    def _call_added(self, path: str, props: dict) -> None:
        if props.get("State") not in ("incoming", "waiting"):
            return                        # calls made on the phone stay on the phone
        if self.state != IDLE and self.source == "ofono":
            log.info("calls: a second call (%s) waits on the phone", path)
            return
        if self.state == RINGING and self.source == "gadgetbridge":
            self.path, self.source = path, "ofono"    # oFono is the authority when present
            return
        self.path, self.source = path, "ofono"
        self._ring(props.get("Name", ""), props.get("LineIdentification", ""))

    def companion_call(self, info: dict) -> None:
        """A call as Gadgetbridge tells it: rings only while no HFP modem is linked (oFono is
        the authority when present); ends when Gadgetbridge says so."""
        cmd = info.get("cmd", "")
        if cmd == "incoming" and self.state == IDLE and not self.modems:
            self.path, self.source = None, "gadgetbridge"
            self._ring(info.get("name", ""), info.get("number", ""))
        elif self.source != "gadgetbridge":
            return
        elif cmd in ("end", "reject"):
            spawn(self._ended(self._reason or "the caller hung up"), name="call-ended")
        elif cmd in ("accept", "start") and self.state == RINGING:
            spawn(self._answered(), name="call-answered")

    # What the call does.
    def _ring(self, name: str, number: str) -> None:
        self.caller = {"name": name, "number": number}
        self._reason = None
        try:
            self._claim = self.claims.acquire("call", ["speaker", "microphones"])
        except GlassesError as e:
            log.warning("calls: %s; the call rings on the phone only", e)
            return
        self.speech.stop()                # whatever the assistant was saying
        if self.media is not None:
            spawn(self._pause_media(), name="call-pauses-music")
        self.machine.fire("incoming", f"from {self.who()}")
        self._ringer = spawn(self._announce(), name="call-ring")

    def who(self) -> str:
        name, number = self.caller["name"], self.caller["number"]
        return name or (" ".join(number) if number else "an unknown number")

    async def _announce(self) -> None:
        for _ in range(self.s.ring_announcements):
            try:
                await self.blocking.run(self.speaker.play, RING, CUE_RATE_HZ, timeout_s=2.0)
            except (GlassesError, OSError) as e:
                log.warning("calls: ring: %s", e)
            await self.speech.say(f"Call from {self.who()}.")
            await self.clock.asleep(self.s.ring_repeat_s)

    async def _pause_media(self) -> None:
        self._paused_media = await self.media.pause_for_call()

    async def _answered(self) -> None:
        if not self.machine.fire("answered", "the call was answered"):
            return
        self._stop_ringing()
        self.started_at = self.clock.monotonic()
        if self.source != "ofono":
            return                        # Gadgetbridge-only: the audio stays on the phone
        try:
            await self.audio.open(_device_of(self.path))
        except CallAudioUnavailable as e:
            self.events.emit("call", f"audio unavailable: {e}")

    async def _ended(self, reason: str) -> None:
        if not self.machine.fire("ended", reason):
            return
        self._stop_ringing()
        await self.audio.close()
        if self._claim is not None:
            self.claims.release(self._claim)
            self._claim = None
        self.path, self.started_at, self.source = None, None, ""
        if self._paused_media and self.media is not None:
            self._paused_media = False
            spawn(self.media.resume_after_call(), name="call-resumes-music")

    def _stop_ringing(self) -> None:
        if self._ringer is not None:
            self._ringer.cancel()
            self._ringer = None
        self.speech.stop()

    def _moved(self, old: str, new: str, event: str, reason: str) -> None:
        if new == RINGING:
            number = f" ({self.caller['number']})" if self.caller["number"] else ""
            self.events.emit("call", f"incoming from {self.caller['name'] or 'unknown'}{number}")
        elif new == ACTIVE:
            self.events.emit("call", f"answered: talking with {self.who()}")
        elif new == IDLE:
            self.events.emit("call", f"ended: {reason}")
        for listener in list(self.listeners):
            listener(new, self.who())

    # The wearer's actions (button, voice, console).
    def gesture(self, button: str, gesture: str) -> bool:
        """While a call rings or runs the action button is the call's (True: taken).

        Ringing: click answers, long press declines. In the call: double-click hangs up (a
        single touch while talking is too easy to make by accident)."""
        if button != "action" or self.state == IDLE:
            return False
        act = {(RINGING, "click"): self.answer, (RINGING, "long"): self.reject,
               (ACTIVE, "double"): self.hangup}.get((self.state, gesture))
        if act is not None:
            spawn(self._by_button(act), name="call-button")
        return True

    async def _by_button(self, act) -> None:
        try:
            await act()
        except GlassesError as e:
            self.events.emit("call", f"button refused: {e}")

    async def answer(self) -> str:
        if self.state != RINGING:
            raise CallError("there is no call ringing to answer")
        await self._act("Answer", "answer the call")
        await self._answered()
        return f"Talking with {self.who()}."

    async def reject(self) -> str:
        if self.state != RINGING:
            raise CallError("there is no call ringing to reject")
        who = self.who()
        self._reason = "you declined it"
        await self._act("Hangup", "reject the call")
        await self._ended(self._reason)
        return f"Declined the call from {who}."

    async def hangup(self) -> str:
        if self.state == RINGING:
            return await self.reject()
        if self.state != ACTIVE:
            raise CallError("there is no call to hang up")
        self._reason = "you hung up"
        await self._act("Hangup", "hang up")
        await self._ended(self._reason)
        return "Call ended."

    async def _act(self, member: str, what: str) -> None:
        if self.source == "gadgetbridge":      # Bangle.js's call buttons
            word = {"Answer": "ACCEPT"}.get(member, "REJECT" if self.state == RINGING else "END")
            try:
                self.companion.send_call(word)
            except GlassesError as e:
                raise CallError(f"could not {what}: {e}") from None
            return
        try:
            await d.call(self.bus, OFONO, self.path, CALL, member, timeout_s=self.s.call_timeout_s)
        except d.BusCallFailed as e:
            raise CallError(f"the phone would not {what} ({e.name or e})") from None
        except d.BusUnavailable:
            await self._ended(PHONE_GONE)
            raise CallError(f"could not {what}: {PHONE_GONE}") from None

    def status(self) -> dict:
        out = {"state": self.state, "modems": len(self.modems),
               "holding": list(self._claim.resources) if self._claim is not None else [],
               "wake_word_suspended": self.claims.suspended("wake_word")}
        if self.state != IDLE:
            out.update(caller=self.who(), number=self.caller["number"], via=self.source)
        if self.started_at is not None:
            out["seconds"] = round(self.clock.monotonic() - self.started_at, 1)
            out["audio"] = {"to_phone_bytes": self.audio.bytes_up,
                            "from_phone_bytes": self.audio.bytes_down}
        return out


def _device_of(call_path: str | None) -> str | None:
    """The BlueZ device of an oFono HFP call: /hfp/org/bluez/hci0/dev_X/voicecall01 -> /org/bluez/hci0/dev_X."""
    if not call_path or not call_path.startswith("/hfp/"):
        return None
    return call_path[len("/hfp"):].rsplit("/", 1)[0]
