"""Meeting notes as a user gets them: record on the sim board, pull the plug, read the notes.

The meeting is two espeak-ng voices played into the sim microphones; the transcript,
speaker labels and summary come from the installed real models (Whisper base, the GE2E
speaker encoder, Qwen2.5 0.5B) through the firmware's own worker. The file-format pieces
(journal, utterance split, the LLM's answer parsed) are checked on their own below.
"""

import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from glasses_firmware.drivers.devicekey import sealer_for
from glasses_firmware.firmware.meeting import journal as j
from glasses_firmware.firmware.meeting.notes import read_text
from glasses_firmware.firmware.meeting import summary as s
from glasses_firmware.firmware.meeting.utterances import CHUNK, regions
from glasses_firmware.firmware.tools.quality_meeting import TWO_VOICE_MEETING, TWO_VOICES, write_meeting_wav
from glasses_firmware.models.manifest import default_models_dir
from tests.conftest import RunningFirmware, wait_for


def _real_models_with_voices() -> str | None:
    """Why the real-model meeting test cannot run here, or None."""
    models = default_models_dir()
    if models is None:
        return "real models not installed: run `glasses models install`"
    from glasses_firmware.drivers.errors import GlassesError
    from glasses_firmware.models.manifest import load
    try:
        load(models).for_role("speaker")
    except GlassesError as e:
        return f"no speaker model: {e}"
    return None


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def section(text: str, name: str) -> list[str]:
    body = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in body.splitlines() if line.startswith("- ")]


def start_real(tmp: Path) -> RunningFirmware:
    fw = RunningFirmware(tmp, extra=("--models", str(default_models_dir())))
    assert fw.cmd("events on").ok
    wait_for(lambda: fw.cmd("status --json").json()["worker"]["state"] == "ready", "the model worker", 120)
    return fw


@pytest.mark.skipif(_real_models_with_voices() is not None,
                    reason=str(_real_models_with_voices()))
@pytest.mark.slow
def test_two_voice_meeting_survives_a_kill_and_its_notes_follow_by_themselves(tmp_path):
    """Record a two-voice meeting, kill -9 mid-meeting while it is being transcribed,
    boot again on the same data: the saved segment is intact, transcription resumes with
    no command, and the notes have both speakers, the decision and the action items."""
    wav = tmp_path / "meeting.wav"
    write_meeting_wav(wav, TWO_VOICE_MEETING, TWO_VOICES, gap_s=0.6)
    fw = start_real(tmp_path)
    reply = fw.cmd("record start")
    assert reply.ok, reply.error
    rec_id = re.search(r"recordings/(\S+)", reply.lines[0]).group(1).rstrip(";")
    rec = fw.data_dir / "recordings" / rec_id
    assert fw.cmd(f"sim mic {wav}").ok
    # The first 30 s segment lands, and its transcription begins while recording goes on.
    wait_for(lambda: (rec / "seg-00001.wav").exists(), "the first segment", 45)
    sealer = sealer_for(fw.data_dir)                 # the files are sealed (test_encryption.py)
    wait_for(lambda: any("text" in r for r in j.Journal(rec / j.JOURNAL, sealer).read()),
             "the first transcribed utterance", 40)
    segment = sha(rec / "seg-00001.wav")
    fw.kill()                                    # the battery falls out
    before = [r for r in j.Journal(rec / j.JOURNAL, sealer).read() if "text" in r]
    assert before and not (fw.data_dir / "notes" / f"{rec_id}.md").exists()

    fw = start_real(tmp_path)                    # same data directory
    try:
        notes_path = fw.data_dir / "notes" / f"{rec_id}.md"
        wait_for(notes_path.exists, "the notes after the restart", 120)
        assert sha(rec / "seg-00001.wav") == segment
        assert "ended" not in json.loads((rec / "info.json").read_text())
        log = (fw.data_dir / "logs" / "glasses.log").read_text()
        assert f"notes {rec_id} resumed after a power cut" in log
        utterances = [r for r in j.Journal(rec / j.JOURNAL, sealer).read() if "text" in r]
        starts = [u["start"] for u in utterances]
        assert starts == sorted(set(starts)) and len(utterances) > len(before)   # resumed, not redone
        assert utterances[:len(before)] == before

        text = read_text(notes_path, sealer)
        assert not list(notes_path.parent.glob(".*tmp"))                  # written atomically
        assert re.search(r"^# Meeting \d{4}-\d\d-\d\d \d\d:\d\d \(0:\d\d\)$", text, re.M)
        assert "power lost" in text
        transcript = section(text, "Transcript")
        assert all(re.match(r"- \[\d\d:\d\d\] Speaker [\d?]+: \S", line) for line in transcript)
        speakers = {re.match(r"- \[[\d:]+\] (Speaker [\d?]+):", line).group(1) for line in transcript}
        assert speakers - {"Speaker ?"} == {"Speaker 1", "Speaker 2"}, text
        # "move the launch" is now and then heard as "move the lunch" or "move along": the
        # decision, not every word of it.
        decisions = " ".join(section(text, "Decisions")).lower()
        assert "decided to move" in decisions and "friday next week" in decisions, text
        actions = section(text, "Action items")
        # Who and by when; "the budget plan" is at times heard as "the Merget plan".
        assert any("**Maria**" in a and "monday" in a.lower() for a in actions), text

        listed = fw.cmd("notes list")
        row = next(line for line in listed.lines if line.startswith(rec_id))
        assert row.split()[-1] == "done" and row.split()[-2] == "2"
        shown = fw.cmd(f"notes show {rec_id}")
        assert shown.ok and "## Decisions" in shown.lines
        found = fw.cmd("notes search FRIDAY")
        assert found.ok and any(line.startswith(f"{rec_id}: ") for line in found.lines)
        reply = fw.cmd("ask what did we decide")
        assert reply.ok and "friday" in " ".join(reply.lines).lower()
        assert fw.cmd("sim button action click").ok          # and asked aloud
        seen = fw.events_until(lambda e: e.startswith("assistant listening"), 10)
        assert fw.cmd("sim say what did we decide").ok
        seen = fw.events_until(lambda e: e.startswith("speak In the meeting at"), 40, seen)
        assert "assistant command decisions" in seen

    finally:
        fw.stop()


def test_record_stop_gives_notes_and_says_how_they_were_made(tmp_path, test_models):
    """The ordinary way, on the random-weight test models (mechanics only: their words are
    noise, so the model's answer is unusable and the notes say keyword cues were used)."""
    fw = RunningFirmware(tmp_path, extra=("--models", str(test_models)))
    try:
        assert fw.cmd("events on").ok
        wait_for(lambda: fw.cmd("status --json").json()["worker"]["state"] == "ready",
                 "the model worker", 60)
        rec_id = re.search(r"recordings/(\S+)", fw.cmd("record start").lines[0]).group(1)
        assert fw.cmd("sim say we agreed to paint the meeting room blue").ok
        time.sleep(3.5)
        assert fw.cmd("record stop").ok
        events = fw.events_until(lambda e: e.startswith(f"notes {rec_id} done"), 60)
        assert f"notes {rec_id} summarizing" in events
        assert not any(e.startswith(f"notes {rec_id} resumed") for e in events)
        text = read_text(fw.data_dir / "notes" / f"{rec_id}.md", sealer_for(fw.data_dir))
        for heading in ("## Summary", "## Decisions", "## Action items", "## Speakers",
                        "## Transcript"):
            assert f"\n{heading}\n" in text
        assert "power lost" not in text
        assert "Decisions and action items: keyword cues (the LLM's answer was not usable" in text \
            or "Decisions and action items: the LLM" in text
        transcript = section(text, "Transcript")
        assert all(re.match(r"- \[00:0\d\] Speaker [\d?]+: ", line) for line in transcript)
        row = fw.cmd("notes list --json").json()[0]
        assert row["id"] == rec_id and row["status"] == "done"
        assert fw.cmd("notes show latest").lines[0].startswith("# Meeting ")
        assert fw.cmd("notes search MEETING").lines[0].startswith(f"{rec_id}: Meeting ")
        said = " ".join(fw.cmd("ask what did we decide").lines)
        assert said.startswith(("No decisions were noted in the meeting at", "In the meeting at"))
    finally:
        fw.stop()


def test_notes_commands_and_a_recording_waiting_for_models(firmware):
    """Without models a recording is kept and waits; the commands say so plainly."""
    fw = firmware
    assert fw.cmd("notes list").lines[0].startswith("no recordings yet")
    assert fw.cmd("ask what did we decide").lines == ["There are no meeting notes yet."]
    started = fw.cmd("record start")
    rec_id = re.search(r"recordings/(\S+)", started.lines[0]).group(1)
    assert fw.cmd("notes list").lines[1].split()[-1] == "recording"
    assert fw.cmd("sim say we decided to meet again on monday").ok
    time.sleep(2)
    assert fw.cmd("record stop").ok
    row = fw.cmd("notes list --json").json()[0]
    assert row["id"] == rec_id and row["status"].startswith("transcribing 0:00 of 0:0")
    assert row["status"].endswith("(waiting: no model worker (run with --models))")
    shown = fw.cmd(f"notes show {rec_id}")
    assert shown.ok and any(line.startswith("status: transcribing") for line in shown.lines)
    latest = fw.cmd("notes show latest")
    assert latest.lines == shown.lines
    for bad, says in (("notes show 19990101-000000", "no recording '19990101-000000'"),
                      ("notes", "usage: notes list"), ("notes dance", "unknown notes command"),
                      ("notes search", "usage: notes search TEXT")):
        reply = fw.cmd(bad)
        assert not reply.ok and says in reply.error, (bad, reply.error)
    assert fw.cmd("notes search what's up").lines == ["no notes mention 'what's up'"]


# -- the pieces on their own ----------------------------------------------------------------

def test_journal_skips_a_torn_last_line_and_cuts_it_before_appending(tmp_path):
    path = tmp_path / "transcript.jsonl"
    jr = j.Journal(path, None)                           # plain lines, as before sealing
    jr.append({"start": 0.0, "end": 1.0, "text": "hello"})
    jr.append({"done_s": 1.0})
    with open(path, "ab") as f:
        f.write(b'{"start": 1.5, "end": 2.')              # the power went mid-line
    assert j.progress(j.Journal(path, None)).done_s == 1.0
    j.Journal(path, None).append({"start": 1.5, "end": 2.5, "text": "again"})
    records = j.Journal(path, None).read()
    assert [r.get("text") for r in records] == ["hello", None, "again"]
    assert path.read_bytes().endswith(b"\n") and path.read_bytes().count(b"\n") == 3


def test_speech_still_going_at_the_end_of_a_segment_waits_for_the_next():
    odds = np.zeros(200, np.float32)
    odds[10:50] = 1.0          # an utterance, then silence
    odds[120:200] = 1.0        # speech running into the end of the audio so far
    spans, settled = regions(odds, more_to_come=True)
    assert len(spans) == 1 and spans[0][1] <= settled < 120 * CHUNK
    spans, settled = regions(odds, more_to_come=False)  # the meeting ended: take it all
    assert len(spans) == 2 and settled == 200 * CHUNK


def test_the_llms_answer_is_parsed_leniently_and_checked_against_what_was_said():
    lines = [s.Line(0, 3, "Speaker 1", "Then we decided to move the launch to friday."),
             s.Line(4, 7, "Speaker 2", "Maria will send the budget by monday."),
             s.Line(8, 11, "Speaker 1", "And I will book the room for the party.")]
    cut_off = ('{"decisions": ["Move the launch to Friday", "Buy a new coffee machine"], '
               '"actions": [{"owner": "Speaker 2", "task": "Send the budget by Monday"}, '
               '{"owner": "Tom", "task": "Paint the wa')
    decisions, actions = s.parse_items(cut_off)
    assert decisions == ["Move the launch to Friday", "Buy a new coffee machine"]
    assert actions == [("Speaker 2", "Send the budget by Monday")]
    kept = [i for i in (s.ground(s.Item(d), lines) for d in decisions) if i]
    assert [(i.text, i.at_s) for i in kept] == [("Move the launch to Friday", 0)]   # no coffee
    action = s.ground_action(*actions[0], lines)
    assert (action.owner, action.text) == ("Maria", "Send the budget by Monday")    # said, not guessed
    assert s.parse_items("Sure! Here are the notes.") is None
    cue_decisions, cue_actions = s.cues(lines)
    assert [d.text for d in cue_decisions] == ["We decided to move the launch to friday"]
    assert [(a.owner, a.text) for a in cue_actions] == [
        ("Maria", "Send the budget by monday"), ("Speaker 1", "Book the room for the party")]


def test_the_assistant_goes_first_and_a_hot_mode_pauses_the_notes(tmp_path, test_models):
    """The transcriber as app.py wires it (real worker on the random test models, the real
    mode machine and voice loop): while someone talks to the glasses its request in flight
    is cancelled and nothing new is sent; it finishes the notes once they are done."""
    import asyncio

    from glasses_firmware.drivers.clock import Clock
    from glasses_firmware.drivers.sealed import Sealer
    from glasses_firmware.firmware.blocking import Blocking
    from glasses_firmware.firmware.events import EventBus
    from glasses_firmware.firmware.meeting.notes import exists
    from glasses_firmware.firmware.meeting.transcriber import Transcriber, TranscriberSettings
    from glasses_firmware.firmware.power import modes as m
    from glasses_firmware.firmware.tools.quality_meeting import meeting_audio, write_recording
    from glasses_firmware.firmware.voice.loop import VoiceLoop
    from glasses_firmware.firmware.worker import InferenceClient

    audio, _ = meeting_audio(TWO_VOICE_MEETING[:3], TWO_VOICES)
    rec = write_recording(tmp_path, "20260101-100000", audio, time.time())
    (tmp_path / "notes").mkdir()

    sealer = Sealer.ephemeral()         # the segments above are plain: read as before sealing

    def lines():
        return len(j.Journal(rec / j.JOURNAL, sealer).read())

    async def until(check, timeout_s=60.0):
        deadline = time.monotonic() + timeout_s
        while not check():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    async def main():
        models = InferenceClient(test_models, threads=1)
        await models.start(timeout_s=60)
        modes = m.ModeMachine(base_for=lambda: m.STANDBY)
        turns = VoiceLoop()
        turns.fire("mode_on", "test")
        svc = Transcriber(models, modes, turns, Clock(), EventBus(), Blocking(), tmp_path,
                          recording=lambda: None, settings=TranscriberSettings(poll_s=0.2),
                          sealer=sealer)
        try:
            svc.start()
            await until(lambda: svc.background._stream is not None)   # a request in flight
            turns.fire("tap", "the wearer taps to talk")
            assert svc.background._stream is None or svc.background._stream.cancel_requested
            await until(lambda: svc.waiting == "the assistant is in use")
            held = lines()
            await asyncio.sleep(1.0)
            assert lines() == held and not exists(tmp_path, rec.name)
            modes.fire("hot", "test")
            turns.fire("no_speech", "turn over")
            await until(lambda: svc.waiting == "models are off in HOT mode")
            await asyncio.sleep(0.5)
            assert lines() == held
            modes.fire("cool", "test")
            await until(lambda: exists(tmp_path, rec.name))
        finally:
            await svc.close()
            await models.stop()

    asyncio.run(asyncio.wait_for(main(), 120))
