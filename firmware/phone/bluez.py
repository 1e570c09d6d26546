"""The Bluetooth link to the wearer's phone, through BlueZ on D-Bus.

`PhoneLink.run()` keeps one bus connection (reconnecting with back-off when bluetoothd or
the bus goes away) and on it: the adapter powered, named and pairable; a pairing agent
(Agent1) whose confirmations the wearer gives with the action button pressed twice (or
`phone pair accept`); the Nordic UART GATT service and its advertisement (gatt.py); the
bonded phone watched through ObjectManager and PropertiesChanged, and reconnected with
back-off while it is away. What a phone writes to the UART goes to `on_write(bytes)`;
`on_link(bool)` says when the UART's notifications are on or off.

Failure modes: BlueZ missing or refusing is a `phone` event and a retry, never a crash;
a pairing nobody confirms within `confirm_s` is rejected (org.bluez.Error.Rejected).

The link's own state (starting, no_bluez, ready) is the declared table TRANSITIONS;
`LinkMachine.fire` is its only move.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable

from dbus_fast import DBusError, Variant
from dbus_fast.service import ServiceInterface, method

from glasses_firmware.drivers.errors import GlassesError, Unreachable

from .. import statetable
from ..ports import Clock, EventSink, Speaks
from ..statetable import Machine
from ..tasks import spawn
from . import dbus as d
from .gatt import UartServer

log = logging.getLogger("glasses.phone")

BLUEZ = "org.bluez"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"
AGENT_PATH = "/glasses/agent"
HOW_TO_CONFIRM = "press the action button twice"
PAIR_GESTURE = ("power", "double")

STARTING, NO_BLUEZ, READY = "starting", "no_bluez", "ready"
INITIAL = STARTING
# Whether BlueZ is set up on the bus: `run` is the only mover and knows where it is, so an
# undeclared move is a bug (RuntimeError). Another failed try while no_bluez is no move (the
# error text is kept, the log and history do not grow every back-off). What `status()`
# shows while ready (confirming, pairing, unpaired, connected, disconnected) is not kept
# here: it is read from BlueZ's devices, the pairing window and a waiting confirmation,
# which overlap (a phone may ask to pair outside the window) and change without us.
TRANSITIONS = {
    (STARTING, "up"): READY,
    (STARTING, "unavailable"): NO_BLUEZ,
    (NO_BLUEZ, "up"): READY,
    (READY, "lost"): NO_BLUEZ,
}


class LinkMachine(Machine):
    """The link's state (starting, no_bluez, ready); `fire` is the only way it changes."""

    def __init__(self):
        super().__init__(TRANSITIONS, INITIAL, log, "phone link")


def mermaid() -> str:
    """The phone link's state diagram as Mermaid text, for docs/architecture.md."""
    return statetable.mermaid(TRANSITIONS, INITIAL)


@dataclass(frozen=True)
class LinkSettings:
    bus_address: str | None          # None: the system bus
    adapter: str = "hci0"
    alias: str = "Bangle.js Glasses"  # Gadgetbridge lists a Bangle.js by this prefix
    call_timeout_s: float = 5.0
    connect_timeout_s: float = 8.0
    pairing_window_s: float = 120.0
    confirm_s: float = 30.0
    backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class _Agent(ServiceInterface):
    """org.bluez.Agent1 with DisplayYesNo: every pairing is confirmed by the wearer."""

    def __init__(self, link: "PhoneLink"):
        super().__init__("org.bluez.Agent1")
        self.link = link

    @method()
    def Release(self) -> None:
        log.info("BlueZ released the pairing agent")

    @method()
    async def RequestConfirmation(self, device: "o", passkey: "u") -> None:
        await self.link._confirm(device, f"{passkey:06d}")

    @method()
    async def RequestAuthorization(self, device: "o") -> None:
        await self.link._confirm(device, None)

    @method()
    def RequestPinCode(self, device: "o") -> "s":
        raise DBusError("org.bluez.Error.Rejected", "the glasses confirm pairings, they cannot type a PIN")

    @method()
    def RequestPasskey(self, device: "o") -> "u":
        raise DBusError("org.bluez.Error.Rejected", "the glasses confirm pairings, they cannot type a passkey")

    @method()
    def DisplayPasskey(self, device: "o", passkey: "u", entered: "q") -> None:
        pass

    @method()
    def AuthorizeService(self, device: "o", uuid: "s") -> None:
        if not self.link._is_bonded(device):
            raise DBusError("org.bluez.Error.Rejected", "only the bonded phone may use the glasses' services")

    @method()
    def Cancel(self) -> None:
        self.link.answer_pairing(False, "cancelled by the phone")


class PhoneLink:
    """BlueZ as the firmware sees it; `status()` is the `phone` object of `status --json`."""

    def __init__(self, settings: LinkSettings, events: EventSink, clock: Clock,
                 on_write: Callable[[bytes], None] = lambda data: None,
                 on_link: Callable[[bool], None] = lambda up: None, speech: Speaks | None = None):
        self.settings, self.events, self.clock, self.speech = settings, events, clock, speech
        self.on_write, self.on_link = on_write, on_link
        self.adapter_path = f"/org/bluez/{settings.adapter}"
        self.bus = None
        self.uart: UartServer | None = None
        self.machine = LinkMachine()
        self.error = ""
        self.powered = False
        self.pairing_until: float | None = None
        self.devices: dict[str, dict] = {}     # Device1 path -> properties
        self.pending: tuple[asyncio.Future, str, str | None] | None = None   # (answer, device, passkey)
        self.last_seen: float | None = None    # wall time the phone was last connected or wrote
        self._changed = asyncio.Event()
        self._strangers: set[str] = set()      # devices whose writes were ignored (told once)
        self._stopping = False

    # What the rest of the firmware reads.
    @property
    def state(self) -> str:
        """starting, no_bluez or ready (TRANSITIONS)."""
        return self.machine.state

    @property
    def phone(self) -> dict | None:
        """The bonded phone's Device1 properties (with "path"), None if none is bonded."""
        paired = [dict(p, path=path) for path, p in self.devices.items() if p.get("Paired")]
        paired.sort(key=lambda p: not p.get("Trusted"))
        return paired[0] if paired else None

    @property
    def connected(self) -> bool:
        p = self.phone
        return bool(p and p.get("Connected"))

    @property
    def subscribed(self) -> bool:
        return bool(self.uart and self.uart.subscribed)

    def status(self) -> dict:
        p = self.phone
        pairing = self.pairing_until is not None and self.clock.monotonic() < self.pairing_until
        if self.state != READY:
            state = self.state
        elif self.pending is not None:
            state = "confirming"
        elif pairing:
            state = "pairing"
        elif p is None:
            state = "unpaired"
        else:
            state = "connected" if p.get("Connected") else "disconnected"
        return {"state": state, "adapter": self.settings.adapter, "powered": self.powered,
                "name": self.settings.alias,
                "paired": None if p is None else {"name": p.get("Alias") or p.get("Name", ""),
                                                  "address": p.get("Address", "")},
                "connected": bool(p and p.get("Connected")), "companion": self.subscribed,
                "pairing_s_left": round(self.pairing_until - self.clock.monotonic(), 1) if pairing else 0,
                "confirm": None if self.pending is None else {"device": self._name(self.pending[1]),
                                                              "passkey": self.pending[2]},
                "last_seen": None if self.last_seen is None else round(self.last_seen, 1),
                "error": self.error}

    def notify(self, data: bytes) -> int:
        """Send bytes to the phone's companion app (UART TX); Unreachable if it is not there."""
        if self.uart is None:
            raise Unreachable(f"Bluetooth is not up ({self.error or self.state})")
        return self.uart.notify(data)

    # Lifecycle.
    async def run(self) -> None:
        """Connect, set up and watch; on any loss, back off and start again. Cancel to stop."""
        backoff = d.Backoff(self.settings.backoff_s)
        while not self._stopping:
            try:
                await self._session(backoff)
            except (GlassesError, DBusError, OSError, EOFError, ValueError) as e:
                if self.error != str(e):
                    self.events.emit("phone", f"bluetooth unavailable: {e}")
                self.error = str(e)
                if self.state != NO_BLUEZ:
                    self.machine.fire("lost" if self.state == READY else "unavailable", str(e))
            self._teardown()
            await self.clock.asleep(backoff.next())

    async def _session(self, backoff: d.Backoff) -> None:
        s = self.settings
        self.bus = bus = await d.connect(s.bus_address, s.call_timeout_s)
        objects = await d.managed_objects(bus, BLUEZ, s.call_timeout_s)
        if self.adapter_path not in objects:
            raise d.BusUnavailable(f"BlueZ has no adapter {s.adapter} (found: "
                                   f"{', '.join(p for p in objects if p.count('/') == 3) or 'none'})")
        for prop, value in (("Powered", Variant("b", True)), ("Alias", Variant("s", s.alias)),
                            ("Pairable", Variant("b", True))):
            await d.set_property(bus, BLUEZ, self.adapter_path, ADAPTER, prop, value, s.call_timeout_s)
        self.powered = True
        self.devices = {path: i[DEVICE] for path, i in objects.items() if DEVICE in i
                        and path.startswith(self.adapter_path + "/")}
        bus.export(AGENT_PATH, _Agent(self))
        await d.call(bus, BLUEZ, "/org/bluez", "org.bluez.AgentManager1", "RegisterAgent", "os",
                     [AGENT_PATH, "DisplayYesNo"], s.call_timeout_s)
        await d.call(bus, BLUEZ, "/org/bluez", "org.bluez.AgentManager1", "RequestDefaultAgent", "o",
                     [AGENT_PATH], s.call_timeout_s)
        self.uart = UartServer(bus, self.adapter_path, s.alias, self._written, self._subscribed,
                               s.call_timeout_s)
        await self.uart.register()
        await d.subscribe(bus, self._properties, interface="org.freedesktop.DBus.Properties",
                          member="PropertiesChanged", sender=BLUEZ, path_namespace=self.adapter_path)
        await d.subscribe(bus, self._interfaces, interface="org.freedesktop.DBus.ObjectManager",
                          sender=BLUEZ)
        # bluetoothd restarting drops every registration while the bus stays up: start again.
        gone = asyncio.get_running_loop().create_future()
        await d.subscribe(bus, lambda msg: msg.body[0] == BLUEZ and not msg.body[2] and not gone.done()
                          and gone.set_result(None), interface="org.freedesktop.DBus",
                          member="NameOwnerChanged", sender="org.freedesktop.DBus")
        self.error = ""
        self.machine.fire("up", f"bluetooth ready as {s.alias!r}")
        backoff.reset()
        p = self.phone
        self.events.emit("phone", f"bluetooth ready as {s.alias!r}; "
                         + (f"bonded phone {self._name(p['path'])}" if p else "no phone paired yet"))
        keeper = asyncio.ensure_future(self._keep_connected())
        closed = asyncio.ensure_future(bus.wait_for_disconnect())
        try:
            await asyncio.wait({closed, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (keeper, closed, gone):
                task.cancel()
            await asyncio.gather(keeper, closed, return_exceptions=True)
        if gone.done() and not gone.cancelled():
            self.events.emit("phone", "bluetooth lost: bluetoothd left the bus; starting again")
            raise d.BusUnavailable("bluetoothd left the bus")
        raise d.BusUnavailable("the D-Bus connection to BlueZ closed")

    async def _keep_connected(self) -> None:
        """While a bonded phone is away, ask BlueZ to connect it, backing off between tries."""
        backoff = d.Backoff(self.settings.backoff_s)
        while True:
            p = self.phone
            if p is None or p.get("Connected"):
                backoff.reset()
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), 30.0)
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                await d.call(self.bus, BLUEZ, p["path"], DEVICE, "Connect", "", [],
                             self.settings.connect_timeout_s)
            except d.BusCallFailed as e:
                log.info("reconnecting %s: %s", p.get("Address"), e)
            except d.BusUnavailable:
                return
            await self.clock.asleep(backoff.next())

    def _teardown(self) -> None:
        if self.uart is not None:
            self.uart.close()
        self.uart = None
        if self.pending is not None and not self.pending[0].done():
            self.pending[0].set_result(False)
        self.pending = None
        if self.bus is not None:
            self.bus.disconnect()
        self.bus = None
        self.powered = False
        self.on_link(False)

    def close(self) -> None:
        self._stopping = True
        self._teardown()

    # Signals from BlueZ.
    def _properties(self, msg) -> None:
        iface, changed = msg.body[0], d.unwrap(msg.body[1])
        if iface != DEVICE or msg.path not in self.devices:
            return
        before = dict(self.devices[msg.path])
        self.devices[msg.path].update(changed)
        self._device_changed(msg.path, before)

    def _interfaces(self, msg) -> None:
        if msg.member == "InterfacesAdded":
            path, interfaces = msg.body[0], d.unwrap(msg.body[1])
            if DEVICE in interfaces and path.startswith(self.adapter_path + "/"):
                self.devices[path] = interfaces[DEVICE]
                self._device_changed(path, {})
        elif msg.member == "InterfacesRemoved":
            path, names = msg.body
            if DEVICE in names and self.devices.pop(path, None) is not None:
                if self.uart is not None and self.phone is None:
                    self.uart.drop_subscriber()
                self.events.emit("phone", f"forgotten {path.rsplit('/', 1)[-1][4:].replace('_', ':')}")
                self._changed.set()

    def _device_changed(self, path: str, before: dict) -> None:
        now = self.devices[path]
        name = self._name(path)
        if now.get("Paired") and not before.get("Paired"):
            self.events.emit("phone", f"paired {name}")
            self.pairing_until = None
            spawn(self._bond(path), name="phone-bond")
        if now.get("Connected") != before.get("Connected") and now.get("Paired"):
            self.events.emit("phone", f"{'connected' if now.get('Connected') else 'disconnected'} {name}")
            if now.get("Connected"):
                self.last_seen = self.clock.wall()
            elif self.uart is not None:
                self.uart.drop_subscriber()
        self._changed.set()

    async def _bond(self, path: str) -> None:
        """Trust the new phone (it may reconnect without asking) and close the pairing window."""
        try:
            await d.set_property(self.bus, BLUEZ, path, DEVICE, "Trusted", Variant("b", True),
                                 self.settings.call_timeout_s)
            await d.set_property(self.bus, BLUEZ, self.adapter_path, ADAPTER, "Discoverable",
                                 Variant("b", False), self.settings.call_timeout_s)
        except GlassesError as e:
            self.events.emit("phone", f"could not trust {self._name(path)}: {e}")

    def _name(self, path: str) -> str:
        p = self.devices.get(path, {})
        return f"{p.get('Alias') or p.get('Name') or 'phone'} ({p.get('Address', path[-17:].replace('_', ':'))})"

    def _is_bonded(self, path: str) -> bool:
        p = self.devices.get(path, {})
        return bool(p.get("Paired") and p.get("Trusted"))

    # From the GATT server.
    def _written(self, data: bytes, device: str) -> None:
        # BlueZ names the writer (5.46+); only the bonded phone's lines are the companion's.
        if device and not self._is_bonded(device):
            if device not in self._strangers:
                self._strangers.add(device)
                self.events.emit("phone", f"ignored writes from {self._name(device)}: not the bonded phone")
            return
        self.last_seen = self.clock.wall()
        self.on_write(data)

    def _subscribed(self, up: bool) -> None:
        self.events.emit("phone", f"companion {'linked' if up else 'unlinked'}")
        self.on_link(up)

    # Pairing.
    async def pair(self) -> str:
        """Open a pairing window: discoverable and pairable for `pairing_window_s`."""
        if self.state != READY:
            raise Unreachable(f"Bluetooth is not up ({self.error or self.state}); cannot pair")
        s = self.settings
        for prop, value in (("Pairable", Variant("b", True)),
                            ("DiscoverableTimeout", Variant("u", int(s.pairing_window_s))),
                            ("Discoverable", Variant("b", True))):
            await d.set_property(self.bus, BLUEZ, self.adapter_path, ADAPTER, prop, value, s.call_timeout_s)
        self.pairing_until = self.clock.monotonic() + s.pairing_window_s
        text = (f"pairing open for {s.pairing_window_s:g} s: in Gadgetbridge, add the device "
                f"{s.alias!r} (Bangle.js)")
        self.events.emit("phone", text)
        return text

    async def forget(self) -> str:
        p = self.phone
        if p is None:
            raise Unreachable("no phone is paired with the glasses")
        await d.call(self.bus, BLUEZ, self.adapter_path, ADAPTER, "RemoveDevice", "o", [p["path"]],
                     self.settings.call_timeout_s)
        self.devices.pop(p["path"], None)
        return f"forgot {self._name(p['path'])}"

    async def _confirm(self, device: str, passkey: str | None) -> None:
        """Agent1: wait for the wearer; org.bluez.Error.Rejected unless they accept in time."""
        if self.pending is not None:
            raise DBusError("org.bluez.Error.Rejected", "another pairing is waiting for the wearer")
        answer = asyncio.get_running_loop().create_future()
        self.pending = (answer, device, passkey)
        who = self._name(device)
        self.events.emit("phone", f"confirm pairing with {who}" + (f", code {passkey}" if passkey else "")
                         + f": {HOW_TO_CONFIRM}")
        if self.speech is not None:       # the glasses have no screen: the code is said
            code = f" The code is {' '.join(passkey)}." if passkey else ""
            spawn(self.speech.say(f"Pair with {who.split(' (')[0]}?{code} To accept, {HOW_TO_CONFIRM}."),
                  name="phone-pair-prompt")
        try:
            accepted = await asyncio.wait_for(answer, self.settings.confirm_s)
        except asyncio.TimeoutError:
            accepted = False
            self.events.emit("phone", f"pairing with {who} not confirmed within "
                             f"{self.settings.confirm_s:g} s; rejected")
        finally:
            self.pending = None
        if not accepted:
            raise DBusError("org.bluez.Error.Rejected", "the wearer did not confirm the pairing")

    def answer_pairing(self, accept: bool, why: str = "") -> bool:
        """The wearer's answer to a waiting confirmation; False if none was waiting."""
        if self.pending is None or self.pending[0].done():
            return False
        self.events.emit("phone", f"pairing {'accepted' if accept else 'rejected'}"
                         + (f" ({why})" if why else ""))
        self.pending[0].set_result(accept)
        return True

    def gesture(self, button: str, gesture: str) -> bool:
        """True if the link took the gesture: the action button pressed twice confirms a
        waiting pairing; the power button pressed twice opens the pairing window (a long
        press of the action button is push-to-talk, so it is not free)."""
        if (button, gesture) == ("action", "double") and self.pending is not None:
            return self.answer_pairing(True, "action button")
        if (button, gesture) == PAIR_GESTURE:
            spawn(self._pair_from_button(), name="phone-pair")
            return True
        return False

    async def _pair_from_button(self) -> None:
        try:
            await self.pair()
        except GlassesError as e:
            self.events.emit("phone", f"pairing not opened: {e}")
