"""What is on disk for a meeting: its segments, and the transcript journal beside them.

`recordings/<id>/` holds the recorder's `info.json` and `seg-NNNNN.wav` segments (16 kHz
mono, each written atomically) and the transcriber's `transcript.jsonl`: one JSON object
per line, appended and fsynced one at a time, so a power cut loses at most the line being
written. A torn last line is ignored when read and cut off before the next append.

Segments and journal lines are sealed under the device key (drivers/sealed.py; a journal
line is `{"sealed": "<base64>"}`); `info.json` holds only times and counts and is not.
Files from before sealing are read as they are.

Journal records:
  {"start": s, "end": s, "text", "language", "language_prob", "embedding": [...] | null}
      one utterance, times in seconds of meeting audio
  {"done_s": s}      all audio before s has been transcribed (silence included)
  {"complete": true, "duration_s": s}      the whole recording is transcribed
"""

import io
import json
import logging
import os
import wave
from dataclasses import dataclass, field
from pathlib import Path

from glasses_firmware.drivers.atomic import fsync_dir, is_full, storage_full
from glasses_firmware.drivers.errors import GlassesError
from glasses_firmware.drivers.sealed import Sealer, SealError, is_sealed_line, name_of, read_file

log = logging.getLogger("glasses.meeting")

RATE_HZ = 16000
JOURNAL = "transcript.jsonl"


class MeetingDataError(GlassesError, ValueError):
    """A recording's files cannot be read; the message names the file."""


class Journal:
    """Append-only JSON lines; each `append` is on disk (fsynced) when it returns.

    `sealer` seals every line appended and opens sealed lines read; None: lines are
    plain JSON (a journal from before sealing) and a sealed line is a SealError.
    """

    def __init__(self, path: Path, sealer: Sealer | None):
        self.path = Path(path)
        self.sealer = sealer
        self._name = name_of(self.path)
        self._repaired = False

    def read(self) -> list[dict]:
        """Every whole record; a torn or garbled line (a power cut mid-write) is skipped.

        SealError (naming the file and line) for a sealed line that does not open: a wrong
        key or a changed line, which a power cut cannot make (a torn line does not parse).
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        records = []
        for n, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                log.warning("%s line %d is torn or garbled; skipped", self.path, n)
                continue
            if is_sealed_line(record):
                record = self._open(record, n)
            if isinstance(record, dict):
                records.append(record)
        return records

    def _open(self, obj: dict, n: int):
        where = f"{self.path} line {n}"
        if self.sealer is None:
            raise SealError(f"{where}: sealed, and no device key was given to open it")
        try:
            return json.loads(self.sealer.open_line(obj, self._name, where))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise SealError(f"{where}: opens, but holds no JSON record") from None

    def append(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        if self.sealer is not None:
            line = self.sealer.seal_line(line, self._name)
        line += b"\n"
        created = not self.path.exists()
        if not self._repaired:
            self._cut_torn_tail()
            self._repaired = True
        try:
            with open(self.path, "ab") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            # Part of the line may be on disk: the next append cuts it off first.
            self._repaired = False
            if is_full(e):
                raise storage_full(self.path, "transcript line") from e
            raise
        if created:
            fsync_dir(self.path.parent)     # the new file's name must survive a power cut too

    def _cut_torn_tail(self) -> None:
        # A line torn by a power cut has no newline: appending after it would glue the
        # next record onto it and lose both. Cut back to the last whole line first.
        try:
            with open(self.path, "r+b") as f:
                data = f.read()
                if data and not data.endswith(b"\n"):
                    f.truncate(data.rfind(b"\n") + 1)
                    f.flush()
                    os.fsync(f.fileno())
                    log.warning("%s: cut a torn last line (%d bytes)", self.path,
                                len(data) - data.rfind(b"\n") - 1)
        except FileNotFoundError:
            pass


@dataclass
class Progress:
    """What the journal says about a recording's transcription."""

    utterances: list[dict] = field(default_factory=list)
    done_s: float = 0.0
    complete: bool = False


def progress(journal: Journal) -> Progress:
    p = Progress()
    for r in journal.read():
        if "text" in r and "start" in r and "end" in r:
            p.utterances.append(r)
            p.done_s = max(p.done_s, float(r["end"]))
        elif "done_s" in r:
            p.done_s = max(p.done_s, float(r["done_s"]))
        elif r.get("complete"):
            p.complete = True
    p.utterances.sort(key=lambda u: u["start"])
    return p


@dataclass
class Recording:
    """One `recordings/<id>/` directory as it is on disk now."""

    id: str
    dir: Path
    info: dict
    segments: list[tuple[Path, int]]      # (path, frames) in order
    sealer: Sealer | None = None          # opens its segments and journal
    problem: str | None = None            # why its files cannot be read (a wrong key...)

    @property
    def started(self) -> float | None:
        return self.info.get("started")

    @property
    def ended(self) -> bool:
        """Stopped cleanly (`record stop`); after a power cut this stays False."""
        return "ended" in self.info

    @property
    def duration_s(self) -> float:
        return sum(frames for _, frames in self.segments) / RATE_HZ

    @property
    def journal(self) -> Journal:
        return Journal(self.dir / JOURNAL, self.sealer)


_frames_cache: dict[tuple[str, int, int], int] = {}


def _frames(path: Path, sealer: Sealer | None) -> int | None:
    """Frames of a segment; None (logged) if it is no 16 kHz mono WAV; SealError if sealed
    and it does not open: the recording is then unreadable as a whole, never shortened."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _frames_cache:
        data = read_file(path, sealer)
        try:
            with wave.open(io.BytesIO(data), "rb") as w:
                if w.getframerate() != RATE_HZ or w.getnchannels() != 1:
                    log.warning("%s is not 16 kHz mono; skipped", path)
                    return None
                _frames_cache[key] = w.getnframes()
        except (wave.Error, EOFError) as e:
            log.warning("%s is not a readable WAV (%s); skipped", path, e)
            return None
    return _frames_cache[key]


def load(directory: Path, sealer: Sealer | None) -> Recording:
    """A recording's info and segments; MeetingDataError if it has no usable info.json,
    SealError if a segment is sealed and does not open."""
    directory = Path(directory)
    try:
        info = json.loads((directory / "info.json").read_text())
    except FileNotFoundError:
        raise MeetingDataError(f"{directory} has no info.json; not a recording") from None
    except (OSError, ValueError) as e:
        raise MeetingDataError(f"{directory}/info.json cannot be read: {e}") from None
    if not isinstance(info, dict):
        raise MeetingDataError(f"{directory}/info.json is not a JSON object")
    segments = []
    for path in sorted(directory.glob("seg-*.wav")):
        frames = _frames(path, sealer)
        if frames is not None:
            segments.append((path, frames))
    return Recording(directory.name, directory, info, segments, sealer)


def ids(data_dir: Path) -> list[str]:
    """The recording ids, oldest first (they are start times)."""
    root = Path(data_dir) / "recordings"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def recordings(data_dir: Path, sealer: Sealer | None, skip=frozenset()) -> list[Recording]:
    """Every recording with an info.json but those in `skip`, oldest first; one whose
    segments do not open (a wrong key, a changed file) has `problem` set and no segments."""
    out = []
    for rec_id in ids(data_dir):
        if rec_id in skip:
            continue
        directory = Path(data_dir) / "recordings" / rec_id
        try:
            out.append(load(directory, sealer))
        except MeetingDataError as e:
            log.warning("%s", e)
        except SealError as e:
            log.error("%s", e)
            info = json.loads((directory / "info.json").read_text())
            out.append(Recording(rec_id, directory, info, [], sealer, problem=str(e)))
    return out


def read_audio(rec: Recording, start_s: float, end_s: float):
    """Meeting audio from `start_s` to `end_s` as float32, read from the segments it spans."""
    import numpy as np

    lo, hi = round(start_s * RATE_HZ), round(end_s * RATE_HZ)
    parts, offset = [], 0
    for path, frames in rec.segments:
        a, b = max(lo, offset), min(hi, offset + frames)
        if a < b:
            samples = _mono(read_file(path, rec.sealer), path)
            parts.append(samples[a - offset:b - offset])
        offset += frames
        if offset >= hi:
            break
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _mono(data: bytes, path: Path):
    """A 16-bit mono WAV's samples as float32 (what the recorder writes)."""
    import numpy as np
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise MeetingDataError(f"{path}: not 16-bit mono")
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise MeetingDataError(f"{path}: not a PCM WAV file ({e})") from None
    return np.frombuffer(raw, "<i2").astype(np.float32) / np.float32(2**15)
