"""The sim board's Bluetooth: a private D-Bus, BlueZ's API on it, and the wearer's phone.

What runs: a real `dbus-daemon` (its own config, a socket in /tmp), python-dbusmock serving
org.bluez from our template (bluez_mock.py: bluez5 plus GattManager1, LEAdvertisingManager1,
an agent that is asked, range), and `GadgetbridgePhone`: the phone app's side, acting as
Gadgetbridge does towards a Bangle.js. It connects, enables notifications on the glasses'
UART TX, writes Gadgetbridge lines (`\\x10GB({t:"notify",...})\\n`, JavaScript-ish, in
20-byte writes) to RX with WriteValue, and answers what the glasses send: payment intents
(as the wallet app would, through a Tasker task), http look-ups (as the internet would).
The firmware sees only the bus address (the board's `[bluetooth] bus = "sim"`).

`sim phone ...` (firmware/console/sim.py) turns the knobs: in range or not, what the wallet
answers, what a product looks up to, a notification or a turn instruction to send.
"""

import asyncio
import base64
import json
import logging
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from ..errors import ConfigError, Unreachable
from .processes import die_with_parent, stop

log = logging.getLogger("glasses.sim.phone")

TEMPLATE = Path(__file__).with_name("bluez_mock.py")
SYSTEM_PYTHON = "/usr/bin/python3"       # Debian's, where apt's python3-dbusmock lives
DBUSMOCK = Path("/usr/lib/python3/dist-packages/dbusmock")
NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
GADGETBRIDGE_NAMES = re.compile(r"Bangle\.js.*|Pixl\.js.*|Puck\.js.*|MDBT42Q.*|Espruino.*")
WALLET_ANSWERS = ("approve", "decline", "silent")
CHUNK = 20                     # Gadgetbridge's default mtuSize
CALL_S = 5.0
START_S = 10.0

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>glasses-sim</type>
  <listen>{listen}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


DBUS_MAX_SOCKET_NAME = 99      # dbus-daemon's own limit, below the kernel's 108


class SimBluetooth:
    """The private bus and the BlueZ mock (processes), and the phone (`self.phone`)."""

    def __init__(self, data_dir: Path, adapter: str = "hci0", alias: str = "Bangle.js Glasses",
                 phone_name: str = "Pixel 8", phone_address: str = "AA:BB:CC:00:11:22"):
        for tool, package in (("dbus-daemon", "dbus"), (SYSTEM_PYTHON, "python3")):
            if shutil.which(tool) is None:
                raise ConfigError(f"the sim board's Bluetooth needs {tool}: apt-get install {package} "
                                  "(scripts/setup.sh installs it)")
        if not DBUSMOCK.is_dir():
            raise ConfigError(f"the sim board's Bluetooth needs python-dbusmock for {SYSTEM_PYTHON} "
                              f"(no {DBUSMOCK}): apt-get install python3-dbusmock (scripts/setup.sh "
                              "installs it)")
        self.dir = Path(data_dir) / "sim" / "bluetooth"
        self.dir.mkdir(parents=True, exist_ok=True)
        # The socket lives in the data directory (the sim's hardware, like its speaker files);
        # /tmp only if that path is too long: dbus-daemon refuses a socket name over 99 bytes
        # ("Socket name too long"), and it adds "/dbus-XXXXXXXXXX" to the directory.
        fits = len(os.fsencode(self.dir)) + len("/dbus-XXXXXXXXXX") <= DBUS_MAX_SOCKET_NAME
        listen = f"unix:dir={self.dir}" if fits else "unix:tmpdir=/tmp"
        (self.dir / "bus.conf").write_text(BUS_CONFIG.format(listen=listen))
        self._procs: list[subprocess.Popen] = []
        daemon_log = self.dir / "dbus-daemon.log"   # its fd-limit warning as non-root, or why it failed
        with open(daemon_log, "wb") as err:
            self.daemon = self._start(["dbus-daemon", "--config-file", str(self.dir / "bus.conf"),
                                       "--nofork", "--print-address"], stdout=subprocess.PIPE,
                                      stderr=err)
        self.address = _first_line(self.daemon, 5.0, daemon_log)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.address)
        params = {"adapter": adapter, "alias": alias,
                  "bonded": {"address": phone_address, "name": phone_name}}
        self._mock_log = open(self.dir / "bluez-mock.log", "ab")
        self._mock_argv = [SYSTEM_PYTHON, "-m", "dbusmock", "--system", "--template", str(TEMPLATE),
                           "-p", json.dumps(params)]
        self._env = env
        self.mock = self._start(self._mock_argv, env=env, stdout=self._mock_log, stderr=subprocess.STDOUT)
        self.phone = GadgetbridgePhone(self.address, adapter, phone_name, phone_address)
        self._task = None
        try:
            self._task = asyncio.get_running_loop().create_task(self.phone.start(), name="sim-phone")
        except RuntimeError:
            pass                    # no loop (a board built outside the firmware): no phone

    def restart_bluez(self) -> None:
        """bluetoothd restarts: every registration is lost; the bonded phone is still known."""
        self.mock.terminate()
        self.mock.wait(timeout=5)
        self._procs.remove(self.mock)
        self.mock = self._start(self._mock_argv, env=self._env, stdout=self._mock_log,
                                stderr=subprocess.STDOUT)

    def _start(self, argv, **kw) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent, **kw)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.phone.close()
        for proc in reversed(self._procs):
            stop(proc, timeout_s=3)
        self._procs = []
        self._mock_log.close()


def _first_line(proc: subprocess.Popen, timeout_s: float, log: Path) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line:
        proc.kill()
        proc.wait(timeout=5)
        said = log.read_text(errors="replace").strip().splitlines()
        said = f": {said[-1]}" if said else ""
        raise ConfigError(f"the sim's dbus-daemon printed no address within {timeout_s:g} s"
                          f"{said} (its log: {log})")
    return line


def gadgetbridge_line(obj: dict) -> bytes:
    """A phone-to-watch line as Gadgetbridge forms it (BangleJSDeviceSupport.uartTxJSON)."""
    return ("\x10GB(" + _js(obj) + ")\n").encode("latin-1", errors="replace")


def _js(v) -> str:
    if isinstance(v, str):
        out = []
        for i, ch in enumerate(v):
            c, nxt = ord(ch), (v[i + 1] if i + 1 < len(v) else "")
            if c < 8:
                out.append(f"\\x0{c}" if "0" <= nxt <= "7" else f"\\{c}")
            elif ch in "\b\t\n\v\f":
                out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f"}[ch])
            elif ch in "\"\\":
                out.append("\\" + ch)
            elif c < 32 or c in (127, 173):
                out.append(f"\\x{c:02x}")
            else:
                out.append(ch)
        quoted = '"' + "".join(out) + '"'
        if len(quoted) > 5 + len(v) * 4 / 3:          # Gadgetbridge sends base64 when shorter
            return 'atob("' + base64.b64encode(v.encode("latin-1", errors="replace")).decode() + '")'
        return quoted
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_js(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_js(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return "null" if v is None else str(v)


class GadgetbridgePhone:
    """The wearer's Android phone running Gadgetbridge, paired with the glasses as a Bangle.js."""

    def __init__(self, address: str, adapter: str, name: str, phone_address: str):
        self.bus_address, self.adapter, self.name, self.address = address, adapter, name, phone_address
        self.present = True
        self.wallet = "approve"
        self.intents = True                      # Gadgetbridge's "Allow Intents" device setting
        self.products: dict[str, str] = {}
        self.payments: list[dict] = []           # every payment intent that reached the phone
        self.lookups: list[str] = []
        self.received: list[dict] = []           # every JSON line the glasses sent
        self.sent = 0
        self.linked = False
        self.bus: MessageBus | None = None
        self._glasses: tuple[str, str, str] | None = None    # (owner, rx path, tx path)
        self._rx_buf = b""
        self._refs = 0
        self._ready = asyncio.Event()
        self._writing = asyncio.Lock()           # Gadgetbridge queues writes: lines never interleave

    @property
    def device_path(self) -> str:
        return f"/org/bluez/{self.adapter}/dev_{self.address.replace(':', '_')}"

    async def _call(self, dest, path, iface, member, sig="", body=(), timeout_s=CALL_S):
        if self.bus is None or not self.bus.connected:
            raise Unreachable("the sim phone has no bus")
        reply = await asyncio.wait_for(self.bus.call(Message(
            destination=dest, path=path, interface=iface, member=member, signature=sig,
            body=list(body))), timeout_s)
        if reply.message_type == MessageType.ERROR:
            raise Unreachable(f"{member}: {reply.error_name}: {reply.body[0] if reply.body else ''}")
        return reply.body

    async def _mock(self, member, sig="", body=()):
        return await self._call("org.bluez", "/", "org.bluez.Mock", member, sig, body)

    # Start-up: the bonded phone reconnects once the glasses serve their UART.
    async def start(self) -> None:
        deadline = time.monotonic() + START_S
        while True:
            try:
                if self.bus is None:
                    self.bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM).connect()
                    self.bus.add_message_handler(self._signal)
                await self.attach()
                return
            except (Unreachable, OSError, asyncio.TimeoutError) as e:
                if time.monotonic() > deadline:
                    log.warning("the sim phone could not reach the glasses: %s", e)
                    self._ready.set()
                    return
                await asyncio.sleep(0.1)

    async def ready(self, timeout_s: float = START_S) -> None:
        """Wait (real time) until the phone's start-up has linked or given up."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass

    async def attach(self) -> None:
        """In range and connected: Gadgetbridge opens the UART as it does on connecting."""
        await self._mock("PhoneNear", "ss", [self.address, self.name])
        await self._mock("ConnectDevice", "ss", [self.adapter, self.address])
        owner, chars = await self._mock("GattApplication", "s", [NUS_SERVICE])
        if NUS_RX not in chars or NUS_TX not in chars:
            raise Unreachable("the glasses' UART service lacks RX or TX")
        self._glasses = (owner, chars[NUS_RX], chars[NUS_TX])
        await self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                         "AddMatch", "s", [f"type='signal',sender='{owner}',path='{chars[NUS_TX]}',"
                                           "interface='org.freedesktop.DBus.Properties'"])
        self.linked = True          # before StartNotify: the glasses may answer it at once
        try:
            await self._call(owner, chars[NUS_TX], "org.bluez.GattCharacteristic1", "StartNotify")
        except BaseException:
            self.linked = False
            raise
        self._ready.set()
        # Gadgetbridge's initializeDevice: clear the line, then set the time.
        await self.write(b" \x03")
        await self.write(f"\x10setTime({int(time.time())});E.setTimeZone(0);\n".encode())

    async def detach(self) -> None:
        """Out of range: the link drops, and BlueZ stops the notifications it had started."""
        self.linked = False
        await self._mock("PhoneAway", "s", [self.address])
        if self._glasses is not None:
            owner, _rx, tx = self._glasses
            try:
                await self._call(owner, tx, "org.bluez.GattCharacteristic1", "StopNotify")
            except (Unreachable, asyncio.TimeoutError):
                pass

    async def set_present(self, present: bool) -> None:
        if present == self.present and present == self.linked:
            return
        self.present = present
        if present:
            await self.attach()
        else:
            await self.detach()

    async def pair(self) -> int:
        """The phone asks to pair (Gadgetbridge's "add device" on a Bangle.js it scanned)."""
        adverts = await self._mock("Advertisements")
        if not any(GADGETBRIDGE_NAMES.fullmatch(name) and NUS_SERVICE in uuids
                   for name, uuids in adverts[0]):
            raise Unreachable("Gadgetbridge sees no Bangle.js: the glasses do not advertise the UART")
        passkey = (await self._mock("PhonePair", "ss", [self.address, self.name]))[0]
        asyncio.get_running_loop().create_task(self._after_pairing(), name="sim-phone-paired")
        return passkey

    async def _after_pairing(self) -> None:
        for _ in range(600):
            result = (await self._mock("PairingResult", "s", [self.address]))[0]
            if result == "paired":
                self.present = True
                await self.attach()
                return
            if result.startswith("rejected"):
                return
            await asyncio.sleep(0.1)

    async def write(self, data: bytes) -> None:
        """Write to the glasses' RX as Gadgetbridge does: MTU-sized WriteValue calls."""
        if not self.linked or self._glasses is None:
            raise Unreachable("the phone is not connected to the glasses")
        owner, rx, _tx = self._glasses
        options = {"device": Variant("o", self.device_path), "link": Variant("s", "LE"),
                   "mtu": Variant("q", CHUNK + 3)}
        async with self._writing:
            for i in range(0, len(data), CHUNK):
                await self._call(owner, rx, "org.bluez.GattCharacteristic1", "WriteValue", "aya{sv}",
                                 [data[i:i + CHUNK], options])
            self.sent += 1

    async def send(self, obj: dict) -> None:
        await self.write(gadgetbridge_line(obj))

    # What the glasses send: notifications on TX.
    def _signal(self, msg: Message):
        if (msg.message_type != MessageType.SIGNAL or self._glasses is None
                or msg.path != self._glasses[2] or msg.member != "PropertiesChanged"):
            return None
        value = msg.body[1].get("Value")
        if value is None or not self.linked:
            return None
        self._rx_buf += bytes(value.value)
        while b"\n" in self._rx_buf:
            line, self._rx_buf = self._rx_buf.split(b"\n", 1)
            try:
                obj = json.loads(line.rstrip(b"\r"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                log.info("the glasses sent a line Gadgetbridge cannot parse: %r", line[:60])
                continue
            if isinstance(obj, dict):
                self.received.append(obj)
                asyncio.get_running_loop().create_task(self._answer(obj), name="sim-phone-answer")
        return None

    async def _answer(self, obj: dict) -> None:
        await asyncio.sleep(0.05)            # the app's and the network's round trip
        try:
            if obj.get("t") == "intent":
                await self._intent(obj)
            elif obj.get("t") == "http":
                code = re.search(r"/product/(\d+)", str(obj.get("url", "")))
                digits = code.group(1) if code else ""
                self.lookups.append(digits)
                name = self.products.get(digits)
                body = {"status": 1, "product": {"product_name": name}} if name else \
                    {"status": 0, "status_verbose": "product not found"}
                await self.send({"t": "http", "id": obj.get("id"), "resp": json.dumps(body)})
        except Unreachable as e:
            log.info("the sim phone could not answer: %s", e)

    async def _intent(self, obj: dict) -> None:
        if not self.intents:
            await self.send({"t": "intent", "err": "Android Intents not enabled, check Gadgetbridge Device Settings"})
            return
        extra = obj.get("extra") or {}
        self.payments.append({"payee": extra.get("payee", "?"), "amount": extra.get("amount", "?"),
                              "currency": extra.get("currency", "?"), "scheme": extra.get("scheme", "?"),
                              "data": obj.get("data", "")})
        if self.wallet == "silent":
            return
        ident = extra.get("glasses_id")
        if self.wallet == "decline":
            await self.send({"t": "wallet", "id": ident, "status": "declined",
                             "reason": "the wallet app declined it"})
        else:
            self._refs += 1
            await self.send({"t": "wallet", "id": ident, "status": "paid", "ref": f"SIM-{self._refs:06d}"})

    def close(self) -> None:
        self.linked = False
        if self.bus is not None:
            self.bus.disconnect()
            self.bus = None
