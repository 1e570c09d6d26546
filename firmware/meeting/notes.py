"""Meeting notes: `notes/<id>.md`, made from a finished transcript, and read back.

Making them (`make`): the speakers are labelled over the whole meeting (speakers.py),
the transcript summarized (summary.py), and the Markdown written atomically: a title with
the date and duration, Summary, Decisions, Action items (with owners), Speakers, and the
transcript with [mm:ss] times and speaker labels. A comment on the first line carries the
figures `notes list` shows, so listing never parses prose.

Reading them (console `notes`, "what did we decide?"): `rows`, `show`, `search`,
`latest_decisions` work from the files alone and the device key: notes are sealed
(drivers/sealed.py); notes from before sealing are read as they are.
"""

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from glasses_firmware.drivers.sealed import Sealer, SealError, read_file

from . import journal as j
from .speakers import SpeakerLabels
from .summary import Item, Line, Summary, summarize

UNKNOWN = "Speaker ?"          # an utterance too short, or no speaker model, to tell who
META = re.compile(r"^<!-- glasses-notes (\{.*\}) -->$")
UNREADABLE = "unreadable (`notes show ID` says why)"


def path(data_dir: Path, rec_id: str) -> Path:
    return Path(data_dir) / "notes" / f"{rec_id}.md"


def exists(data_dir: Path, rec_id: str) -> bool:
    return path(data_dir, rec_id).is_file()


def read_text(note: Path, sealer: Sealer | None) -> str:
    """A notes file's text; SealError naming it if it is sealed and does not open."""
    return read_file(note, sealer).decode(errors="replace")


def clock_text(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on."""
    s = int(max(0.0, seconds))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def stamp(seconds: float) -> str:
    """[mm:ss] (or [h:mm:ss]) for a place in the meeting."""
    s = int(max(0.0, seconds))
    if s >= 3600:
        return f"[{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}]"
    return f"[{s // 60:02d}:{s % 60:02d}]"


def started_text(rec: j.Recording) -> str:
    if rec.started is None:
        return rec.id
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.started))


# -- making notes --------------------------------------------------------------------------

def labelled(utterances: list[dict]) -> list[Line]:
    """Transcript lines with final speaker labels (voices grouped over the whole meeting)."""
    labels = SpeakerLabels()
    voiced = [i for i, u in enumerate(utterances) if u.get("embedding")]
    for i in voiced:
        u = utterances[i]
        labels.add(u["embedding"], weight=max(0.1, u["end"] - u["start"]))
    names = dict(zip(voiced, labels.finish()))
    return [Line(u["start"], u["end"], names.get(i, UNKNOWN), u["text"])
            for i, u in enumerate(utterances)]


async def make(models, background, blocking, data_dir: Path, rec: j.Recording,
               prog: j.Progress, sealer: Sealer) -> str:
    """Label, summarize and write `notes/<id>.md`; returns a one-line account of them.

    The LLM may fail in a way worth retrying (a crashed worker; Preempted): that
    GlassesError propagates and nothing is written, so the next attempt starts over.
    """
    lines = labelled(prog.utterances)
    no_llm = None if models is not None and models.state == "ready" else "no language model running"
    result = await summarize(models, background, lines, no_llm)
    text = render(rec, lines, result)
    await blocking.run(sealer.write, path(data_dir, rec.id), text.encode())
    speakers = len({line.speaker for line in lines} - {UNKNOWN})
    return (f"{count(speakers, 'speaker')}, {count(len(result.decisions), 'decision')}, "
            f"{count(len(result.actions), 'action item')} ({result.method})")


def count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def render(rec: j.Recording, lines: list[Line], result: Summary) -> str:
    speakers: dict[str, list[Line]] = {}
    for line in lines:
        speakers.setdefault(line.speaker, []).append(line)
    named = sorted(s for s in speakers if s != UNKNOWN)
    meta = {"id": rec.id, "started": rec.started, "duration_s": round(rec.duration_s, 1),
            "speakers": len(named), "decisions": len(result.decisions),
            "actions": len(result.actions), "method": result.method,
            "power_cut": not rec.ended}
    out = [f"<!-- glasses-notes {json.dumps(meta, ensure_ascii=False)} -->",
           f"# Meeting {started_text(rec)} ({clock_text(rec.duration_s)})", "",
           f"Recording `recordings/{rec.id}/`, {count(len(named), 'speaker')}, "
           f"{count(len(lines), 'utterance')}. Decisions and action items: {result.method}."]
    if not rec.ended:
        out.append("The recording was cut short (power lost); it ends with its last saved segment.")
    out += ["", "## Summary", "", result.summary or "(none)", "", "## Decisions", ""]
    out += [_item(d) for d in result.decisions] or ["- (none noted)"]
    out += ["", "## Action items", ""]
    out += [_item(a, owner=True) for a in result.actions] or ["- (none noted)"]
    out += ["", "## Speakers", ""]
    for name in named + ([UNKNOWN] if UNKNOWN in speakers else []):
        said = speakers[name]
        seconds = sum(line.end_s - line.start_s for line in said)
        what = " (too short to tell, or no speaker model)" if name == UNKNOWN else ""
        out.append(f"- {name}: {count(len(said), 'utterance')}, {clock_text(seconds)} of speech{what}")
    if not speakers:
        out.append("- (nobody spoke)")
    out += ["", "## Transcript", ""]
    out += [f"- {stamp(line.start_s)} {line.speaker}: {line.text}" for line in lines] or ["(no speech)"]
    return "\n".join(out) + "\n"


def _item(item: Item, owner: bool = False) -> str:
    at = f"{stamp(item.at_s)} " if item.at_s is not None else ""
    if owner:
        return f"- {at}**{item.owner or 'unassigned'}**: {item.text}"
    who = f" ({item.speaker})" if item.speaker else ""
    return f"- {at}{item.text}{who}"


# -- reading notes back --------------------------------------------------------------------

@dataclass
class Row:
    id: str
    date: str
    duration: str
    speakers: str
    status: str
    started: float | None = None


def meta(text: str) -> dict:
    m = META.match(text.split("\n", 1)[0])
    try:
        return json.loads(m.group(1)) if m else {}
    except ValueError:
        return {}


def status(data_dir: Path, rec: j.Recording, live_id: str | None) -> str:
    """recording, transcribing M:SS of M:SS, summarizing, done, or unreadable."""
    if rec.problem is not None:
        return UNREADABLE
    if exists(data_dir, rec.id):
        return "done"
    if rec.id == live_id and not rec.ended:
        return "recording"
    try:
        prog = j.progress(rec.journal)
    except SealError:
        return UNREADABLE
    if prog.complete:
        return "summarizing"
    return f"transcribing {clock_text(prog.done_s)} of {clock_text(rec.duration_s)}"


def rows(data_dir: Path, live_id: str | None, sealer: Sealer | None) -> list[Row]:
    """One row per recording, oldest first (blocking: reads files)."""
    out = []
    for rec in j.recordings(data_dir, sealer):
        st = status(data_dir, rec, live_id)
        speakers = "-"
        if st == "done":
            try:
                speakers = str(meta(read_text(path(data_dir, rec.id), sealer)).get("speakers", "?"))
            except SealError:
                st = UNREADABLE
        out.append(Row(rec.id, started_text(rec), clock_text(rec.duration_s), speakers, st,
                       rec.started))
    return out


def find(data_dir: Path, rec_id: str, sealer: Sealer | None) -> j.Recording | None:
    """The recording `rec_id` names ("latest" for the newest); None if there is none."""
    recs = j.recordings(data_dir, sealer)
    if rec_id == "latest":
        return recs[-1] if recs else None
    return next((r for r in recs if r.id == rec_id), None)


def show(data_dir: Path, rec: j.Recording, live_id: str | None,
         sealer: Sealer | None) -> list[str]:
    """The notes' lines; for unfinished ones the status and the transcript so far.

    SealError (naming the file, saying what to try) if its files do not open."""
    if rec.problem is not None:
        raise SealError(rec.problem)
    if exists(data_dir, rec.id):
        text = read_text(path(data_dir, rec.id), sealer)
        return [line for line in text.splitlines() if not META.match(line)]
    prog = j.progress(rec.journal)
    lines = [f"# Meeting {started_text(rec)} ({clock_text(rec.duration_s)})",
             f"status: {status(data_dir, rec, live_id)}; the notes follow when it is done", "",
             "## Transcript so far (speakers are labelled at the end)", ""]
    return lines + ([f"- {stamp(u['start'])} {u['text']}" for u in prog.utterances]
                    or ["(nothing transcribed yet)"])


def search(data_dir: Path, text: str, sealer: Sealer | None,
           limit: int = 40) -> tuple[list[str], int]:
    """(matching lines as "ID: line", how many matched in all), case-insensitive; a notes
    file that does not open is one line saying so, not skipped in silence."""
    needle = text.casefold()
    hits, unreadable = [], []
    for note in sorted((Path(data_dir) / "notes").glob("*.md")):
        try:
            lines = read_text(note, sealer).splitlines()
        except SealError:
            unreadable.append(f"{note.stem}: (not searched: it does not open; "
                              f"`notes show {note.stem}` says why)")
            continue
        for line in lines:
            if needle in line.casefold() and not META.match(line):
                hits.append(f"{note.stem}: {line.lstrip('-# ').strip()}")
    return hits[:limit] + unreadable, len(hits) + len(unreadable)


def latest_decisions(data_dir: Path, sealer: Sealer | None) -> tuple[str, list[str]] | None:
    """(when the latest finished meeting was, its decisions) or None if no notes exist;
    SealError if its notes do not open."""
    notes = sorted((Path(data_dir) / "notes").glob("*.md"))
    if not notes:
        return None
    text = read_text(notes[-1], sealer)
    decisions, inside = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## Decisions"
        elif inside and line.startswith("- ") and line.strip() != "- (none noted)":
            item = re.sub(r"^- (\[[\d:]+\] )?", "", line).strip()
            decisions.append(re.sub(r" \(Speaker [\d?]+\)$", "", item))
    when = meta(text).get("started")
    return (time.strftime("%H:%M", time.localtime(when)) if when else notes[-1].stem), decisions
