"""Power cuts: SIGKILL the firmware at random moments of its work, then check every file.

`run_cuts` boots `glasses run --board sim` again and again on one data directory, starts
an activity (a meeting recording, meeting notes with models, a photo burst, a video),
kills the firmware's whole process group at a random moment (the battery falls out: the
inference workers and the sim's ffmpeg go too), and then checks every file it left:
WAVs open and their frame count matches their data chunk, JPEGs decode, MP4s decode
(ffmpeg), JSON parses. Segments, transcript lines and notes are sealed (drivers/sealed.py):
they must be, and they are opened with the key beside the data dir before their checks. The next boot is the restart: no temp file may be left, and every
photo, video and segment stored before is still there with the same bytes, and `notes
list` still shows every recording.

A kill is not a power cut in one way: the kernel still writes the page cache back, so this
checks the firmware's write order (temp file, rename, append), not its fsyncs.
"""

import hashlib
import io
import json
import random
import struct
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from pathlib import Path, PurePosixPath

from glasses_firmware.drivers.errors import GlassesError
from glasses_firmware.drivers.sealed import Sealer, SealError, is_sealed, is_sealed_line, name_of
from glasses_firmware.firmware.tools.simdriver import SimFirmware

ACTIVITIES = ("recording", "burst", "video", "notes")
# Torn last lines these readers skip (meeting/journal.py Journal.read, payments/flow.py
# decisions); anywhere else a line that does not parse is a failure.
TORN_TAIL_OK = {"transcript.jsonl", "decisions.jsonl"}
SAYINGS = ("we decided to move the launch to friday", "maria will send the budget plan",
           "let's meet again on monday morning")


def is_temp(path: Path) -> bool:
    """A temp file of any writer: hidden `.*.part` (videos) or `*.tmp` (atomic writes)."""
    return (path.name.startswith(".") and path.name.endswith(".part")) or path.suffix == ".tmp"


# -- checking one file -----------------------------------------------------------------------

def check_wav(data: bytes) -> str | None:
    """None if the WAV opens and its frame count matches its data chunk; else what is wrong."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return "no RIFF/WAVE header"
    if struct.unpack("<I", data[4:8])[0] != len(data) - 8:
        return f"RIFF size {struct.unpack('<I', data[4:8])[0]} != file size - 8 ({len(data) - 8})"
    pos, data_len = 12, None
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if kind == b"data":
            data_len = size
            if pos + 8 + size > len(data):
                return f"data chunk of {size} bytes runs past the end of the file"
        pos += 8 + size + (size & 1)
    if data_len is None:
        return "no data chunk"
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            frames, block = w.getnframes(), w.getnchannels() * w.getsampwidth()
    except (wave.Error, EOFError) as e:
        return f"wave cannot open it: {e}"
    if frames * block != data_len:
        return f"{frames} frames of {block} bytes != data chunk of {data_len} bytes"
    return None


def check_jpeg(path: Path) -> str | None:
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()
    except (OSError, SyntaxError, ValueError) as e:
        return f"does not decode: {e}"
    return None


def check_mp4(path: Path) -> str | None:
    try:
        done = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "null",
                               "-"], capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "ffmpeg took over 60 s to decode it"
    err = done.stderr.decode(errors="replace").strip()
    if done.returncode or err:
        return f"ffmpeg: {err.splitlines()[-1] if err else f'exit {done.returncode}'}"
    return None


def check_json(data: bytes) -> str | None:
    try:
        json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        return f"not JSON: {e}"
    return None


def check_jsonl(data: bytes, name: str = "", sealer: Sealer | None = None,
                torn_ok: bool = True, must_seal: bool = False) -> str | None:
    """Every line parses (sealed ones open with `sealer` under `name`); a torn last line
    only where the reader skips it (`torn_ok`); `must_seal`: no line in the clear."""
    lines = data.split(b"\n")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (UnicodeDecodeError, ValueError):
            last = n == len(lines) and not data.endswith(b"\n")
            if last and torn_ok:
                return None          # torn by the cut; the reader skips it
            return f"line {n} is {'a torn last line' if last else 'garbled'}"
        if not is_sealed_line(record):
            if must_seal:
                return f"line {n} is in the clear (it should be sealed)"
            continue
        if sealer is None:
            return f"line {n} is sealed and there is no key beside the data dir"
        try:
            json.loads(sealer.open_line(record, name, f"line {n}"))
        except SealError as e:
            return f"does not open: {e}"
        except (UnicodeDecodeError, ValueError):
            return f"line {n} opens but holds no JSON"
    return None


def check_text(data: bytes) -> str | None:
    try:
        data.decode()
    except UnicodeDecodeError as e:
        return f"not UTF-8: {e}"
    return None


CHECKS = {".wav": ("wav", check_wav), ".jpg": ("jpeg", check_jpeg), ".mp4": ("mp4", check_mp4),
          ".json": ("json", check_json), ".jsonl": ("jsonl", check_jsonl),
          ".md": ("notes", check_text)}
BY_PATH = ("jpeg", "mp4")       # decoded from the file (never sealed); the rest from bytes
# What the firmware seals (relative to the data dir): stored in the clear, it fails.
MUST_SEAL = ("recordings/*/seg-*.wav", "recordings/*/transcript.jsonl", "notes/*.md")


class Checker:
    """Checks files, remembering the verdict on a file whose inode, size and mtime are
    unchanged since (so a campaign decodes each video once, not after every cut).

    Sealed files are opened with `sealer`, or with the key beside the data dir that
    `scan` finds (the firmware makes it at its first boot)."""

    def __init__(self, sealer: Sealer | None = None):
        self.sealer = sealer
        self._verdicts: dict[tuple, str | None] = {}
        self._hashes: dict[tuple, str] = {}
        self.decoded = 0

    def find_key(self, data_dir: Path) -> None:
        if self.sealer is None:
            from glasses_firmware.drivers.devicekey import sealer_for
            try:
                self.sealer = sealer_for(data_dir)
            except FileNotFoundError:
                pass                 # not booted yet: a sealed file is then a failure

    @staticmethod
    def _key(path: Path) -> tuple:
        st = path.stat()
        return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)

    def check(self, path: Path, must_seal: bool = False) -> tuple[str, str | None]:
        kind, fn = CHECKS[path.suffix]
        key = self._key(path)
        if key not in self._verdicts:
            self._verdicts[key] = self._check(path, kind, fn, must_seal)
            self.decoded += 1
        return kind, self._verdicts[key]

    def _check(self, path: Path, kind: str, fn, must_seal: bool) -> str | None:
        if kind in BY_PATH:
            return fn(path)
        data = path.read_bytes()
        if kind == "jsonl":
            return check_jsonl(data, name_of(path), self.sealer, path.name in TORN_TAIL_OK,
                               must_seal)
        if is_sealed(data):
            if self.sealer is None:
                return "sealed, and there is no key beside the data dir"
            try:
                data = self.sealer.unseal(data, name_of(path), path.name)
            except SealError as e:
                return f"does not open: {e}"
        elif must_seal:
            return "stored in the clear (it should be sealed)"
        return fn(data)

    def digest(self, path: Path) -> str:
        key = self._key(path)
        if key not in self._hashes:
            self._hashes[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._hashes[key]


def scan(data_dir: Path, checker: Checker) -> dict:
    """Every file under `data_dir`: checked by kind; temp files and failures listed."""
    out = {"files": 0, "by_kind": Counter(), "temps": [], "failures": []}
    checker.find_key(data_dir)
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        rel = str(path.relative_to(data_dir))
        if is_temp(path):
            out["temps"].append(rel)
            continue
        if rel.startswith("logs/") or path.suffix not in CHECKS:
            continue                 # logs may end in a torn line; sim state files are not data
        must_seal = any(PurePosixPath(rel).match(pattern) and rel.count("/") == pattern.count("/")
                        for pattern in MUST_SEAL)
        kind, problem = checker.check(path, must_seal)
        out["files"] += 1
        out["by_kind"][kind] += 1
        if problem:
            out["failures"].append((kind, rel, problem))
    return out


def inventory(data_dir: Path, checker: Checker) -> dict:
    """What a restart must keep: photo, video and segment bytes; recording ids; notes."""
    stored = {}
    for pattern in ("photos/*.jpg", "videos/*.mp4", "recordings/*/seg-*.wav", "notes/*.md"):
        for path in data_dir.glob(pattern):
            if not is_temp(path):
                stored[str(path.relative_to(data_dir))] = checker.digest(path)
    recordings = {p.parent.name for p in data_dir.glob("recordings/*/info.json")}
    return {"files": stored, "recordings": recordings}


# -- the firmware under test -------------------------------------------------------------------

def start(data_dir: Path, work: Path, models_dir=None, speed: str = "1", wrap=()) -> SimFirmware:
    """One `glasses run --board sim` in its own process group, so a cut kills all of it.
    `wrap`: a command line to run it under (`nsenter -t PID -m --`)."""
    return SimFirmware(data_dir, work / "glasses.tty", work / "stdout.txt", models=models_dir or "none",
                       extra=("--speed", speed), wrap=wrap, own_group=True)


def _wait_worker(fw: SimFirmware, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while fw.cmd("status --json").json()["worker"]["state"] != "ready":
        if time.monotonic() > deadline:
            raise RuntimeError("the model worker did not start")
        time.sleep(0.2)


def _activity(fw: SimFirmware, what: str, rng: random.Random, seconds: float) -> str:
    """Start `what` and sleep until the random moment of the cut; a one-word account."""
    delay = rng.uniform(0.0, seconds)
    if what == "recording":
        fw.send("record start")
    elif what == "burst":
        fw.send(f"capture burst {rng.randint(2, 6)}")
        delay *= 2               # each photo takes a second or so (face blurring)
    elif what == "video":
        fw.send(f"capture video {rng.randint(1, 4)}")
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0.5, 2.0))
            fw.send("capture stop")
    elif what == "notes":
        # A short meeting, stopped, so the cut lands in its transcription or summary (or
        # in the resumed transcription of an earlier one).
        reply = fw.cmd("record start")
        if reply.ok:
            fw.cmd(f"sim say {rng.choice(SAYINGS)}")
            time.sleep(rng.uniform(1.0, 3.0))
            fw.send("record stop")
        delay *= 3               # transcription and summary take longer than a photo
    time.sleep(delay)
    return f"{what} cut at {delay:.1f} s"


def _after_restart(fw: SimFirmware, data_dir: Path, before: dict, checker: Checker) -> list:
    """Failures of a restart: temp files left, earlier work gone or changed, or not listed."""
    failures = []
    temps = [str(p.relative_to(data_dir)) for p in data_dir.rglob("*")
             if p.is_file() and is_temp(p)]
    failures += [("temp_left", rel, "still there after the restart") for rel in temps]
    for rel, digest in before["files"].items():
        path = data_dir / rel
        if not path.exists():
            failures.append(("lost", rel, "gone after the restart"))
        elif checker.digest(path) != digest and not rel.startswith("notes/"):
            failures.append(("changed", rel, "its bytes changed after the restart"))
    listed = set()
    if before["recordings"]:
        listed = {row["id"] for row in fw.cmd("notes list --json").json()}
    failures += [("not_listed", f"recordings/{rec_id}", "missing from `notes list`")
                 for rec_id in sorted(before["recordings"] - listed)]
    return failures


def run_cuts(cuts: int = 200, seconds: float = 3.0, seed: int = 0, models_dir=None,
             progress=print, data_dir=None) -> dict:
    """Cut the power `cuts` times at random moments (0..`seconds` into an activity).

    Without `models_dir` there are no meeting-notes cuts (the other three need no models).
    Returns counts: cuts, files checked (by kind), decodes run, failures by kind, and the
    first failures in full. Raises RuntimeError if the firmware does not boot.
    """
    rng = random.Random(seed)
    activities = ACTIVITIES if models_dir is not None else ACTIVITIES[:-1]
    own = tempfile.TemporaryDirectory(prefix="powercut-")   # the pty and the firmware's output
    work = Path(own.name)
    data_dir = Path(data_dir) if data_dir is not None else work / "data"
    checker = Checker()
    result = {"cuts": 0, "seconds": seconds, "seed": seed, "activities": Counter(),
              "files_checked": 0, "by_kind": Counter(), "decoded": 0, "temps_at_cut": 0,
              "restarts": 0, "failures": Counter(), "examples": [], "data_dir": str(data_dir)}
    before = None
    started = time.monotonic()

    def fail(items):
        for kind, rel, problem in items:
            result["failures"][kind] += 1
            if len(result["examples"]) < 20:
                result["examples"].append(f"{kind} {rel}: {problem}")

    try:
        for n in range(cuts + 1):
            what = rng.choice(activities) if n < cuts else None
            # Recordings at virtual speed, so segments land within a second or two.
            fw = start(data_dir, work, models_dir if what == "notes" else None,
                          speed="max" if what in ("recording", "notes") else "1")
            if before is not None:
                result["restarts"] += 1
                fail(_after_restart(fw, data_dir, before, checker))
            if what is None:
                fw.stop()
                break
            if what in ("recording", "notes"):
                fw.cmd("sim charger on")     # virtual hours would drain the battery
            if what == "notes":
                _wait_worker(fw)
            try:
                account = _activity(fw, what, rng, seconds)
            except (OSError, GlassesError) as e:     # the console went: did it crash?
                account = f"{what}: console failed ({e})"
                if fw.proc.poll() is not None:
                    fail([("crashed", what,
                           f"the firmware exited by itself ({fw.proc.returncode})")])
            fw.kill()
            result["cuts"] += 1
            result["activities"][what] += 1
            found = scan(data_dir, checker)
            result["files_checked"] += found["files"]
            result["by_kind"].update(found["by_kind"])
            result["temps_at_cut"] += len(found["temps"])
            fail(found["failures"])
            before = inventory(data_dir, checker)
            bad = sum(result["failures"].values())
            temps = f", {len(found['temps'])} temp files" if found["temps"] else ""
            progress(f"cut {n + 1}/{cuts}: {account}; {found['files']} files checked{temps}; "
                     f"{bad} failures so far ({time.monotonic() - started:.0f} s)")
    finally:
        result["decoded"] = checker.decoded
        result["elapsed_s"] = round(time.monotonic() - started, 1)
        own.cleanup()
    return result


def summary(result: dict) -> str:
    """A few lines for people: what was cut, what was checked, what failed."""
    acts = ", ".join(f"{k} {v}" for k, v in sorted(result["activities"].items()))
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(result["by_kind"].items()))
    fails = ", ".join(f"{k} {v}" for k, v in sorted(result["failures"].items())) or "none"
    lines = [f"{result['cuts']} power cuts ({acts}) in {result['elapsed_s']:g} s, "
             f"seed {result['seed']}, "
             f"cut 0-{result['seconds']:g} s into the activity",
             f"{result['files_checked']} file checks ({kinds}); {result['decoded']} decodes "
             "(a file unchanged since its last check is not decoded again)",
             f"{result['temps_at_cut']} temp files found right after the cuts; "
             f"{result['restarts']} restarts",
             f"failures: {fails}"]
    return "\n".join(lines + [f"  {e}" for e in result["examples"]])


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cuts", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=None, help="models dir for meeting-notes cuts")
    parser.add_argument("--json", action="store_true")
    a = parser.parse_args()
    res = run_cuts(a.cuts, a.seconds, a.seed, a.models, progress=lambda s: print(s, flush=True))
    print(json.dumps(res, default=list) if a.json else summary(res))
    sys.exit(1 if res["failures"] else 0)
