"""`glasses export`: clear copies of sealed recordings, transcripts and notes, elsewhere.

For each recording id, `OUT/<id>/` gets `seg-NNNNN.wav` (each segment opened), `info.json`,
`transcript.jsonl` (plain JSON lines; a torn last line is left out, as the firmware does)
and `notes.md`. Every file is written atomically and never over an existing one (temp file,
fsync, hard link, fsync the directory). A file that does not open (a wrong key, a changed
or truncated file) is an error naming it and saying what to try; the rest still exports.
"""

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from glasses_firmware.drivers.atomic import fsync_dir, is_full, storage_full
from glasses_firmware.drivers.errors import ConfigError, GlassesError
from glasses_firmware.drivers.sealed import Sealer, SealError, read_file

from . import journal as j
from . import notes

PROGRESS_EVERY_MB = 20.0      # a progress line at least this often within a long recording


@dataclass
class Report:
    """What an export did: files and bytes written, and every error (one line each)."""

    files: int = 0
    bytes: int = 0
    recordings: int = 0
    errors: list[str] = field(default_factory=list)


def export(data_dir: Path, out: Path, sealer: Sealer, ids=(), say=print) -> Report:
    """Export `ids` (all recordings and notes if none) from `data_dir` to `out`.

    ConfigError if `out` is inside the data dir (clear copies there would undo the sealing)
    or an id is not there. Per-file failures are in the report, not raised.
    """
    data_dir, out = Path(data_dir).absolute(), Path(out).absolute()
    if not (data_dir / "recordings").is_dir() and not (data_dir / "notes").is_dir():
        raise ConfigError(f"{data_dir} is not a glasses data dir (no recordings/ or notes/)")
    if out.is_relative_to(data_dir):
        raise ConfigError(f"--out {out} is inside the data dir: clear copies there would undo "
                          "the sealing; export to another disk or folder")
    known = sorted(set(j.ids(data_dir)) | {p.stem for p in (data_dir / "notes").glob("*.md")})
    wanted = list(ids) or known
    missing = [i for i in wanted if i not in known]
    if missing:
        raise ConfigError(f"no recording {', '.join(missing)} in {data_dir}; "
                          f"there are: {', '.join(known) or 'none'}")
    report = Report()
    say(f"exporting {len(wanted)} recording{'s' * (len(wanted) != 1)} from {data_dir} to {out} "
        f"(key {sealer.source}, id {sealer.key_id_hex})")
    for n, rec_id in enumerate(wanted, 1):
        before = (report.files, report.bytes, len(report.errors))
        _one(data_dir, out / rec_id, rec_id, sealer, report, say)
        files, size, errors = (report.files - before[0], report.bytes - before[1],
                               len(report.errors) - before[2])
        report.recordings += 1
        say(f"[{n}/{len(wanted)}] {rec_id}: {files} files, {size / 1e6:.1f} MB"
            + (f", {errors} errors" if errors else ""))
    say(f"exported {report.files} files ({report.bytes / 1e6:.1f} MB) of {report.recordings} "
        f"recordings to {out}; {len(report.errors)} errors")
    return report


def _one(data_dir: Path, dest: Path, rec_id: str, sealer: Sealer, report: Report, say) -> None:
    rec_dir = data_dir / "recordings" / rec_id
    jobs: list[tuple[Path, object]] = []          # (source, how to turn it into bytes)
    if (rec_dir / "info.json").is_file():
        jobs.append((rec_dir / "info.json", lambda p: p.read_bytes()))
    jobs += [(p, lambda p: read_file(p, sealer)) for p in sorted(rec_dir.glob("seg-*.wav"))]
    if (rec_dir / j.JOURNAL).is_file():
        jobs.append((rec_dir / j.JOURNAL, lambda p: _transcript(p, sealer)))
    note = notes.path(data_dir, rec_id)
    if note.is_file():
        jobs.append((note, lambda p: read_file(p, sealer)))
    since_mb = 0.0
    for source, opener in jobs:
        target = dest / ("notes.md" if source == note else source.name)
        try:
            data = opener(source)
            _write_new(target, data)
        except FileExistsError:
            report.errors.append(f"{target}: already exists; not overwritten (export to an "
                                 "empty folder, or remove it first)")
            continue
        except (GlassesError, OSError) as e:      # SealError names the file and what to do
            report.errors.append(str(e) if isinstance(e, SealError) else f"{source}: {e}")
            continue
        report.files += 1
        report.bytes += len(data)
        since_mb += len(data) / 1e6
        if since_mb >= PROGRESS_EVERY_MB:
            say(f"  {rec_id}: {target.name} ({report.bytes / 1e6:.0f} MB so far)")
            since_mb = 0.0


def _transcript(path: Path, sealer: Sealer) -> bytes:
    """The journal as plain JSON lines: every record opened, a torn last line left out."""
    records = j.Journal(path, sealer).read()
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def _write_new(path: Path, data: bytes) -> None:
    """Write `path` atomically; FileExistsError (nothing changed) if it exists already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise FileExistsError(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)             # unlike rename, never replaces a file made meanwhile
        fsync_dir(path.parent)
    except OSError as e:
        if is_full(e):
            raise storage_full(path, "exported file") from e
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def key_for(data_dir: Path, key_file: str | None, board=None) -> Sealer:
    """The Sealer an export uses: `--key FILE`, else the board's key (OTP or its file),
    else the key beside the data dir; never makes one. ConfigError saying what to try."""
    from glasses_firmware.drivers.devicekey import default_key_path, device_sealer, parse_key
    if key_file:
        try:
            return Sealer(parse_key(Path(key_file).read_bytes(), key_file), key_file)
        except OSError as e:
            raise ConfigError(f"--key {key_file}: cannot read it ({e.strerror or e})") from None
    if board is not None:
        try:
            return device_sealer(board.storage, data_dir, create=False)
        except FileNotFoundError as e:
            raise ConfigError(f"{board.path}: its key file {e.filename} is not there; give the "
                              "key with --key FILE") from None
    path = default_key_path(data_dir)
    if not path.is_file():
        raise ConfigError(f"no key for {data_dir}: none at {path}; give --key FILE (on the "
                          "glasses: /etc/glasses/device.key, or the output of "
                          "rpi-otp-private-key), or --board NAME")
    return Sealer(parse_key(path.read_bytes(), str(path)), str(path))
