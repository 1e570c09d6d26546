"""Console commands for meeting notes: `notes list`, `notes show ID`, `notes search TEXT`.

Everything is read from the data directory (meeting/notes.py), opened with the device's
key (the files are sealed), so the commands show the same thing before and after a
restart; progress arrives as `EVT notes ...` lines. There is no `notes export`: a clear
copy in the data dir would undo the sealing (`glasses export` writes elsewhere).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..ports import Blocking, Clock
from .commands import Command, CommandError, as_json, take_flag

if TYPE_CHECKING:
    from glasses_firmware.drivers.sealed import Sealer

    from ..meeting.recorder import Recorder
    from ..meeting.transcriber import Transcriber

USAGE = "notes list [--json] | notes show ID|latest | notes search TEXT"


@dataclass(frozen=True)
class NotesPorts:
    """The notes on disk, the recording running now and the transcriber's progress."""

    data_dir: Path
    sealer: "Sealer"
    recorder: "Recorder"
    transcriber: "Transcriber"
    clock: Clock
    blocking: Blocking


def _live_id(ports: NotesPorts) -> str | None:
    rec = ports.recorder
    return rec.dir.name if rec.running and rec.dir is not None else None


async def cmd_notes(session, ports: NotesPorts, args):
    from ..meeting import notes
    line = args[0].strip() if args else ""
    if not line:
        raise CommandError(f"usage: {USAGE}")
    sub, _, tail = line.partition(" ")
    # Search text is taken as typed (apostrophes are words there); the rest is words.
    rest = [tail.strip()] if sub == "search" and tail.strip() else tail.split()
    if sub == "list":
        rest, js = take_flag(rest, "--json")
        if rest:
            raise CommandError(f"unexpected '{' '.join(rest)}'; usage: {USAGE}")
        rows = await ports.blocking.run(notes.rows, ports.data_dir, _live_id(ports), ports.sealer)
        worker = ports.transcriber
        for r in rows:
            if r.status == "recording" and r.started is not None:
                # On disk are only the whole segments so far; the meeting is longer.
                r.duration = notes.clock_text(ports.clock.wall() - r.started)
            if r.id == worker.current and worker.waiting and \
                    r.status.startswith(("transcribing", "summarizing")):
                r.status += f" (waiting: {worker.waiting})"
        if js:
            return as_json([vars(r) for r in rows])
        if not rows:
            return ["no recordings yet; `record start` (or say \"start the meeting notes\")"]
        return [f"{'id':<16} {'date':<16} {'length':>8} {'speakers':>8}  status"] + \
            [f"{r.id:<16} {r.date:<16} {r.duration:>8} {r.speakers:>8}  {r.status}" for r in rows]
    if sub == "show":
        if len(rest) != 1:
            raise CommandError("usage: notes show ID (an id from `notes list`, or latest)")
        rec = await ports.blocking.run(notes.find, ports.data_dir, rest[0], ports.sealer)
        if rec is None:
            raise CommandError(f"no recording '{rest[0][:40]}'; `notes list` shows the ids")
        return await ports.blocking.run(notes.show, ports.data_dir, rec, _live_id(ports), ports.sealer)
    if sub == "search":
        text = " ".join(rest).strip()
        if not text:
            raise CommandError("usage: notes search TEXT, e.g. notes search budget")
        hits, total = await ports.blocking.run(notes.search, ports.data_dir, text, ports.sealer)
        if not hits:
            return [f"no notes mention '{text[:60]}'"]
        more = [f"... and {total - len(hits)} more; search for something narrower"] \
            if total > len(hits) else []
        return hits + more
    raise CommandError(f"unknown notes command '{sub[:20]}'; usage: {USAGE}")


COMMANDS = (
    Command("notes", "notes list [--json]|show ID|search TEXT",
            "meeting notes: list recordings and their status, show one, search them all",
            cmd_notes, NotesPorts, raw=True),
)
