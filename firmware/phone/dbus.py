"""D-Bus from asyncio (dbus-fast): connect with a deadline, call, properties, ObjectManager, signals.

Every phone service (BlueZ, the GATT server, oFono, the media player) talks D-Bus through
these few functions, so a D-Bus failure reaches the firmware as one of our errors, never a
dbus-fast type: `BusUnavailable` (no bus at that address, or it went away) and
`BusCallFailed` (the peer answered with an error; `.name` is the D-Bus error name, e.g.
`org.bluez.Error.Failed`). Both are `Unreachable` (drivers/errors.py): the thing outside the
firmware is not there or said no. Every call has a deadline (seconds).

The address is the board's (boards/*.toml `[bluetooth] bus`): None for the system bus (the
boards), or a private bus address like `unix:path=/tmp/x/bus` (the sim's own dbus-daemon).

Stable API (the calls/music services import it):
    bus = await connect(address, timeout_s)
    await call(bus, service, path, interface, member, signature, body, timeout_s) -> list
    await get_property(bus, service, path, interface, name, timeout_s) -> plain value
    await get_all(bus, service, path, interface, timeout_s) -> dict of plain values
    await set_property(bus, service, path, interface, name, Variant, timeout_s)
    await managed_objects(bus, service, timeout_s) -> {path: {interface: {name: value}}}
    remove = await subscribe(bus, callback, sender=..., interface=..., member=..., path=...)
    Backoff(delays_s).next() -> seconds to wait before the next reconnect attempt
    await stay_connected(address, timeout_s, reconnect_s, on_bus, on_lost, who)  # until cancelled
"""

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from dbus_fast import BusType, DBusError, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from glasses_firmware.drivers.errors import Unreachable

log = logging.getLogger(__name__)

__all__ = ["BusUnavailable", "BusCallFailed", "Backoff", "MessageBus", "Variant", "connect", "call",
           "get_property", "get_all", "set_property", "managed_objects", "subscribe", "unwrap",
           "stay_connected"]

PROPERTIES = "org.freedesktop.DBus.Properties"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"


class BusUnavailable(Unreachable):
    """No D-Bus at the address (or it closed); the message names the address and what to check."""


class BusCallFailed(Unreachable):
    """A D-Bus peer answered a call with an error; `name` is the D-Bus error name."""

    def __init__(self, message: str, name: str = ""):
        super().__init__(message)
        self.name = name


def _where(address: str | None) -> str:
    return address or "the system bus"


async def within(awaitable, timeout_s: float):
    """`awaitable`'s result, or asyncio.TimeoutError after `timeout_s` seconds of real time.

    Real time, not the loop's: the daemons on the bus answer in wall-clock time even when
    the firmware runs on virtual time (`--speed max`), where a loop timer would expire at
    once while a reply is still on its way.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(awaitable)
    expired = threading.Event()

    def expire():
        expired.set()
        loop.call_soon_threadsafe(task.cancel)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    try:
        return await task
    except asyncio.CancelledError:
        if expired.is_set() and not _cancelling():
            raise asyncio.TimeoutError from None
        raise
    finally:
        timer.cancel()


def _cancelling() -> bool:
    current = asyncio.current_task()
    return bool(current is not None and current.cancelling())


async def connect(address: str | None, timeout_s: float) -> MessageBus:
    """Connect to the bus at `address` (None: the system bus) within `timeout_s` seconds.

    BusUnavailable if nothing answers there in time (no dbus-daemon, wrong address, refused).
    """
    bus = MessageBus(bus_address=address, bus_type=BusType.SYSTEM) if address else MessageBus(bus_type=BusType.SYSTEM)
    try:
        return await within(bus.connect(), timeout_s)
    except asyncio.TimeoutError:
        bus.disconnect()
        raise BusUnavailable(f"D-Bus at {_where(address)} did not answer within {timeout_s:g} s; "
                             "is dbus-daemon running?") from None
    except (OSError, ValueError, EOFError, DBusError) as e:
        raise BusUnavailable(f"cannot connect to D-Bus at {_where(address)}: {e}; "
                             "check the board's [bluetooth] bus and that dbus-daemon runs") from None


def unwrap(value: Any) -> Any:
    """Variants (nested in lists and dicts too) to plain Python values."""
    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


async def call(bus: MessageBus, service: str, path: str, interface: str, member: str,
               signature: str = "", body: list | tuple = (), timeout_s: float = 5.0) -> list:
    """One method call with a deadline; the reply's body (a list).

    BusUnavailable when the bus is closed or the peer does not answer in time,
    BusCallFailed when it answers with an error.
    """
    if not bus.connected:
        raise BusUnavailable(f"D-Bus connection closed (calling {interface}.{member} on {service})")
    msg = Message(destination=service, path=path, interface=interface, member=member,
                  signature=signature, body=list(body))
    try:
        reply = await within(bus.call(msg), timeout_s)
    except asyncio.TimeoutError:
        raise BusUnavailable(f"{service} did not answer {interface}.{member} within {timeout_s:g} s") from None
    except (EOFError, OSError) as e:
        raise BusUnavailable(f"D-Bus connection lost calling {interface}.{member}: {e}") from None
    if reply is None:
        return []
    if reply.message_type == MessageType.ERROR:
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
        raise BusCallFailed(f"{interface}.{member} on {path}: {reply.error_name}: {text}".rstrip(": "),
                            reply.error_name or "")
    return list(reply.body)


async def get_property(bus: MessageBus, service: str, path: str, interface: str, name: str,
                       timeout_s: float = 5.0) -> Any:
    """One property's plain value (BusCallFailed if the object or property is not there)."""
    body = await call(bus, service, path, PROPERTIES, "Get", "ss", [interface, name], timeout_s)
    return unwrap(body[0])


async def get_all(bus: MessageBus, service: str, path: str, interface: str, timeout_s: float = 5.0) -> dict:
    """All properties of one interface, as plain values."""
    body = await call(bus, service, path, PROPERTIES, "GetAll", "s", [interface], timeout_s)
    return unwrap(body[0])


async def set_property(bus: MessageBus, service: str, path: str, interface: str, name: str,
                       value: Variant, timeout_s: float = 5.0) -> None:
    """Set one property (the value as a typed Variant, e.g. Variant("b", True))."""
    await call(bus, service, path, PROPERTIES, "Set", "ssv", [interface, name, value], timeout_s)


async def managed_objects(bus: MessageBus, service: str, timeout_s: float = 5.0, path: str = "/") -> dict:
    """ObjectManager.GetManagedObjects as {path: {interface: {property: plain value}}}."""
    body = await call(bus, service, path, OBJECT_MANAGER, "GetManagedObjects", "", [], timeout_s)
    return unwrap(body[0])


async def subscribe(bus: MessageBus, callback: Callable[[Message], None], *, interface: str,
                    member: str | None = None, sender: str | None = None, path: str | None = None,
                    path_namespace: str | None = None, timeout_s: float = 5.0) -> Callable[[], None]:
    """Call `callback(message)` for each matching signal; returns a function that unsubscribes.

    The callback runs on the loop and must not block; an exception in it is not ours to
    swallow, so callers keep it small (parse, then hand off).
    """
    rule = [f"type='signal'", f"interface='{interface}'"]
    for key, value in (("member", member), ("sender", sender), ("path", path), ("path_namespace", path_namespace)):
        if value:
            rule.append(f"{key}='{value}'")
    rule_text = ",".join(rule)
    await call(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
               [rule_text], timeout_s)

    def handler(msg: Message):
        if msg.message_type != MessageType.SIGNAL or msg.interface != interface:
            return None
        if member and msg.member != member:
            return None
        if path and msg.path != path:
            return None
        if path_namespace and not (msg.path == path_namespace or msg.path.startswith(path_namespace.rstrip("/") + "/")):
            return None
        callback(msg)
        return None

    bus.add_message_handler(handler)

    def remove():
        bus.remove_message_handler(handler)
        if bus.connected:
            # Best effort: the bus forgets the rule with the connection anyway.
            bus.send(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                             interface="org.freedesktop.DBus", member="RemoveMatch", signature="s",
                             body=[rule_text]))
    return remove


@dataclass
class Backoff:
    """Reconnect delays: each failure waits the next delay (seconds), the last one repeats."""

    delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
    failures: int = 0

    def next(self) -> float:
        delay = self.delays_s[min(self.failures, len(self.delays_s) - 1)]
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


async def stay_connected(address: str | None, timeout_s: float, reconnect_s: tuple[float, ...],
                         on_bus, on_lost, who: str) -> None:
    """Keep a bus to `address` until cancelled: connect, `await on_bus(bus)` (subscribe,
    scan), wait for it to drop, `await on_lost()`, back off by `reconnect_s`, again.

    A bus that failed half way through `on_bus` is disconnected, never reused.
    """
    backoff = Backoff(reconnect_s)
    while True:
        bus = None
        try:
            bus = await connect(address, timeout_s)
            await on_bus(bus)
            backoff.reset()
            await bus.wait_for_disconnect()
        except Unreachable as e:
            log.info("%s: %s", who, e)
        except (EOFError, OSError) as e:
            log.info("%s: D-Bus lost: %s", who, e)
        if bus is not None:
            bus.disconnect()
        await on_lost()
        await asyncio.sleep(backoff.next())

