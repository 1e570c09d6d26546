"""python-dbusmock template: BlueZ's D-Bus API for the sim board, extended where bluez5 stops.

Run by Debian's python3 (apt's dbus-python and GLib live there), never imported by the
firmware: `python3 -m dbusmock --system --template drivers/sim/bluez_mock.py -p JSON`
(drivers/sim/bluetooth.py starts it on the sim's private bus).

dbusmock's bluez5 template serves org.bluez with adapters, devices, pairing as a property
flip, and an AgentManager1 that does not remember who registered. Added here, as BlueZ
does them (doc/adapter-api.txt, agent-api.txt, gatt-api.txt, advertising-api.txt):
  - AgentManager1 that remembers the agent's bus name, so a pairing the phone starts asks
    the agent: RequestConfirmation(device, passkey), answered or org.bluez.Error.Rejected;
  - GattManager1.RegisterApplication, which reads the application's objects with
    GetManagedObjects from its owner and checks them; LEAdvertisingManager1;
  - Device1.Connect that fails with a page timeout while the phone is out of range;
  - org.bluez.Mock methods for the phone's side: PhoneNear, PhoneAway, PhonePair,
    PairingResult, GattApplication, Advertisements.
An application, agent or advertisement whose owner leaves the bus is dropped, as BlueZ does.
"""

import random

import dbus
from dbusmock import mockobject
from dbusmock.templates import bluez5

BUS_NAME = "org.bluez"
MAIN_OBJ = "/"
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

MOCK = bluez5.BLUEZ_MOCK_IFACE
AGENT_MANAGER = bluez5.AGENT_MANAGER_IFACE
DEVICE = bluez5.DEVICE_IFACE
ADAPTER = bluez5.ADAPTER_IFACE
GATT_MANAGER = "org.bluez.GattManager1"
ADVERTISING = "org.bluez.LEAdvertisingManager1"
OM = "org.freedesktop.DBus.ObjectManager"
PROPS = "org.freedesktop.DBus.Properties"

# The bluez5 convenience methods kept as they are (module-level methods become the mock's).
AddAdapter = bluez5.AddAdapter
AddDevice = bluez5.AddDevice
PairDevice = bluez5.PairDevice
ConnectDevice = bluez5.ConnectDevice
DisconnectDevice = bluez5.DisconnectDevice

STATE = {"agents": {}, "default_agent": None, "apps": {}, "adverts": {}, "pairing": {},
         "in_range": set(), "adapter": "hci0"}


def _error(name: str, text: str):
    return dbus.exceptions.DBusException(text, name="org.bluez.Error." + name)


def _bus():
    return mockobject.objects["/"].connection


def _device_path(address: str) -> str:
    return f"/org/bluez/{STATE['adapter']}/dev_{address.replace(':', '_').upper()}"


def _owner_gone(name, old, new):
    if new or not old:
        return
    for table in ("apps", "adverts"):
        for key in [k for k in STATE[table] if k[0] == old]:
            del STATE[table][key]
    for path in [p for p, owner in STATE["agents"].items() if owner[0] == old]:
        del STATE["agents"][path]
        if STATE["default_agent"] == path:
            STATE["default_agent"] = None


def load(mock, parameters):
    STATE["adapter"] = parameters.get("adapter", "hci0")
    mockobject.objects.setdefault("/", mock)   # bluez5's helpers look the manager up there
    mock.AddObject("/org/bluez", AGENT_MANAGER, {}, [])
    mockobject.objects["/org/bluez"].AddMethods(bluez5.PROFILE_MANAGER_IFACE, [
        ("RegisterProfile", "osa{sv}", "", ""), ("UnregisterProfile", "o", "", "")])
    bluez5.AddAdapter(mock, STATE["adapter"], parameters.get("alias", "glasses"))
    adapter = mockobject.objects["/org/bluez/" + STATE["adapter"]]
    adapter.AddProperties(ADVERTISING, {
        "ActiveInstances": dbus.Byte(0, variant_level=1),
        "SupportedInstances": dbus.Byte(4, variant_level=1),
        "SupportedIncludes": dbus.Array(["tx-power", "appearance", "local-name"], signature="s",
                                        variant_level=1)})
    mock.connection.add_signal_receiver(_owner_gone, "NameOwnerChanged", "org.freedesktop.DBus",
                                        "org.freedesktop.DBus", "/org/freedesktop/DBus")
    bonded = parameters.get("bonded")
    if bonded:
        _add_phone(mock, bonded["address"], bonded["name"])
        bluez5.PairDevice(mock, STATE["adapter"], bonded["address"], bluez5.MOCK_PHONE_CLASS)
        _set(_device_path(bonded["address"]), {"Trusted": dbus.Boolean(True, variant_level=1)})


def _set(path: str, props: dict) -> None:
    obj = mockobject.objects[path]
    obj.props[DEVICE].update(props)
    obj.EmitSignal(PROPS, "PropertiesChanged", "sa{sv}as", [DEVICE, props, []])


def _connect(device):
    address = str(device.props[DEVICE]["Address"])
    if address not in STATE["in_range"]:
        raise _error("Failed", "br-connection-page-timeout")
    if device.props[DEVICE]["Connected"]:
        raise _error("AlreadyConnected", "Already Connected")
    _set(device.path if hasattr(device, "path") else _device_path(address),
         {"Connected": dbus.Boolean(True, variant_level=1)})


def _add_phone(mock, address: str, name: str) -> str:
    path = _device_path(address)
    if path not in mockobject.objects:
        bluez5.AddDevice(mock, STATE["adapter"], address, name)
        mockobject.objects[path].AddMethod(DEVICE, "Connect", "", "", _connect)
        mockobject.objects[path].path = path
    STATE["in_range"].add(address)
    return path


# AgentManager1 on /org/bluez, remembering who registered.
@dbus.service.method(AGENT_MANAGER, in_signature="os", out_signature="", sender_keyword="sender")
def RegisterAgent(self, agent_path, capability, sender=None):
    if capability not in ("DisplayOnly", "DisplayYesNo", "KeyboardOnly", "NoInputNoOutput",
                          "KeyboardDisplay", ""):
        raise _error("InvalidArguments", "Unsupported capability " + capability)
    if str(agent_path) in STATE["agents"]:
        raise _error("AlreadyExists", "Another agent is already registered " + agent_path)
    STATE["agents"][str(agent_path)] = (str(sender), str(capability))


@dbus.service.method(AGENT_MANAGER, in_signature="o", out_signature="", sender_keyword="sender")
def RequestDefaultAgent(self, agent_path, sender=None):
    if str(agent_path) not in STATE["agents"]:
        raise _error("DoesNotExist", "Agent not registered " + agent_path)
    STATE["default_agent"] = str(agent_path)


@dbus.service.method(AGENT_MANAGER, in_signature="o", out_signature="", sender_keyword="sender")
def UnregisterAgent(self, agent_path, sender=None):
    if STATE["agents"].pop(str(agent_path), None) is None:
        raise _error("DoesNotExist", "Agent not registered " + agent_path)
    if STATE["default_agent"] == str(agent_path):
        STATE["default_agent"] = None


# GattManager1 and LEAdvertisingManager1 on the adapter.
@dbus.service.method(GATT_MANAGER, in_signature="oa{sv}", out_signature="", sender_keyword="sender")
def RegisterApplication(self, app_path, options, sender=None):
    key = (str(sender), str(app_path))
    if key in STATE["apps"]:
        raise _error("AlreadyExists", "Already Exists")
    try:
        objects = _bus().call_blocking(sender, app_path, OM, "GetManagedObjects", "", [], timeout=5)
    except dbus.exceptions.DBusException as e:
        raise _error("Failed", f"No object received: {e.get_dbus_message()}")
    chars = {}
    services = {str(p): i["org.bluez.GattService1"] for p, i in objects.items()
                if "org.bluez.GattService1" in i}
    if not services:
        raise _error("Failed", "No object received: the application has no GattService1")
    for path, interfaces in objects.items():
        ch = interfaces.get("org.bluez.GattCharacteristic1")
        if ch is None:
            continue
        if str(ch.get("Service")) not in services or "UUID" not in ch or not ch.get("Flags"):
            raise _error("Failed", f"Invalid characteristic {path}: needs UUID, Service, Flags")
        chars[str(ch["UUID"]).lower()] = (str(path), [str(f) for f in ch["Flags"]])
    STATE["apps"][key] = {"services": [str(s["UUID"]).lower() for s in services.values()],
                          "chars": chars}


@dbus.service.method(GATT_MANAGER, in_signature="o", out_signature="", sender_keyword="sender")
def UnregisterApplication(self, app_path, sender=None):
    if STATE["apps"].pop((str(sender), str(app_path)), None) is None:
        raise _error("DoesNotExist", "Does Not Exist")


@dbus.service.method(ADVERTISING, in_signature="oa{sv}", out_signature="", sender_keyword="sender")
def RegisterAdvertisement(self, path, options, sender=None):
    key = (str(sender), str(path))
    if key in STATE["adverts"]:
        raise _error("AlreadyExists", "Already Exists")
    try:
        props = _bus().call_blocking(sender, path, PROPS, "GetAll", "s",
                                     ["org.bluez.LEAdvertisement1"], timeout=5)
    except dbus.exceptions.DBusException as e:
        raise _error("Failed", f"Failed to parse advertisement: {e.get_dbus_message()}")
    if str(props.get("Type")) not in ("peripheral", "broadcast"):
        raise _error("InvalidArguments", "Type must be peripheral or broadcast")
    STATE["adverts"][key] = {"name": str(props.get("LocalName", "")),
                             "uuids": [str(u).lower() for u in props.get("ServiceUUIDs", [])]}


@dbus.service.method(ADVERTISING, in_signature="o", out_signature="", sender_keyword="sender")
def UnregisterAdvertisement(self, path, sender=None):
    if STATE["adverts"].pop((str(sender), str(path)), None) is None:
        raise _error("DoesNotExist", "Does Not Exist")


# The phone's side of the world.
@dbus.service.method(MOCK, in_signature="ss", out_signature="s")
def PhoneNear(self, address, name):
    """The phone is in range (and known to BlueZ as a device); returns its path."""
    return _add_phone(mockobject.objects["/"], str(address), str(name))


@dbus.service.method(MOCK, in_signature="s", out_signature="")
def PhoneAway(self, address):
    """The phone left: out of range, its links drop."""
    STATE["in_range"].discard(str(address))
    path = _device_path(str(address))
    if path in mockobject.objects and mockobject.objects[path].props[DEVICE]["Connected"]:
        _set(path, {"Connected": dbus.Boolean(False, variant_level=1)})


@dbus.service.method(MOCK, in_signature="ss", out_signature="u")
def PhonePair(self, address, name):
    """The phone asks to pair: the default agent is asked to confirm a passkey."""
    adapter = mockobject.objects["/org/bluez/" + STATE["adapter"]].props[ADAPTER]
    if not adapter["Powered"] or not adapter["Pairable"] or not adapter["Discoverable"]:
        raise _error("NotReady", "the glasses are not discoverable and pairable")
    agent = STATE["default_agent"]
    if agent is None:
        raise _error("AuthenticationFailed", "no pairing agent is registered")
    path = _add_phone(mockobject.objects["/"], str(address), str(name))
    passkey = random.randint(0, 999999)
    STATE["pairing"][str(address)] = "pending"

    def accepted():
        STATE["pairing"][str(address)] = "paired"
        if not mockobject.objects[path].props[DEVICE]["Paired"]:
            bluez5.PairDevice(mockobject.objects["/"], STATE["adapter"], str(address),
                              bluez5.MOCK_PHONE_CLASS)
        if not mockobject.objects[path].props[DEVICE]["Connected"]:
            _set(path, {"Connected": dbus.Boolean(True, variant_level=1)})

    def refused(e):
        STATE["pairing"][str(address)] = f"rejected: {e.get_dbus_name()}"

    owner = STATE["agents"][agent][0]
    _bus().call_async(owner, agent, "org.bluez.Agent1", "RequestConfirmation", "ou",
                      [dbus.ObjectPath(path), dbus.UInt32(passkey)], accepted, refused, timeout=120)
    return dbus.UInt32(passkey)


@dbus.service.method(MOCK, in_signature="s", out_signature="s")
def PairingResult(self, address):
    return STATE["pairing"].get(str(address), "none")


@dbus.service.method(MOCK, in_signature="s", out_signature="sa{ss}")
def GattApplication(self, service_uuid):
    """(owner bus name, {characteristic UUID: object path}) of the app serving the service."""
    for (owner, _path), app in STATE["apps"].items():
        if service_uuid.lower() in app["services"]:
            return owner, {u: p for u, (p, _flags) in app["chars"].items()}
    raise _error("DoesNotExist", f"no registered GATT application serves {service_uuid}")


@dbus.service.method(MOCK, in_signature="", out_signature="a(sas)")
def Advertisements(self):
    return [(a["name"], a["uuids"]) for a in STATE["adverts"].values()]
