"""The phone link with no Bluetooth hardware: a real private dbus-daemon, BlueZ's D-Bus API
served by python-dbusmock (drivers/sim/bluez_mock.py), and the phone acting as a stock
Gadgetbridge does towards a Bangle.js (drivers/sim/bluetooth.py).

As a user would, through the console of `glasses run --board sim`: pairing confirmed with the
action button, a notification and a turn instruction spoken (and held while the wearer talks),
a QR payment handed to the wallet as an intent and its answer spoken, the phone going away
mid-request, garbage from the phone. Below the console: Gadgetbridge's line format, and the
link coming back after bluetoothd restarts.
"""

import asyncio
import base64
import dataclasses
import json
import time
import tomllib

import pytest
import zxingcpp
from hypothesis import given, settings, strategies as st

from glasses_firmware.boards import BOARDS_DIR
from glasses_firmware.boards.schema import from_toml
from glasses_firmware.drivers.clock import Clock
from glasses_firmware.drivers.errors import ConfigError
from glasses_firmware.drivers.sim.bluetooth import SimBluetooth, gadgetbridge_line
from glasses_firmware.firmware.events import EventBus
from glasses_firmware.firmware.phone import bluez, dbus as d
from glasses_firmware.firmware.phone.bluez import LinkSettings, PhoneLink
from glasses_firmware.firmware.phone.gadgetbridge import (LineBuffer, ProtocolError, form_watch_line,
                                         parse_phone_line, plain_text)
from tests.conftest import RunningFirmware
from tests.payment_corpus import VALID
from tests.test_payments import scene


# Gadgetbridge's lines, as BangleJSDeviceSupport writes them.
def test_gadgetbridge_lines_parse_as_gadgetbridge_writes_them():
    line = b'\x10GB({t:"notify",id:1234,src:"Signal",title:"Ana",body:"Dinner\\x0a at 8?\\n",tel:null})\n'
    m = parse_phone_line(line.rstrip(b"\n"))
    assert m.kind == "notify" and m.fields == {"id": 1234, "src": "Signal", "title": "Ana",
                                               "body": "Dinner\n at 8?\n", "tel": None}
    # Strings that are shorter in base64 come as atob("..."); octal escapes as \0..\7.
    packed = 'atob("' + base64.b64encode("caf\u00e9 \x01\x02\x03".encode("latin-1")).decode() + '")'
    m = parse_phone_line(f'\x10GB({{t:"nav",instr:{packed},distance:"300m",action:"left"}})')
    assert m.fields["instr"] == "caf\u00e9 \x01\x02\x03" and m.fields["distance"] == "300m"
    assert parse_phone_line('GB({t:"call",cmd:"incoming",name:"Bo",number:"+4412\\1"});').fields == {
        "cmd": "incoming", "name": "Bo", "number": "+4412\x01"}
    # The sim phone's formatter is Gadgetbridge's (read back by ours).
    obj = {"t": "musicinfo", "artist": "A\tB", "track": "\x00\x01\x02\x03\x04\x05", "dur": 200, "c": 1, "n": 2}
    m = parse_phone_line(gadgetbridge_line(obj))
    assert m.kind == "musicinfo" and m.fields == {k: v for k, v in obj.items() if k != "t"}
    # Espruino JavaScript that is not ours to run is skipped, not an error.
    assert parse_phone_line("\x10setTime(1700000000);E.setTimeZone(1.0);") is None
    assert parse_phone_line(" \x03") is None


def test_inline_images_are_not_read_out():
    # "\0", 8x2 pixels, 1 bit each: 2 bytes of pixels; then 16x1 at 3 bits, transparent: 4 + 6.
    smile = "\0" + chr(8) + chr(2) + chr(1) + "\xff\x00"
    heart = "\0" + chr(16) + chr(1) + chr(3 + 128) + chr(0) + "\x10\x00\x41\x0a\x20 "
    assert plain_text(f"Dinner {smile} at eight{heart}!\x07 ok") == "Dinner at eight! ok"
    m = parse_phone_line(gadgetbridge_line({"t": "notify", "body": f"hi {smile}there"}))
    assert plain_text(m.fields["body"]) == "hi there"


@pytest.mark.parametrize("line,why", [
    ("GB({t:\"notify\",body:\"unterminated})", "unterminated string"),
    ("GB({t:1})", "string 't'"),
    ("GB({t:\"x\"}", "closing parenthesis"),
    ("GB({t:\"x\",a:atob(\"!!!\")})", "not base64"),
    ("GB(" + "[" * 20 + "]" * 20 + ")", "nested too deep"),
    ("rm -rf /", "not a Gadgetbridge line"),
])
def test_bad_lines_are_clear_errors(line, why):
    with pytest.raises(ProtocolError, match=why):
        parse_phone_line(line)


def test_lines_split_over_writes_and_over_long_lines():
    buf = LineBuffer(max_bytes=64)
    line = gadgetbridge_line({"t": "notify", "id": 1, "src": "Mail", "body": "hello"})
    out = []
    for i in range(0, len(line), 7):                 # 7-byte GATT writes
        out += buf.feed(line[i:i + 7])
    assert [parse_phone_line(x).fields["body"] for x in out] == ["hello"]
    out = buf.feed(b"x" * 200) + buf.feed(b"y" * 200 + b"\nGB({t:\"ok\"})\n")
    assert isinstance(out[0], ProtocolError) and "passed 64 bytes" in str(out[0])
    assert [parse_phone_line(x).kind for x in out[1:]] == ["ok"]
    assert form_watch_line({"t": "music", "n": "play"}) == b'{"t":"music","n":"play"}\r\n'


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_is_never_more_than_a_protocol_error(data):
    for item in LineBuffer(max_bytes=128).feed(data + b"\n"):
        if isinstance(item, bytes):
            try:
                parse_phone_line(item)
            except ProtocolError:
                pass


def test_the_board_file_declares_bluetooth():
    data = tomllib.loads((BOARDS_DIR / "cm5-ref.toml").read_text())
    assert from_toml(data, "cm5-ref.toml").bluetooth.bus == "system"
    for key, value, why in (("bus", "session", "must be \"system\", \"sim\""),
                            ("alias", "Glasses", "must start with \"Bangle.js\""),
                            ("adapter", "wlan0", "like \"hci0\""), ("colour", "red", "unknown key")):
        bad = dict(data, bluetooth=dict(data["bluetooth"], **{key: value}))
        with pytest.raises(ConfigError, match=why):
            from_toml(bad, "cm5-ref.toml")


# Below the console: the link on a real private bus, BlueZ restarting under it.
def test_the_link_comes_back_after_bluetoothd_restarts(tmp_path):
    async def main():
        events = EventBus()
        seen = []
        events.subscribe(seen.append)
        sb = SimBluetooth(tmp_path)
        link = PhoneLink(dataclasses.replace(LinkSettings(sb.address), backoff_s=(0.2, 0.5)),
                         events, Clock())
        task = asyncio.create_task(link.run())
        try:
            await _until(lambda: link.status()["state"] == "connected" and link.subscribed, 10)
            sb.restart_bluez()
            await _until(lambda: any("bluetooth lost" in e for e in seen), 10)
            await _until(lambda: link.status()["state"] == "connected", 10)
            assert link.status()["paired"]["address"] == sb.phone.address
            assert sum("bluetooth ready" in e for e in seen) == 2
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            link.close()
            sb.close()
        # Tries that found bluetoothd still gone are no moves: just these (the mock BlueZ may
        # not be on the bus at the very first try), all declared.
        came_back = [("ready", "lost", "no_bluez"), ("no_bluez", "up", "ready")]
        assert link.machine.history in ([("starting", "up", "ready")] + came_back,
                                        [("starting", "unavailable", "no_bluez"),
                                         ("no_bluez", "up", "ready")] + came_back)
        assert all(bluez.TRANSITIONS[(old, event)] == new
                   for old, event, new in link.machine.history)
        # No bus at all: a clear error naming the address, not a hang.
        with pytest.raises(d.BusUnavailable, match="cannot connect to D-Bus at unix:path="):
            await d.connect(f"unix:path={tmp_path}/nobody", 2.0)
    asyncio.run(main())


def test_no_bluez_at_all_is_one_move_and_its_error(tmp_path):
    async def main():
        link = PhoneLink(dataclasses.replace(LinkSettings(f"unix:path={tmp_path}/nobody"),
                                             backoff_s=(0.05,)), EventBus(), Clock())
        task = asyncio.create_task(link.run())
        try:
            await _until(lambda: link.state == "no_bluez", 10)
            await asyncio.sleep(0.3)             # tried again a few times, still nothing
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            link.close()
        assert link.machine.history == [("starting", "unavailable", "no_bluez")]
        status = link.status()
        assert status["state"] == "no_bluez" and "cannot connect to D-Bus" in status["error"]
    asyncio.run(main())
    text = bluez.mermaid()
    for (src, event), dst in bluez.TRANSITIONS.items():
        assert f"    {src} --> {dst} : {event}" in text


async def _until(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# Through the console of the sim board.
@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    fw = RunningFirmware(tmp_path_factory.mktemp("phone"))
    assert fw.cmd("events on").ok
    assert fw.cmd("sim phone").lines[1].startswith("gadgetbridge linked")
    linked(fw)
    yield fw
    fw.stop()


def linked(fw, timeout_s: float = 10.0) -> dict:
    """Wait until the glasses see the phone connected and Gadgetbridge subscribed."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = json.loads(fw.cmd("phone --json").lines[0])
        if status["state"] == "connected" and status["companion"]:
            return status
        assert time.monotonic() < deadline, f"the phone did not link: {status}"
        time.sleep(0.1)


def test_status_keeps_its_fields_and_adds_the_phone(fw):
    status = json.loads(fw.cmd("status --json").lines[0])
    assert {"board", "mode", "battery", "worn", "storage", "worker", "uptime_s", "faults"} <= set(status)
    phone = status["phone"]
    assert phone["state"] == "connected" and phone["companion"] and phone["paired"]["name"] == "Pixel 8"
    reply = fw.cmd("phone")
    assert reply.ok and reply.lines[0].split() == ["phone", "connected"]


def test_pairing_is_confirmed_with_the_action_button(fw):
    assert fw.cmd("phone forget").ok
    fw.events_until(lambda e: e.startswith("phone forgotten"))
    assert json.loads(fw.cmd("phone --json").lines[0])["state"] == "unpaired"
    # A phone that is not bonded cannot make the glasses speak.
    assert fw.cmd("sim phone notify Spam You won a prize").ok
    fw.events_until(lambda e: e.startswith("phone ignored writes from") and "not the bonded phone" in e)
    # Not discoverable yet: the phone cannot pair.
    reply = fw.cmd("sim phone pair")
    assert not reply.ok and "not discoverable" in reply.error
    assert fw.cmd("phone pair").ok
    # Refused on the console first: nothing is paired, the window stays open.
    code = fw.cmd("sim phone pair").lines[0].split()[-1]
    seen = fw.events_until(lambda e: e.startswith("phone confirm pairing") and code in e)
    assert fw.cmd("phone pair reject").ok
    fw.events_until(lambda e: e == "phone pairing rejected (console)", seen=seen)
    status = json.loads(fw.cmd("phone --json").lines[0])
    assert status["state"] == "pairing" and status["paired"] is None
    # Asked again, and accepted with the button.
    code = fw.cmd("sim phone pair").lines[0].split()[-1]
    seen = fw.events_until(lambda e: e.startswith("phone confirm pairing") and code in e)
    seen = fw.events_until(lambda e: e.startswith("speak Pair with Pixel 8?") and
                           " ".join(code) in e, seen=seen)
    assert fw.cmd("sim button action double").ok
    seen = fw.events_until(lambda e: e.startswith("phone paired Pixel 8"), seen=seen)
    fw.events_until(lambda e: e == "phone companion linked", seen=seen)
    linked(fw)


def test_a_notification_and_a_turn_are_spoken_short(fw):
    long_text = "Dinner at eight? " + "and then some more words " * 20
    assert fw.cmd(f"sim phone notify Signal {long_text}").ok
    seen = fw.events_until(lambda e: e.startswith("speak Signal: Dinner at eight?"))
    said = next(e for e in seen if e.startswith("speak Signal"))
    assert len(said) < 170 and said.endswith("...")
    assert fw.cmd("sim phone nav 300 Turn left onto High Street").ok
    seen = fw.events_until(lambda e: e == "phone nav Turn left onto High Street in 300 metres", seen=seen)
    fw.events_until(lambda e: e == "speak In 300 metres, turn left onto High Street", seen=seen)
    assert fw.cmd("sim speaker").lines[0].endswith(" s")       # and it reached the speaker


def test_nothing_is_spoken_while_the_wearer_talks(fw):
    time.sleep(2.5)                                          # the last test's speech has played
    assert fw.cmd("sim button action press").ok             # push-to-talk: the wearer speaks
    seen = fw.events_until(lambda e: e.startswith("assistant listening"))
    assert "voice loop  listen" in fw.cmd("mode").lines
    assert fw.cmd("sim phone notify Mail Your parcel has arrived").ok
    seen = fw.events_until(lambda e: e.startswith("phone held"), seen=seen)
    time.sleep(1.0)
    seen += fw.cmd("version").events
    assert not any(e.startswith("speak Mail:") for e in seen)
    assert "voice loop  listen" in fw.cmd("mode").lines      # still talking, still held
    assert fw.cmd("sim button action release").ok
    seen = fw.events_until(lambda e: e.startswith("speak Mail: Your parcel has arrived"), seen=seen)
    # The assistant's own answer came first: the notification waited for it.
    assert [e for e in seen if e.startswith("speak ")][-1].startswith("speak Mail:")


def test_a_qr_payment_is_handed_to_the_wallet_and_the_answer_said(fw, tmp_path):
    code = VALID[0][1]
    assert fw.cmd(f"sim scene {scene(tmp_path / 'shop.png', code)}").ok
    assert fw.cmd("pay").ok
    assert fw.cmd("sim button action double").ok
    seen = fw.events_until(lambda e: e.startswith("payment paid "))
    fw.events_until(lambda e: e.startswith("speak Paid "), seen=seen)
    intent = fw.cmd("sim phone").lines[-1]
    assert intent.startswith("received ") and " intent " in intent
    # Gadgetbridge with intents switched off answers at once; nothing is paid.
    assert fw.cmd("sim phone intents off").ok
    try:
        assert fw.cmd("pay").ok
        assert fw.cmd("sim button action double").ok
        seen = fw.events_until(lambda e: e.startswith("phone intent refused: Android Intents not enabled"))
        fw.events_until(lambda e: e.startswith("speak The payment did not go through"), seen=seen)
    finally:
        fw.cmd("sim phone intents on")


def test_the_phone_going_away_mid_request_is_clear_and_quick(fw, tmp_path):
    assert fw.cmd(f"sim scene {scene(tmp_path / 'shop.png', VALID[0][1])}").ok
    assert fw.cmd("sim phone wallet silent").ok
    try:
        assert fw.cmd("pay").ok
        assert fw.cmd("sim button action double").ok
        time.sleep(0.5)                                      # the intent is on the phone
        t0 = time.monotonic()
        assert fw.cmd("sim phone off").ok
        seen = fw.events_until(lambda e: e.startswith("payment failed ") and "went away" in e)
        fw.events_until(lambda e: e.startswith("speak The phone is not connected"), seen=seen)
        assert time.monotonic() - t0 < 10                   # not the 15 s hand-off deadline
        box = scene(tmp_path / "box.png", "4006381333931", fmt=zxingcpp.BarcodeFormat.EAN13)
        assert fw.cmd(f"sim scene {box}").ok
        reply = fw.cmd("scan")
        assert reply.lines[0] == "product EAN-13 4006381333931: Product code 4006381333931; " \
                                 "the phone is not connected, so the product look-up did not reach it."
        assert json.loads(fw.cmd("phone --json").lines[0])["state"] == "disconnected"
    finally:
        fw.cmd("sim phone wallet approve")
        fw.cmd("sim phone on")
    linked(fw)


def test_garbage_from_the_phone_does_not_crash(fw):
    assert fw.cmd("sim phone garbage").ok
    seen = fw.events_until(lambda e: e.startswith("phone ignored a line from the phone"))
    assert fw.cmd("sim phone line GB({t:\"notify\",src:\"Chat\",body:\"still here\"})").ok
    fw.events_until(lambda e: e == "speak Chat: still here", seen=seen)
    status = json.loads(fw.cmd("phone --json").lines[0])
    assert status["errors"] >= 3 and status["state"] == "connected"
    assert fw.cmd("phone notifications off").ok
    try:
        assert fw.cmd("sim phone notify Chat muted now").ok
        seen = fw.events_until(lambda e: e == "phone notify Chat: muted now")
        time.sleep(0.5)
        assert not any(e == "speak Chat: muted now" for e in seen + fw.cmd("version").events)
    finally:
        fw.cmd("phone notifications on")
    assert not fw.cmd("phone pair maybe").ok and not fw.cmd("phone pair accept").ok


def typed(line: bytes) -> str:
    """A Gadgetbridge line as the console takes it (no control bytes: the \\x10 prefix goes)."""
    return line.decode("latin-1").strip().lstrip("\x10")


def test_call_and_music_lines_reach_their_listeners(fw):
    line = gadgetbridge_line({"t": "call", "cmd": "incoming", "name": "Ana", "number": "+441234"})
    assert fw.cmd(f"sim phone line {typed(line)}").ok
    seen = fw.events_until(lambda e: e == "phone call incoming Ana")
    line = gadgetbridge_line({"t": "call", "cmd": "end", "name": "Ana", "number": "+441234"})
    assert fw.cmd(f"sim phone line {typed(line)}").ok
    seen = fw.events_until(lambda e: e == "phone call end Ana", seen=seen)
    line = gadgetbridge_line({"t": "musicinfo", "artist": "Nina Simone", "track": "Feeling Good",
                              "album": "", "dur": 177, "c": 1, "n": 1})
    assert fw.cmd(f"sim phone line {typed(line)}").ok
    fw.events_until(lambda e: e == "phone music info Nina Simone - Feeling Good", seen=seen)
