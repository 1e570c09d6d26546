"""Nothing lost, nothing let in: power cuts at random moments, and a full disk.

The power cuts are firmware/tools/powercut.py's campaign, bounded; `glasses soak --cuts N`
runs the long one. The full disk is a 4 MB tmpfs in a private mount namespace (root only),
seen from here through /proc/PID/root of the process that holds the namespace.
"""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from glasses_firmware.firmware.tools import powercut
from glasses_firmware.firmware.tools.simdriver import SimFirmware

DISK_MB = 4


@pytest.mark.slow
def test_power_cuts_leave_every_file_whole_and_every_earlier_one_listed(tmp_path, test_models):
    lines = []
    result = powercut.run_cuts(cuts=25, seconds=2.0, seed=7, models_dir=test_models,
                               progress=lines.append, data_dir=tmp_path / "data")
    text = powercut.summary(result)
    assert result["cuts"] == 25 and result["restarts"] == 25 and len(lines) == 25
    assert not result["failures"], text
    assert set(result["activities"]) == set(powercut.ACTIVITIES), text
    assert all(result["by_kind"][kind] for kind in ("wav", "jpeg", "json")), text
    assert not [p for p in (tmp_path / "data").rglob("*") if powercut.is_temp(p)]


def test_the_checker_finds_what_a_cut_could_break(tmp_path):
    """The campaign is only as good as its checks: each kind of damage is found, in plain
    files (as before sealing) and sealed ones, and what should be sealed but is not."""
    from glasses_firmware.drivers.sealed import Sealer
    from glasses_firmware.drivers.wavio import wav_bytes
    import numpy as np
    sealer = Sealer.ephemeral()
    good = wav_bytes(np.zeros((1600, 1), np.float32), 16000)
    (tmp_path / "ok.wav").write_bytes(good)
    (tmp_path / "short.wav").write_bytes(good[:-100])          # cut before its data ended
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    (tmp_path / "info.json").write_text('{"started": 1')
    # A torn tail the reader skips, and one in a file nobody skips it in.
    (tmp_path / "transcript.jsonl").write_bytes(b'{"done_s": 1}\n{"done_s"')
    (tmp_path / "other.jsonl").write_bytes(b'{"a": 1}\n{"a"')
    (tmp_path / ".v.mp4.part").write_bytes(b"\0" * 10)
    rec = tmp_path / "recordings" / "20260101-000000"
    sealer.write(rec / "seg-00001.wav", good)
    sealer.write(rec / "seg-00002.wav", good[:-100])            # whole seal, short WAV inside
    (rec / "seg-00003.wav").write_bytes((rec / "seg-00001.wav").read_bytes()[:-100])  # cut seal
    (rec / "seg-00004.wav").write_bytes(good)                   # in the clear
    line = sealer.seal_line(b'{"done_s": 1}', "20260101-000000/transcript.jsonl")
    (rec / "transcript.jsonl").write_bytes(line + b"\n" + line[:20])   # torn tail: fine
    sealer.write(tmp_path / "notes" / "20260101-000000.md", b"# Meeting")
    (tmp_path / "notes" / "20260101-000001.md").write_bytes(b"# Meeting")  # in the clear
    found = powercut.scan(tmp_path, powercut.Checker(sealer))
    bad = {rel for _, rel, _ in found["failures"]}
    assert bad == {"short.wav", "cut.jpg", "info.json", "other.jsonl",
                   "recordings/20260101-000000/seg-00002.wav",
                   "recordings/20260101-000000/seg-00003.wav",
                   "recordings/20260101-000000/seg-00004.wav", "notes/20260101-000001.md"}, found
    assert found["temps"] == [".v.mp4.part"]
    # Under another key, every sealed file fails, saying so.
    found = powercut.scan(tmp_path, powercut.Checker(Sealer.ephemeral()))
    assert any("sealed under another key" in problem for *_, problem in found["failures"])
    assert "recordings/20260101-000000/transcript.jsonl" in {r for _, r, _ in found["failures"]}


def test_boot_removes_stale_temp_files_of_its_own_naming_only(tmp_path):
    from glasses_firmware.drivers.atomic import remove_stale_temps
    (tmp_path / "videos").mkdir()
    stale = [tmp_path / "videos" / ".20260101-000000-000.mp4.part",
             tmp_path / ".info.json.4242.tmp"]
    kept = [tmp_path / "videos" / "20260101-000000-000.mp4", tmp_path / "notes.tmp.md",
            tmp_path / ".hidden"]
    for p in stale + kept:
        p.write_bytes(b"x")
    assert sorted(remove_stale_temps(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)


def test_a_clock_set_back_after_a_cut_never_overwrites_earlier_work(tmp_path):
    """A board with no RTC boots at its last saved time: the same name comes round again."""
    from glasses_firmware.drivers.atomic import unused
    (tmp_path / "20260101-000000").mkdir()
    (tmp_path / "20260101-000000-2").mkdir()
    (tmp_path / "a.jpg").write_bytes(b"x")
    assert unused(tmp_path / "20260101-000000") == tmp_path / "20260101-000000-3"
    assert unused(tmp_path / "a.jpg") == tmp_path / "a-2.jpg"
    assert unused(tmp_path / "b.jpg") == tmp_path / "b.jpg"


# -- a full disk -------------------------------------------------------------------------------

def _namespace_reason() -> str | None:
    if os.geteuid() != 0:
        return "a tmpfs of its own needs root (mount in a private namespace)"
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "needs unshare and nsenter (util-linux)"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    if probe.returncode:
        return f"cannot mount a tmpfs in a private namespace: {probe.stderr.decode().strip()}"
    return None


class SmallDisk:
    """A DISK_MB tmpfs at `path`, in a mount namespace a sleeping process holds open."""

    def __init__(self, path: Path):
        path.mkdir(parents=True)
        self.path = path
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             f"mount -t tmpfs -o size={DISK_MB}m tmpfs '{path}' && echo ready && exec sleep 600"],
            stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline().strip() == "ready"
        self.view = Path(f"/proc/{self.holder.pid}/root") / str(path).lstrip("/")

    def free(self) -> int:
        return shutil.disk_usage(self.view).free

    def fill(self, leave_bytes: int) -> None:
        """Grow a filler file until about `leave_bytes` are free."""
        with open(self.view / "filler.bin", "ab") as f:
            f.write(b"\0" * max(0, self.free() - leave_bytes))

    def boot(self, work: Path, speed: str = "1") -> SimFirmware:
        fw = powercut.start(self.path, work, speed=speed,
                            wrap=("nsenter", "-t", str(self.holder.pid), "-m", "--"))
        assert fw.cmd("events on").ok
        return fw

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait(10)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def small_disk(tmp_path):
    reason = _namespace_reason()
    if reason:
        pytest.skip(reason)
    disk = SmallDisk(tmp_path / "data")
    yield disk
    disk.close()


def test_a_full_disk_stops_photos_video_and_recording_clearly_and_keeps_earlier_files(
        small_disk, tmp_path):
    disk, view = small_disk, small_disk.view
    fw = disk.boot(tmp_path)
    try:
        first = fw.cmd("capture photo")
        assert first.ok, first.error
        kept = {p.name: _sha(p) for p in view.glob("photos/*.jpg")}
        assert len(kept) == 1

        # Video: the disk fills while it records (below the 1 MB it keeps free, however
        # fast this machine encodes); it stops by itself, saying why.
        disk.fill(leave_bytes=3_000_000)
        started = fw.cmd("capture video 20")
        assert started.ok, started.error
        disk.fill(leave_bytes=900_000)
        seen = fw.events_until(lambda e: e.startswith(("capture video saved", "capture video 2")),
                               40)
        said = [e for e in seen if "the disk is full" in e]
        assert said and "delete photos, videos or recordings" in said[0], seen
        for video in view.glob("videos/*.mp4"):          # kept only if it is whole
            assert powercut.check_mp4(video) is None
        assert fw.cmd("capture video 5").error.startswith("capture refused: the disk is full")

        # Photos: the burst stops at the first that does not fit.
        disk.fill(leave_bytes=250_000)
        burst = fw.cmd("capture burst 5", 60)
        assert burst.error and "the disk is full" in burst.error, burst
        assert "delete photos, videos or recordings to make room" in burst.error
        fault = fw.events_until(lambda e: e.startswith("fault capture stopped after"), 10)
        assert any("the disk is full" in e for e in fault)
        assert fw.cmd("status --json").json()["mode"] == "STANDBY"   # not stuck in CAPTURE
        assert not [p for p in view.rglob("*") if powercut.is_temp(p)]
    finally:
        fw.stop()
    assert fw.proc.returncode == 0

    # Recording, at virtual speed so its 30 s segments come quickly: the first fits, the
    # second does not; the recording stops and says so, and what was saved stays.
    (view / "filler.bin").unlink()
    disk.fill(leave_bytes=1_500_000)
    fw = disk.boot(tmp_path, speed="max")
    try:
        assert fw.cmd("sim charger on").ok       # virtual hours would drain the battery
        assert fw.cmd("record start").ok
        seen = fw.events_until(lambda e: e.startswith("record saved"), 60)
        stopped = next(e for e in seen if e.startswith("fault record"))
        assert "the disk is full" in stopped and "make room" in stopped, seen
        assert "(1 segments, the disk is full)" in seen[-1]
        assert fw.cmd("status --json").json()["mode"] == "CHARGING"
        rows = fw.cmd("notes list --json").json()
        assert len(rows) == 1
        rec = view / "recordings" / rows[0]["id"]
        segments = sorted(rec.glob("seg-*.wav"))
        checker = powercut.Checker()
        checker.find_key(view)
        assert checker.sealer is not None                    # beside the data dir, not on it
        assert segments and all(checker.check(p, must_seal=True)[1] is None for p in segments)
        assert json.loads((rec / "info.json").read_text())["started"]
        # The earlier photos are all there, byte for byte; nothing half-written is left.
        assert {p.name: _sha(p) for p in view.glob("photos/*.jpg")}.items() >= kept.items()
        assert not [p for p in view.rglob("*") if powercut.is_temp(p)]
        found = powercut.scan(view, powercut.Checker())
        assert not found["failures"], found["failures"]
    finally:
        fw.stop()
    assert fw.proc.returncode == 0


def test_a_full_disk_under_the_transcript_journal_is_storage_full_and_recovers(small_disk):
    from glasses_firmware.drivers.errors import StorageFull
    from glasses_firmware.drivers.sealed import Sealer
    from glasses_firmware.firmware.meeting import journal as j
    disk = small_disk
    jr = j.Journal(disk.view / "transcript.jsonl", Sealer.ephemeral())
    jr.append({"done_s": 1.0})
    disk.fill(leave_bytes=0)
    with pytest.raises(StorageFull, match="the disk is full .* make room"):
        for n in range(10_000):            # tmpfs has a page or so of slack
            jr.append({"start": n, "end": n + 1, "text": "x" * 500})
    (disk.view / "filler.bin").unlink()
    jr.append({"done_s": 2.0})             # cuts off any partly written line first
    assert powercut.check_jsonl(jr.path.read_bytes(), "data/transcript.jsonl", jr.sealer,
                                must_seal=True) is None
    records = jr.read()
    assert records[0] == {"done_s": 1.0} and records[-1] == {"done_s": 2.0}
    assert all(r["text"] == "x" * 500 for r in records[1:-1])
