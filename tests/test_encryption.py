"""Recordings and notes sealed at rest (docs/encryption.md), as a user meets them.

One meeting is recorded on the sim board with the test models (`record start`, `sim say`,
`record stop`, notes in the background); the tests then look at its files on disk, read it
back through the console after a restart, export it with `glasses export`, damage copies of
it, and check that an image never carries a device key.
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from glasses_firmware.drivers.devicekey import default_key_path, device_sealer, key_path
from glasses_firmware.drivers.errors import ConfigError
from glasses_firmware.drivers.sealed import MAGIC, Sealer, SealError
from tests import flash_images as fi
from tests.conftest import ROOT, RunningFirmware
from tests.flash_images import inputs  # noqa: F401 (the fake base image and wheels, as a fixture)

SAID = "we agreed to paint the meeting room blue"


def glasses(*args, timeout_s: float = 60):
    return subprocess.run([sys.executable, "-m", "glasses_firmware.firmware", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def meeting(tmp_path_factory, test_models):
    """A meeting recorded and summarized on the sim board; the firmware stopped after."""
    tmp = tmp_path_factory.mktemp("sealed")
    fw = RunningFirmware(tmp, extra=("--models", str(test_models)))
    try:
        assert fw.cmd("events on").ok
        deadline = time.monotonic() + 60
        while fw.cmd("status --json").json()["worker"]["state"] != "ready":
            assert time.monotonic() < deadline, "the model worker did not start"
            time.sleep(0.3)
        started = fw.cmd("record start")
        assert started.ok, started.error
        rec_id = re.search(r"recordings/(\S+)", started.lines[0]).group(1)
        assert fw.cmd(f"sim say {SAID}").ok
        time.sleep(3.5)
        assert fw.cmd("record stop").ok
        fw.events_until(lambda e: e.startswith(f"notes {rec_id} done"), 60)
        shown = fw.cmd(f"notes show {rec_id}")
        assert shown.ok, shown.error
    finally:
        fw.stop()
    assert fw.proc.returncode == 0
    return {"tmp": tmp, "data": fw.data_dir, "id": rec_id, "shown": shown.lines,
            "key": default_key_path(fw.data_dir)}


def _files(m):
    rec = m["data"] / "recordings" / m["id"]
    return rec, sorted(rec.glob("seg-*.wav")), rec / "transcript.jsonl", \
        m["data"] / "notes" / f"{m['id']}.md"


def test_what_is_on_the_card_holds_no_sound_and_no_words(meeting):
    rec, segments, journal, note = _files(meeting)
    assert segments and journal.is_file() and note.is_file()
    for seg in segments:
        data = seg.read_bytes()
        assert data.startswith(MAGIC) and b"RIFF" not in data[:64] and b"WAVEfmt " not in data
    text = note.read_bytes()
    assert text.startswith(MAGIC)
    for plain in (b"# Meeting", b"## Summary", b"## Transcript", b"glasses-notes", b"Speaker"):
        assert plain not in text
    lines = journal.read_bytes().splitlines()
    assert lines and all(set(json.loads(line)) == {"sealed"} for line in lines)
    assert b'"text"' not in journal.read_bytes() and b'"done_s"' not in journal.read_bytes()
    # info.json holds times and counts only (the directory's name is the start time anyway).
    assert set(json.loads((rec / "info.json").read_text())) == \
        {"started", "rate_hz", "segment_s", "ended", "segments"}
    # The firmware itself reads them: the notes it showed are the real thing.
    shown = meeting["shown"]
    assert shown[0].startswith("# Meeting ") and "## Summary" in shown and "## Transcript" in shown


def test_the_key_is_made_once_0600_beside_the_data_dir_and_a_restart_reads_everything(meeting):
    key, data = meeting["key"], meeting["data"]
    assert key.parent == data.parent / ".glasses-keys" and key.name == "data.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    raw = key.read_bytes()
    assert re.fullmatch(rb"[0-9a-f]{64}\n", raw)
    secret = bytes.fromhex(raw.decode())
    for path in data.rglob("*"):            # nothing in the data dir carries the key
        if path.is_file():
            body = path.read_bytes()
            assert secret not in body and raw.strip() not in body, path
    inode = key.stat().st_ino
    fw = RunningFirmware(meeting["tmp"])    # the restart, on the same data dir
    try:
        row = fw.cmd("notes list --json").json()
        assert [(r["id"], r["status"]) for r in row] == [(meeting["id"], "done")]
        assert fw.cmd(f"notes show {meeting['id']}").lines == meeting["shown"]
        assert fw.cmd("notes search summary").lines[0].startswith(f"{meeting['id']}: ")
    finally:
        fw.stop()
    assert key.read_bytes() == raw and key.stat().st_ino == inode     # made once, kept


def test_export_gives_wavs_the_transcript_and_the_notes_and_never_overwrites(meeting, tmp_path):
    rec, segments, journal, note = _files(meeting)
    out = tmp_path / "out"
    done = glasses("export", "--data-dir", meeting["data"], "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("exporting 1 recording from ")
    assert f"[1/1] {meeting['id']}: " in done.stdout and "0 errors" in done.stdout
    got = out / meeting["id"]
    frames = 0
    for seg in segments:
        with wave.open(str(got / seg.name), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            frames += w.getnframes()
            assert len((got / seg.name).read_bytes()) == 44 + 2 * w.getnframes()
    assert 3.0 <= frames / 16000 <= 6.0          # the 3.5 s said between start and stop
    notes_md = (got / "notes.md").read_text()
    # The clear copy is what `notes show` printed (the console leaves out blank lines).
    assert [line for line in notes_md.splitlines() if line and not line.startswith("<!--")] == \
        [line for line in meeting["shown"] if line]
    records = [json.loads(line) for line in (got / "transcript.jsonl").read_text().splitlines()]
    assert records[-1]["complete"] is True
    words = {w for r in records if "text" in r for w in r["text"].split() if len(w) >= 5}
    assert words                                # the test models hear something
    on_card = b"".join(p.read_bytes() for p in meeting["data"].rglob("*") if p.is_file())
    for word in words:             # in the clear copy; nowhere on the card, logs included
        assert word in notes_md and word.encode() not in on_card, word
    assert json.loads((got / "info.json").read_text())["segments"] == len(segments)
    before = {p.name: p.read_bytes() for p in got.iterdir()}
    again = glasses("export", "--data-dir", meeting["data"], "--out", out)
    assert again.returncode == 1 and "already exists; not overwritten" in again.stderr
    assert {p.name: p.read_bytes() for p in got.iterdir()} == before
    assert not [p for p in out.rglob("*.tmp")]
    inside = glasses("export", "--data-dir", meeting["data"], "--out", meeting["data"] / "x")
    assert inside.returncode == 2 and "inside the data dir" in inside.stderr


def test_a_wrong_key_a_flipped_byte_and_a_truncated_file_each_name_the_file(meeting, tmp_path):
    copy = tmp_path / "data"                    # a copy of the card, without its key
    shutil.copytree(meeting["data"], copy)
    rec = copy / "recordings" / meeting["id"]
    no_key = glasses("export", "--data-dir", copy, "--out", tmp_path / "a")
    assert no_key.returncode == 2 and "no key for" in no_key.stderr and "--key FILE" in no_key.stderr

    wrong = tmp_path / "wrong.key"
    wrong.write_text(os.urandom(32).hex() + "\n")
    bad = glasses("export", "--data-dir", copy, "--key", wrong, "--out", tmp_path / "b")
    assert bad.returncode == 1
    errors = [line for line in bad.stderr.splitlines() if line.startswith("glasses: export: ")]
    assert errors and all("sealed under another key" in e and "--key FILE" in e for e in errors)
    assert any("seg-00001.wav" in e for e in errors) and any("notes" in e for e in errors)
    assert (tmp_path / "b" / meeting["id"] / "info.json").is_file()    # the rest still exports

    seg = rec / "seg-00001.wav"
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x01                # one bit flipped mid-file
    seg.write_bytes(bytes(data))
    note = copy / "notes" / f"{meeting['id']}.md"
    note.write_bytes(note.read_bytes()[:-10])  # truncated
    damaged = glasses("export", "--data-dir", copy, "--key", meeting["key"], "--out", tmp_path / "c")
    assert damaged.returncode == 1
    assert re.search(r"seg-00001\.wav: does not authenticate: .*restore it from a copy",
                     damaged.stderr), damaged.stderr
    assert f"{meeting['id']}.md: does not authenticate" in damaged.stderr
    exported = {p.name for p in (tmp_path / "c" / meeting["id"]).iterdir()}
    assert exported == {"info.json", "transcript.jsonl"}
    assert not (tmp_path / "c" / meeting["id"] / "seg-00001.wav").exists()   # never garbage

    # The firmware on the damaged copy (with its key beside it) says the same, and runs on.
    shutil.copytree(meeting["key"].parent, tmp_path / ".glasses-keys")
    fw = RunningFirmware(tmp_path)
    try:
        shown = fw.cmd(f"notes show {meeting['id']}")
        assert not shown.ok and "seg-00001.wav: does not authenticate" in shown.error
        row = fw.cmd("notes list --json").json()[0]
        assert row["status"].startswith("unreadable")
        assert "not searched: it does not open" in " ".join(fw.cmd("notes search x").lines)
        assert fw.cmd("status").ok
    finally:
        fw.stop()


def test_files_from_before_sealing_are_read_as_they_are(tmp_path):
    """An upgrade: a recording and notes written in the clear by an older firmware."""
    import numpy as np

    from glasses_firmware.drivers.wavio import wav_bytes
    data = tmp_path / "data"
    rec = data / "recordings" / "20250101-090000"
    rec.mkdir(parents=True)
    (rec / "seg-00001.wav").write_bytes(wav_bytes(np.zeros((16000, 1), np.float32), 16000))
    (rec / "info.json").write_text(json.dumps({"started": 1735722000.0, "rate_hz": 16000,
                                               "segment_s": 30.0, "ended": 1735722001.0}))
    (data / "notes").mkdir()
    (data / "notes" / "20250101-090000.md").write_text(
        '<!-- glasses-notes {"speakers": 1} -->\n# Meeting 2025-01-01 09:00 (0:01)\n\n'
        "## Decisions\n\n- [00:00] move the launch to friday (Speaker 1)\n")
    fw = RunningFirmware(tmp_path)
    try:
        assert fw.cmd("notes list --json").json()[0]["status"] == "done"
        assert "## Decisions" in fw.cmd("notes show latest").lines
        assert "move the launch to friday" in " ".join(fw.cmd("ask what did we decide").lines)
    finally:
        fw.stop()
    done = glasses("export", "--data-dir", data, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    with wave.open(str(tmp_path / "out" / "20250101-090000" / "seg-00001.wav")) as w:
        assert w.getnframes() == 16000
    assert "friday" in (tmp_path / "out" / "20250101-090000" / "notes.md").read_text()


def test_a_seal_is_bound_to_its_key_its_bytes_and_its_place(tmp_path):
    sealer = Sealer.ephemeral()
    a, b = tmp_path / "r1" / "seg-00001.wav", tmp_path / "r1" / "seg-00002.wav"
    sealer.write(a, b"first")
    sealer.write(b, b"second")
    assert a.read_bytes() != sealer.seal(b"first", "r1/seg-00001.wav")     # a fresh nonce each
    assert sealer.unseal(a.read_bytes(), "r1/seg-00001.wav", str(a)) == b"first"
    shutil.copy(a, b)                                   # one segment put in another's place
    with pytest.raises(SealError, match="seg-00002.wav: does not authenticate.*moved"):
        from glasses_firmware.drivers.sealed import read_file
        read_file(b, sealer)
    with pytest.raises(SealError, match="truncated"):
        sealer.unseal(a.read_bytes()[:20], "r1/seg-00001.wav", "x")
    newer = bytearray(a.read_bytes())
    newer[len(MAGIC)] = 9
    with pytest.raises(SealError, match="format 9.*update the firmware"):
        sealer.unseal(bytes(newer), "r1/seg-00001.wav", "x")


def _fake_otp(tmp_path: Path, output: str) -> str:
    tool = tmp_path / "bin" / "rpi-otp-private-key"
    tool.parent.mkdir(exist_ok=True)
    tool.write_text(f"#!/bin/sh\necho {output}\n")
    tool.chmod(0o755)
    return f"{tool.parent}{os.pathsep}{os.environ['PATH']}"


def test_the_otp_key_when_the_board_asks_and_it_is_programmed_else_the_file(tmp_path, monkeypatch):
    """`rpi-otp-private-key` needs a CM4/CM5's firmware mailbox: a script stands in for it."""
    from glasses_firmware.boards.schema import StorageSpec
    storage = StorageSpec(key_source="otp", key_file=str(tmp_path / "etc" / "device.key"))
    otp = os.urandom(32)
    monkeypatch.setenv("PATH", _fake_otp(tmp_path, otp.hex()))
    from_otp = device_sealer(storage, tmp_path / "data")
    assert from_otp.source == "the OTP customer key" and from_otp.key_id == Sealer(otp, "x").key_id
    assert not (tmp_path / "etc").exists()           # nothing on the card
    monkeypatch.setenv("PATH", _fake_otp(tmp_path, "0" * 64))          # not programmed
    from_file = device_sealer(storage, tmp_path / "data")
    assert from_file.source == storage.key_file and Path(storage.key_file).is_file()
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))               # no tool at all
    assert device_sealer(storage, tmp_path / "data").key_id == from_file.key_id


def test_the_first_boot_step_makes_the_key_once_and_says_so_when_it_cannot(tmp_path):
    """What glasses.service runs as root before the firmware (ExecStartPre)."""
    def step(data):
        return subprocess.run([sys.executable, "-m", "glasses_firmware.drivers.devicekey", "sim", "--data-dir", data],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
    first, again = step(tmp_path / "data"), step(tmp_path / "data")
    assert first.returncode == 0 and first.stdout == again.stdout, first.stderr
    assert first.stdout.startswith(f"device key: {tmp_path / '.glasses-keys' / 'data.key'} (key id ")
    (tmp_path / "ro").mkdir()          # a file where the key directory would go (root ignores modes)
    (tmp_path / "ro" / ".glasses-keys").write_text("not a directory")
    failed = step(tmp_path / "ro" / "data")
    assert failed.returncode == 2 and "cannot make the device key" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_board_files_say_where_the_key_comes_from_and_not_from_the_data_dir(tmp_path):
    from glasses_firmware import boards
    from glasses_firmware.boards.schema import StorageSpec, from_toml
    import tomllib
    sim = tomllib.loads((ROOT / "boards" / "sim.toml").read_text())
    with pytest.raises(ConfigError, match="'storage.key_source' must be one of"):
        from_toml({**sim, "storage": {"key_source": "tpm"}}, "x.toml")
    with pytest.raises(ConfigError, match="'storage.key_file' must be an absolute path"):
        from_toml({**sim, "storage": {"key_file": "device.key"}}, "x.toml")
    with pytest.raises(ConfigError, match="inside the data dir"):
        key_path(StorageSpec(key_file=str(tmp_path / "data" / "k.key")), tmp_path / "data")
    for name in ("cm5-ref", "cm4-ref"):
        assert boards.load(name).storage == StorageSpec("otp", "/etc/glasses/device.key")


@pytest.mark.skipif(bool(fi.MISSING), reason=f"image tools missing: {', '.join(fi.MISSING)}")
def test_an_image_never_carries_a_device_key(tmp_path, inputs):
    """verify fails on an image with a key in it, and a build from such a base removes it."""
    out = tmp_path / "glasses.img"
    built = fi.flash(*fi.build_args(inputs, out))
    assert built.returncode == 0, built.stderr
    verified = fi.flash("verify", out, "--board", "cm5-ref")
    assert verified.returncode == 0 and "ok   no device key: none in /etc/glasses" in verified.stdout
    assert "ExecStartPre=+/opt/glasses/venv/bin/python -m glasses_firmware.drivers.devicekey" in \
        fi.debugfs(out, "cat /etc/systemd/system/glasses.service")

    used = tmp_path / "used.img"                # as if read back from a card in use
    fi.sh("cp", "--sparse=always", out, used)
    (tmp_path / "device.key").write_text(os.urandom(32).hex() + "\n")
    offset, _ = fi.root_offset(used)
    fi.sh(fi.tool("debugfs"), "-w", "-R", f"write {tmp_path / 'device.key'} /etc/glasses/device.key",
          f"{used}?offset={offset}")
    caught = fi.flash("verify", used, "--board", "cm5-ref")
    assert caught.returncode == 1
    assert "FAIL no device key: /etc/glasses/device.key: a device key in the image" in caught.stdout
    clean = tmp_path / "clean.img"
    rebuilt = fi.flash("build", "--board", "cm5-ref", "--base", used, "--out", clean,
                       "--wheels", inputs["wheels"], "--grow-mb", "8", "--no-models")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "device.key" not in fi.debugfs(clean, "ls /etc/glasses")
    assert fi.flash("verify", clean, "--board", "cm5-ref").returncode == 0
