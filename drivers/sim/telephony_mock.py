"""python-dbusmock template: oFono's HFP hands-free API and BlueALSA's SCO PCMs for the sim phone.

Runs inside the mock process (`python3 -m dbusmock --template THIS_FILE`, the system Python
that has python-dbusmock and dbus-python), never in the firmware: stdlib and dbus only.

dbusmock's stock `ofono` template (loaded first, without a modem) serves org.ofono.Manager,
a modem's VoiceCallManager and outgoing calls; it stops where a hands-free unit starts:
no incoming call, `Answer` not implemented, a modem cannot go away, and no audio. This adds:
- the phone's HFP modem at /hfp<device path> (what oFono's hfp_hf_bluez5 plugin names it);
- on the mock interface: AddPhone(device) / RemovePhone() (the phone goes away: its modem
  and PCMs vanish without the calls being hung up first), IncomingCall(number, name,
  voice WAV, uplink WAV) and RemoteHangup() (the caller hangs up);
- VoiceCall Answer / Hangup with State PropertyChanged, DisconnectReason and CallRemoved;
- org.bluealsa (on the same connection): Manager1.GetPCMs and the HFP-HF sink/source PCM1
  objects whose Open() hands out a pipe as bluealsad does. The source pipe carries the
  caller's voice (16 kHz S16LE mono, paced in real time, then silence); what the glasses
  write into the sink pipe is saved as a WAV, the phone's side of the call.
"""

import os
import socket
import threading
import time
import wave

import dbus
import dbus.service
import dbusmock
from dbusmock.templates import ofono as stock
from dbusmock.templates.ofono import AddModem, Dial, HangupAll  # noqa: F401 (attached to the mock)

BUS_NAME = "org.ofono"
MAIN_OBJ = "/"
MAIN_IFACE = "org.ofono.Manager"
SYSTEM_BUS = True

CALL = "org.ofono.VoiceCall"
CALLS = "org.ofono.VoiceCallManager"
PCM = "org.bluealsa.PCM1"
PCM_MANAGER = "org.bluealsa.Manager1"
PCM_ROOT = "/org/bluealsa"
RATE_HZ = 16000           # mSBC wide-band speech
FRAME_BYTES = 640         # 20 ms of S16LE mono
FORMAT_S16LE = 0x8210     # BlueALSA's format id: signed, 2 bytes, little-endian, 16 bits


def load(mock, parameters):
    stock.load(mock, {"no_modem": True})
    mock.phone = None                 # {"modem", "device", "pcms"} while the phone is there
    mock.audio = []                   # the open audio pipes' stop events
    mock.call_files = {}              # call path -> (voice WAV, uplink WAV)
    mock.call_counter = 0
    mock.bluealsa_name = dbus.service.BusName("org.bluealsa", mock.connection)
    mock.AddObject(PCM_ROOT, PCM_MANAGER, {}, [])
    manager = dbusmock.mockobject.objects[PCM_ROOT]
    manager.AddMethod(PCM_MANAGER, "GetPCMs", "", "a{oa{sv}}", lambda self: _pcms(mock))
    if parameters.get("device"):
        AddPhone(mock, parameters["device"], parameters.get("name", "Phone"))


def _pcms(mock):
    if mock.phone is None:
        return dbus.Dictionary({}, signature="oa{sv}")
    return dbus.Dictionary({p: dbusmock.mockobject.objects[p].GetAll(PCM) for p in mock.phone["pcms"]},
                           signature="oa{sv}")


@dbus.service.method(dbusmock.MOCK_IFACE, in_signature="ss", out_signature="s")
def AddPhone(self, device, name):
    """The phone connects: its HFP modem and SCO PCMs appear. Returns the modem path."""
    if self.phone is not None:
        return self.phone["modem"]
    modem = AddModem(self, "hfp" + device, {})
    obj = dbusmock.mockobject.objects[modem]
    obj.Set("org.ofono.Modem", "Type", dbus.String("hfp"))
    obj.AddProperty("org.ofono.Modem", "Name", dbus.String(name))
    dev = device.split("/")[-1]
    pcms = []
    for mode in ("sink", "source"):
        path = f"{PCM_ROOT}/{device.split('/')[-2]}/{dev}/hfphf/{mode}"
        self.AddObject(path, PCM, {
            "Device": dbus.ObjectPath(device), "Transport": "HFP-HF", "Mode": mode,
            "Running": False, "Format": dbus.UInt16(FORMAT_S16LE), "Channels": dbus.Byte(1),
            "Sampling": dbus.UInt32(RATE_HZ), "Codec": "mSBC",
            "Volume": dbus.Array([dbus.Byte(15)], signature="y"), "SoftVolume": False,
        }, [])
        pcm = dbusmock.mockobject.objects[path]
        pcm.AddMethod(PCM, "Open", "", "hh", lambda p, mode=mode: _open(self, p, mode))
        pcms.append(path)
        manager = dbusmock.mockobject.objects[PCM_ROOT]
        manager.EmitSignal(PCM_MANAGER, "PCMAdded", "oa{sv}", [path, pcm.GetAll(PCM)])
    self.phone = {"modem": modem, "device": device, "pcms": pcms}
    return modem


@dbus.service.method(dbusmock.MOCK_IFACE, in_signature="", out_signature="")
def RemovePhone(self):
    """The phone goes away mid-whatever: modem, calls and PCMs vanish; the pipes close."""
    if self.phone is None:
        return
    _stop_audio(self)
    modem = self.phone["modem"]
    obj = dbusmock.mockobject.objects[modem]
    for path in list(obj.calls):
        self.RemoveObject(path)
    obj.calls.clear()
    for path in [p for p in dbusmock.mockobject.objects if p.startswith(modem + "/")]:
        self.RemoveObject(path)
    self.RemoveObject(modem)
    self.modems.remove(modem)
    self.EmitSignal(MAIN_IFACE, "ModemRemoved", "o", [dbus.ObjectPath(modem)])
    manager = dbusmock.mockobject.objects[PCM_ROOT]
    for path in self.phone["pcms"]:
        self.RemoveObject(path)
        manager.EmitSignal(PCM_MANAGER, "PCMRemoved", "o", [dbus.ObjectPath(path)])
    self.phone = None


@dbus.service.method(dbusmock.MOCK_IFACE, in_signature="ssss", out_signature="s")
def IncomingCall(self, number, name, voice_wav, uplink_wav):
    """A call rings on the phone: a VoiceCall in state "incoming". Returns its path."""
    if self.phone is None:
        raise dbus.exceptions.DBusException("the phone is not connected",
                                            name="org.ofono.Error.NotAvailable")
    modem = dbusmock.mockobject.objects[self.phone["modem"]]
    self.call_counter += 1
    path = f"{self.phone['modem']}/voicecall{self.call_counter:02d}"
    self.AddObject(path, CALL, {
        "State": "incoming", "LineIdentification": number, "Name": name,
        "Multiparty": False, "RemoteHeld": False, "RemoteMultiparty": False, "Emergency": False,
    }, [])
    call = dbusmock.mockobject.objects[path]
    call.AddMethod(CALL, "GetProperties", "", "a{sv}", lambda c: c.GetAll(CALL))
    call.AddMethod(CALL, "Answer", "", "", lambda c: _answer(self, c))
    call.AddMethod(CALL, "Hangup", "", "", lambda c: _end(self, c, "local"))
    modem.calls.append(path)
    self.call_files[path] = (voice_wav, uplink_wav)
    modem.EmitSignal(CALLS, "CallAdded", "oa{sv}", [dbus.ObjectPath(path), call.GetAll(CALL)])
    return path


@dbus.service.method(dbusmock.MOCK_IFACE, in_signature="", out_signature="b")
def RemoteHangup(self):
    """The caller hangs up; False if there was no call."""
    call = _current_call(self)
    if call is None:
        return dbus.Boolean(False)
    _end(self, call, "remote")
    return dbus.Boolean(True)


def _current_call(mock):
    if mock.phone is None:
        return None
    calls = dbusmock.mockobject.objects[mock.phone["modem"]].calls
    return dbusmock.mockobject.objects[calls[-1]] if calls else None


def _state(call, state):
    call.Set(CALL, "State", dbus.String(state))
    call.EmitSignal(CALL, "PropertyChanged", "sv", ["State", dbus.String(state, variant_level=1)])


def _answer(mock, call):
    if call.Get(CALL, "State") != "incoming":
        raise dbus.exceptions.DBusException("the call is not ringing", name="org.ofono.Error.Failed")
    _state(call, "active")
    for path in mock.phone["pcms"]:
        pcm = dbusmock.mockobject.objects[path]
        pcm.UpdateProperties(PCM, {"Running": dbus.Boolean(True)})


def _end(mock, call, reason):
    path = call._object_path  # pylint: disable=protected-access
    _stop_audio(mock)
    call.EmitSignal(CALL, "DisconnectReason", "s", [reason])
    _state(call, "disconnected")
    modem = dbusmock.mockobject.objects[mock.phone["modem"]]
    modem.calls.remove(path)
    mock.RemoveObject(path)
    modem.EmitSignal(CALLS, "CallRemoved", "o", [dbus.ObjectPath(path)])
    for pcm_path in mock.phone["pcms"]:
        dbusmock.mockobject.objects[pcm_path].UpdateProperties(PCM, {"Running": dbus.Boolean(False)})


def _stop_audio(mock):
    for stop in mock.audio:
        stop.set()
    mock.audio = []


def _open(mock, pcm, mode):
    """PCM1.Open: (pipe, control socket). Audio flows only while a call is up."""
    call = _current_call(mock)
    if call is None or call.Get(CALL, "State") != "active":
        raise dbus.exceptions.DBusException("no SCO link: no call is active",
                                            name="org.bluealsa.Error.Failed")
    voice_wav, uplink_wav = mock.call_files[call._object_path]  # pylint: disable=protected-access
    read_end, write_end = os.pipe()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stop = threading.Event()
    mock.audio.append(stop)
    if mode == "source":      # the phone speaks: the glasses read
        target, mine, given = _speak, write_end, read_end
        args = (mine, voice_wav, stop, ours)
    else:                     # the glasses speak: the phone hears and keeps it
        target, mine, given = _hear, read_end, write_end
        args = (mine, uplink_wav, stop, ours)
    threading.Thread(target=target, args=args, daemon=True, name=f"sim-sco-{mode}").start()
    reply = (dbus.types.UnixFd(given), dbus.types.UnixFd(theirs.fileno()))
    os.close(given)           # UnixFd keeps its own duplicate for the reply
    theirs.close()
    return reply


def _speak(fd, voice_wav, stop, control):
    """The caller's voice into the pipe in real time, then comfort silence until the call ends."""
    try:
        with wave.open(voice_wav) as w:
            voice = w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError):
        voice = b""
    start = time.monotonic()
    sent = 0
    try:
        while not stop.is_set():
            chunk = voice[sent:sent + FRAME_BYTES] if sent < len(voice) else b""
            chunk = chunk.ljust(FRAME_BYTES, b"\0")
            os.write(fd, chunk)
            sent += FRAME_BYTES
            ahead = start + sent / (2 * RATE_HZ) - time.monotonic()
            if ahead > 0:
                stop.wait(ahead)
    except OSError:
        pass                  # the glasses closed their end
    finally:
        os.close(fd)
        control.close()


def _hear(fd, uplink_wav, stop, control):
    """Everything the glasses send, into a WAV (written whole when the line closes)."""
    received = bytearray()
    os.set_blocking(fd, False)
    try:
        while not stop.is_set():
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                stop.wait(0.01)
                continue
            if not data:
                break
            received += data
    except OSError:
        pass
    finally:
        os.close(fd)
        control.close()
        received = received[: len(received) // 2 * 2]
        tmp = uplink_wav + ".part"
        with wave.open(tmp, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE_HZ)
            w.writeframes(bytes(received))
        os.replace(tmp, uplink_wav)
