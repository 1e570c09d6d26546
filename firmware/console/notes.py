"""Console commands for meeting notes: `notes list`, `notes show ID`, `notes search TEXT`.

Everything is read from the data directory (meeting/notes.py), opened with the device's
key (the files are sealed), so the commands show the same thing before and after a
restart; progress arrives as `EVT notes ...` lines. There is no `notes export`: a clear
copy in the data dir would undo the sealing (`glasses export` writes elsewhere).
"""

from .commands import CommandError, as_json, command, take_flag

USAGE = "notes list [--json] | notes show ID|latest | notes search TEXT"


def _live_id(fw) -> str | None:
    rec = fw.recorder
    return rec.dir.name if rec.running and rec.dir is not None else None


@command("notes", "notes list [--json]|show ID|search TEXT",
         "meeting notes: list recordings and their status, show one, search them all",
         raw=True)
async def cmd_notes(session, args):
    from ..meeting import notes
    fw = session.fw
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
        rows = await fw.blocking.run(notes.rows, fw.data_dir, _live_id(fw), fw.sealer)
        worker = fw.transcriber
        for r in rows:
            if r.status == "recording" and r.started is not None:
                # On disk are only the whole segments so far; the meeting is longer.
                r.duration = notes.clock_text(fw.clock.wall() - r.started)
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
        rec = await fw.blocking.run(notes.find, fw.data_dir, rest[0], fw.sealer)
        if rec is None:
            raise CommandError(f"no recording '{rest[0][:40]}'; `notes list` shows the ids")
        return await fw.blocking.run(notes.show, fw.data_dir, rec, _live_id(fw), fw.sealer)
    if sub == "search":
        text = " ".join(rest).strip()
        if not text:
            raise CommandError("usage: notes search TEXT, e.g. notes search budget")
        hits, total = await fw.blocking.run(notes.search, fw.data_dir, text, fw.sealer)
        if not hits:
            return [f"no notes mention '{text[:60]}'"]
        more = [f"... and {total - len(hits)} more; search for something narrower"] \
            if total > len(hits) else []
        return hits + more
    raise CommandError(f"unknown notes command '{sub[:20]}'; usage: {USAGE}")
