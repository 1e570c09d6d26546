"""Paying by looking at a QR code, on the sim board as a wearer would: a merchant's code in
the scene, `pay` (or "pay this"), the offer said aloud, the action button pressed twice while
worn, and the phone's wallet answering. Every malicious code of tests/payment_corpus.py is
shown to the camera the same way and never reaches the phone."""

import json
import re
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from glasses_firmware.firmware.payments.payloads import parse
from tests.conftest import RunningFirmware
from tests.payment_corpus import MALICIOUS, VALID

CANVAS = (1280, 720)          # the scene; the lores stream sees it at 640x360


def code_image(text: str, fmt=zxingcpp.BarcodeFormat.QRCode, height: int = 560) -> Image.Image:
    """A code as a merchant shows it: black on white, filling most of the view's height."""
    module = np.array(zxingcpp.create_barcode(text, fmt).to_image(scale=1))
    scale = max(1, height // module.shape[0])
    img = Image.fromarray(module).resize((module.shape[1] * scale, module.shape[0] * scale),
                                         Image.NEAREST)
    if fmt != zxingcpp.BarcodeFormat.QRCode:            # a product code: a wide strip
        img = img.resize((min(CANVAS[0] - 80, img.width), 300), Image.NEAREST)
    return img


def scene(path: Path, *texts: str, fmt=zxingcpp.BarcodeFormat.QRCode) -> Path:
    """One or more codes side by side on a white counter, saved as PNG."""
    canvas = Image.new("L", CANVAS, 255)
    imgs = [code_image(t, fmt, height=560 if len(texts) == 1 else 420) for t in texts]
    x = (CANVAS[0] - sum(i.width for i in imgs) - 40 * (len(imgs) - 1)) // 2
    for img in imgs:
        canvas.paste(img, (x, (CANVAS[1] - img.height) // 2))
        x += img.width + 40
    canvas.convert("RGB").save(path)
    return path


def changing_scene(folder: Path, first: str, then: str) -> Path:
    """A folder scene: the sim camera shows one picture a second, in name order."""
    folder.mkdir()
    scene(folder / "a.png", first)
    scene(folder / "b.png", then)
    return folder


def decisions(fw) -> list[dict]:
    path = fw.data_dir / "payments" / "decisions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def received(fw) -> int:
    head = fw.cmd("sim phone").lines[0]
    return int(head.split(", ")[-1].split()[0])


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    fw = RunningFirmware(tmp_path_factory.mktemp("pay"))
    assert fw.cmd("events on").ok
    yield fw
    fw.stop()


def valid(name: str) -> str:
    return next(text for n, text in VALID if n == name)


def test_a_merchant_code_is_paid_only_after_the_button_while_worn(fw, tmp_path):
    code = VALID[0][1]
    assert fw.cmd(f"sim scene {scene(tmp_path / 'shop.png', code)}").ok
    before = received(fw)
    reply = fw.cmd("pay")
    assert reply.ok, reply.error
    assert reply.lines[0].startswith("offer ") and "action button twice" in reply.lines[1]
    seen = fw.events_until(lambda e: e.startswith("payment offer "))
    # Nothing has reached the phone: not the offer, not a spoken or typed "confirm".
    assert fw.cmd("ask confirm").lines[0].startswith("A voice cannot confirm a payment")
    assert not fw.cmd("pay confirm").ok
    assert received(fw) == before
    # Taken off, the button does not pay; worn again, it does.
    assert fw.cmd("sim wear off").ok
    assert fw.cmd("sim button action double").ok
    seen = fw.events_until(lambda e: "not worn, not confirmed" in e, seen=seen)
    assert received(fw) == before
    assert fw.cmd("sim wear on").ok
    assert fw.cmd("sim button action double").ok
    seen = fw.events_until(lambda e: e.startswith("payment paid "), seen=seen)
    seen = fw.events_until(lambda e: e.startswith("speak Paid "), seen=seen)
    assert received(fw) == before + 1
    assert [d["decision"] for d in decisions(fw)][-5:] == [
        "offered", "refused", "refused", "confirmed", "paid"]
    assert fw.cmd("pay status").lines[0].startswith("payments idle")


def test_an_offer_expires_and_a_late_press_pays_nothing(fw, tmp_path):
    assert fw.cmd(f"sim scene {scene(tmp_path / 'shop.png', VALID[0][1])}").ok
    before = received(fw)
    assert fw.cmd("pay").ok
    assert fw.cmd("sim advance 21").ok
    fw.events_until(lambda e: e.startswith("payment expired "))
    assert fw.cmd("sim button action double").ok
    assert fw.cmd("pay status").lines[0].startswith("payments idle")
    assert received(fw) == before


@pytest.mark.parametrize("wallet,said", [("decline", "speak The wallet declined"),
                                         ("silent", "speak The phone did not answer"),
                                         ("off", "speak The phone is not connected")])
def test_the_phones_answer_is_said(fw, tmp_path, wallet, said):
    assert fw.cmd(f"sim scene {scene(tmp_path / 'shop.png', VALID[0][1])}").ok
    assert fw.cmd("sim phone off" if wallet == "off" else f"sim phone wallet {wallet}").ok
    try:
        assert fw.cmd("pay").ok
        assert fw.cmd("sim button action double").ok
        if wallet == "silent":
            assert fw.cmd("sim advance 16").ok
        fw.events_until(lambda e: e.startswith(said))
        assert decisions(fw)[-1]["decision"] == {"decline": "declined", "silent": "unknown",
                                                 "off": "failed"}[wallet]
    finally:
        fw.cmd("sim phone on")
        fw.cmd("sim phone wallet approve")


def test_a_code_without_an_amount_needs_the_amount_said(fw, tmp_path):
    wallet_url = next(text for name, text in VALID if "alipay" in name.lower())
    assert fw.cmd(f"sim scene {scene(tmp_path / 'shop.png', wallet_url)}").ok
    reply = fw.cmd("pay")
    assert not reply.ok and "no amount" in reply.error
    reply = fw.cmd("ask pay 25 yuan")                   # the voice's way, typed
    assert reply.ok and "25.00 Chinese yuan" in reply.lines[0], reply.lines
    assert fw.cmd("pay cancel").lines == ["payment cancelled"]


def test_every_malicious_code_is_refused_and_never_reaches_the_phone(fw, tmp_path):
    before = received(fw)
    refused = {}
    for i, (kind, text, kwargs, expected) in enumerate(MALICIOUS):
        folder = tmp_path / f"m{i:03d}"
        if "previous_text" in kwargs:
            spec = changing_scene(folder, kwargs["previous_text"], text)
        else:
            folder.mkdir()
            spec = scene(folder / "code.png", text)
        assert fw.cmd(f"sim scene {spec}").ok
        args = ""
        if "asked_amount" in kwargs or "asked_currency" in kwargs:
            # Said as "pay 12.50 SGD": the amount as asked, or the code's own if only the
            # currency differs.
            amount = kwargs.get("asked_amount") or parse(text).amount
            args = f" {amount} {kwargs.get('asked_currency', '')}".rstrip()
        reply = fw.cmd("pay" + args)
        refused[kind] = reply.ok is False and reply.error.startswith("pay refused: ")
        if reply.ok:                        # an offer was made: press anyway, as a victim would
            fw.cmd("sim button action double")
            fw.cmd("pay cancel")
    assert [k for k, ok in refused.items() if not ok] == []
    assert len(refused) >= 50
    assert received(fw) == before
    assert all(d["decision"] == "refused" for d in decisions(fw)[-len(MALICIOUS):])


def test_two_payment_codes_in_view_are_refused(fw, tmp_path):
    a, b = VALID[0][1], VALID[1][1]
    assert fw.cmd(f"sim scene {scene(tmp_path / 'two.png', a, b)}").ok
    reply = fw.cmd("pay")
    assert not reply.ok and "more than one payment code" in reply.error


def test_a_product_code_is_looked_up_on_the_phone(fw, tmp_path):
    spec = scene(tmp_path / "box.png", "4006381333931", fmt=zxingcpp.BarcodeFormat.EAN13)
    assert fw.cmd(f"sim scene {spec}").ok
    assert fw.cmd("sim phone product 4006381333931 Pencil, 1.20 euros").ok
    reply = fw.cmd("scan")
    assert reply.ok and reply.lines[0] == "product EAN-13 4006381333931: Pencil, 1.20 euros"
    assert fw.cmd("sim phone off").ok
    try:
        reply = fw.cmd("scan")
        assert "not connected" in reply.lines[0] or "no phone" in reply.lines[0]
    finally:
        fw.cmd("sim phone on")
    reply = fw.cmd("pay")
    assert not reply.ok and "not a payment code" in reply.error


def test_scanning_needs_the_privacy_light(fw, tmp_path):
    assert fw.cmd(f"sim scene {scene(tmp_path / 'shop.png', VALID[0][1])}").ok
    assert fw.cmd("sim led broken").ok
    try:
        reply = fw.cmd("pay")
        assert not reply.ok and "pay refused" in reply.error
        assert not fw.cmd("scan").ok
    finally:
        assert fw.cmd("sim led ok").ok
    assert decisions(fw)[-1]["decision"] != "offered"


def test_amounts_are_parsed_strictly():
    from glasses_firmware.firmware.payments.flow import PaymentRefused, parse_asked
    assert parse_asked("12.50", "sgd").amount == Decimal("12.50")
    assert parse_asked("25", "yuan").currencies == ("CNY",)
    for bad in ("-5", "0", "nan", "1e9", "12.505", "", "25 yuan", "１２"):
        with pytest.raises(PaymentRefused):
            parse_asked(bad)
    with pytest.raises(PaymentRefused):
        parse_asked("5", "doubloons")


def test_the_flow_table_and_its_diagram():
    from glasses_firmware.firmware.payments import flow
    machine = flow.PaymentMachine()
    with pytest.raises(RuntimeError, match="event 'confirm' is not allowed in state 'idle'"):
        machine.fire("confirm", "no offer waits")
    assert machine.state == flow.IDLE and machine.history == []
    text = flow.mermaid()
    assert text.splitlines()[1] == "    [*] --> idle"
    for (src, event), dst in flow.TRANSITIONS.items():
        assert f"    {src} --> {dst} : {event}" in text
    assert set(flow.END_EVENTS.values()) | {"offer", "confirm"} == {e for _, e in flow.TRANSITIONS}


def flow_moves(fw, since: int) -> list[tuple[str, str, str]]:
    """The flow's moves (old, event, new) the firmware logged after byte `since` of its log."""
    text = (fw.data_dir / "logs" / "glasses.log").read_bytes()[since:].decode(errors="replace")
    return [(old, event, new) for old, new, event in re.findall(
        r"glasses\.payments: payment (\w+) -> (\w+) on (\w+) \(", text)]


def until_state(fw, state: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not fw.cmd("pay status").lines[0].startswith(f"payments {state};"):
        assert time.monotonic() < deadline, fw.cmd("pay status").lines
        time.sleep(0.1)


def test_every_move_the_flow_makes_is_in_its_table(fw, tmp_path):
    from glasses_firmware.firmware.payments.flow import TRANSITIONS
    assert fw.cmd(f"sim scene {scene(tmp_path / 'shop.png', VALID[0][1])}").ok
    since = (fw.data_dir / "logs" / "glasses.log").stat().st_size
    try:
        assert fw.cmd("pay").ok and fw.cmd("pay cancel").ok
        assert fw.cmd("pay").ok and fw.cmd("sim advance 21").ok
        until_state(fw, "idle")
        for knob in ("wallet approve", "wallet decline", "off", "wallet silent"):
            assert fw.cmd(f"sim phone {knob}").ok
            assert fw.cmd("pay").ok and fw.cmd("sim button action double").ok
            if knob == "wallet silent":
                until_state(fw, "handing_off")
                assert fw.cmd("sim advance 16").ok
            until_state(fw, "idle")
            fw.cmd("sim phone on")
        # Asked again while the wallet has the last one: the new offer waits; the old
        # hand-off's end (no answer) is recorded, and moves nothing.
        assert fw.cmd("pay").ok and fw.cmd("sim button action double").ok
        until_state(fw, "handing_off")
        assert fw.cmd("pay").ok and fw.cmd("pay status").lines[0].startswith("payments offered;")
        assert fw.cmd("pay cancel").ok and fw.cmd("sim advance 16").ok
        deadline = time.monotonic() + 20
        while decisions(fw)[-1]["decision"] != "unknown":
            assert time.monotonic() < deadline, decisions(fw)[-3:]
            time.sleep(0.1)
    finally:
        fw.cmd("sim phone on")
        fw.cmd("sim phone wallet approve")
    offer, confirm = ("idle", "offer", "offered"), ("offered", "confirm", "handing_off")
    assert flow_moves(fw, since) == [
        offer, ("offered", "cancel", "idle"),
        offer, ("offered", "expire", "idle"),
        offer, confirm, ("handing_off", "paid", "idle"),
        offer, confirm, ("handing_off", "declined", "idle"),
        offer, confirm, ("handing_off", "failed", "idle"),
        offer, confirm, ("handing_off", "no_answer", "idle"),
        offer, confirm, ("handing_off", "offer", "offered"), ("offered", "cancel", "idle")]
    assert all(TRANSITIONS[(old, event)] == new for old, event, new in flow_moves(fw, since))
