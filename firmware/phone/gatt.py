"""The Nordic UART Service served from the glasses through BlueZ's GATT server API.

BlueZ's GattManager1.RegisterApplication takes an object tree we export (an ObjectManager
root, one GattService1, its GattCharacteristic1s: doc/gatt-api.txt) and serves it over the
air; LEAdvertisingManager1.RegisterAdvertisement takes an LEAdvertisement1 object. A phone
that writes the RX characteristic reaches `on_write(bytes, device)`; `notify(bytes)` sends on TX to
whoever enabled notifications (Gadgetbridge does so on connecting). Gadgetbridge finds a
Bangle.js by this service UUID and a name matching `Bangle\\.js.*`
(BangleJSCoordinator.getSupportedDeviceName), so the advertised name starts with it.
"""

import logging
from typing import Callable

from dbus_fast import DBusError
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property, method

from . import dbus as d

log = logging.getLogger("glasses.phone")

NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"       # phone writes
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"       # glasses notify
APP_PATH = "/glasses/gatt"
SERVICE_PATH = APP_PATH + "/service0"
RX_PATH = SERVICE_PATH + "/char0"
TX_PATH = SERVICE_PATH + "/char1"
ADVERT_PATH = "/glasses/advert0"
DEFAULT_CHUNK = 20            # ATT MTU 23 minus the 3-byte header: what every phone accepts


class _Service(ServiceInterface):
    def __init__(self):
        super().__init__("org.bluez.GattService1")

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return NUS_SERVICE

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> "b":
        return True


class _Rx(ServiceInterface):
    def __init__(self, on_write: Callable[[bytes, dict], None]):
        super().__init__("org.bluez.GattCharacteristic1")
        self._on_write = on_write

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return NUS_RX

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> "o":
        return SERVICE_PATH

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> "as":
        # Only a bonded phone may write: an unpaired one is made to pair first (and the wearer
        # asked), so no stranger can speak through the glasses or fake a wallet's answer.
        return ["write", "write-without-response", "encrypt-authenticated-write"]

    @method()
    def WriteValue(self, value: "ay", options: "a{sv}") -> None:
        self._on_write(bytes(value), d.unwrap(options))


class _Tx(ServiceInterface):
    def __init__(self, on_subscribed: Callable[[bool], None]):
        super().__init__("org.bluez.GattCharacteristic1")
        self.value = b""
        self.notifying = False
        self._on_subscribed = on_subscribed

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> "s":
        return NUS_TX

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> "o":
        return SERVICE_PATH

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> "as":
        return ["notify", "encrypt-authenticated-read"]

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> "ay":
        return self.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> "b":
        return self.notifying

    @method()
    def ReadValue(self, options: "a{sv}") -> "ay":
        return self.value

    @method()
    def StartNotify(self) -> None:
        if not self.notifying:
            self.notifying = True
            self._on_subscribed(True)

    @method()
    def StopNotify(self) -> None:
        if self.notifying:
            self.notifying = False
            self._on_subscribed(False)


class _Advertisement(ServiceInterface):
    def __init__(self, name: str):
        super().__init__("org.bluez.LEAdvertisement1")
        self.local_name = name        # not `name`: ServiceInterface keeps the interface's there
        self.released = False

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> "s":
        return "peripheral"

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> "as":
        return [NUS_SERVICE]

    @dbus_property(access=PropertyAccess.READ)
    def LocalName(self) -> "s":
        return self.local_name

    @dbus_property(access=PropertyAccess.READ)
    def Includes(self) -> "as":
        return ["tx-power"]

    @method()
    def Release(self) -> None:
        # BlueZ dropped the advertisement (adapter off, or it restarted).
        self.released = True


class UartServer:
    """The exported NUS objects, registered with BlueZ on one adapter.

    `on_write(bytes, device path or "")` gets each write to RX; `on_subscribed(bool)` when a phone enables or
    disables TX notifications. `register` raises BusCallFailed naming what BlueZ refused.
    """

    def __init__(self, bus, adapter_path: str, name: str, on_write: Callable[[bytes, str], None],
                 on_subscribed: Callable[[bool], None], timeout_s: float = 5.0):
        self.bus, self.adapter_path, self.timeout_s = bus, adapter_path, timeout_s
        self.chunk_bytes = DEFAULT_CHUNK
        self._on_write = on_write
        self.rx = _Rx(self._written)
        self.tx = _Tx(on_subscribed)
        self.advert = _Advertisement(name)
        bus.export(SERVICE_PATH, _Service())
        bus.export(RX_PATH, self.rx)
        bus.export(TX_PATH, self.tx)
        bus.export(ADVERT_PATH, self.advert)

    def _written(self, value: bytes, options: dict) -> None:
        mtu = options.get("mtu")
        if isinstance(mtu, int) and mtu > 23:
            self.chunk_bytes = min(512, mtu - 3)    # BlueZ 5.62+ tells the link's MTU
        device = options.get("device")
        self._on_write(value, device if isinstance(device, str) else "")

    async def register(self) -> None:
        """RegisterApplication and RegisterAdvertisement on the adapter."""
        await d.call(self.bus, "org.bluez", self.adapter_path, "org.bluez.GattManager1",
                     "RegisterApplication", "oa{sv}", [APP_PATH, {}], self.timeout_s)
        await d.call(self.bus, "org.bluez", self.adapter_path, "org.bluez.LEAdvertisingManager1",
                     "RegisterAdvertisement", "oa{sv}", [ADVERT_PATH, {}], self.timeout_s)
        self.advert.released = False

    def drop_subscriber(self) -> None:
        """The phone's link went down: its notification session ends with it (as in BlueZ)."""
        if self.tx.notifying:
            self.tx.StopNotify()

    @property
    def subscribed(self) -> bool:
        return self.tx.notifying

    def notify(self, data: bytes) -> int:
        """Send `data` on TX in MTU-sized notifications; how many were sent.

        d.BusUnavailable if no phone has notifications on (nothing would receive it).
        """
        if not self.tx.notifying:
            raise d.BusUnavailable("no phone is subscribed to the glasses' UART (TX) notifications")
        if not self.bus.connected:
            raise d.BusUnavailable("the D-Bus connection to BlueZ is closed")
        count = 0
        for i in range(0, len(data), self.chunk_bytes):
            self.tx.value = data[i:i + self.chunk_bytes]
            self.tx.emit_properties_changed({"Value": self.tx.value}, [])
            count += 1
        return count

    def close(self) -> None:
        for path in (SERVICE_PATH, RX_PATH, TX_PATH, ADVERT_PATH):
            try:
                self.bus.unexport(path)
            except (DBusError, ValueError, KeyError):
                pass
