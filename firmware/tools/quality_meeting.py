"""Meeting-notes quality: `glasses bench --quality`'s meeting figures, on the models given.

A scripted meeting is spoken by several espeak-ng voices, cut into 30 s segments the way
the recorder writes them, and run through the firmware's own transcriber service (the
real Transcriber, journal and notes code, on the inference worker) into `notes/<id>.md`.
Then:

- speakers: speaker-label accuracy (each utterance's label against who really spoke it,
  with the best one-to-one matching of labels to voices, weighted by duration), purity
  (the same, but a label may map to the voice it mostly holds), and speakers found;
- facts: the fraction of the script's decisions found in the notes' Decisions section,
  of its action items found in Action items with the right owner, and of all of them
  found anywhere in Summary, Decisions or Action items;
- speed: transcription time per minute of audio, and the time to summarize;
- asr: word error rate of the whole transcript against the script.

Synthetic voices are clean and regular: these are upper bounds for a real meeting.
"""

import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RATE_HZ = 16000
SEGMENT_S = 30.0

# Two clearly different voices (the speaker model tells them apart: docs/meetings.md).
TWO_VOICES = ("en-us", "en-us+f3")
# The meeting the sim tests play: a decision and two action items said in it, about 30 s.
# Utterances of 4-5 s: at 2-3 s one espeak voice's utterances sound less alike to the
# speaker model than the threshold asks (0.79-0.83), and a short meeting splits a voice
# in two (docs/meetings.md, "Speaker labels").
TWO_VOICE_MEETING = (
    (0, "Good morning everyone. Let us look at the launch plan for the new app today."),
    (1, "Morning. The testing is not finished yet, so this friday is much too early for the launch."),
    (0, "Then we decided to move the launch to friday next week, after the testing is done."),
    (1, "That sounds good to me. Maria will write the budget plan by monday."),
    (0, "And I will book the big room on the first floor for the launch party."),
    (1, "Thank you all for coming. See you again at the same time next week."),
)
TWO_VOICE_FACTS = (
    ("decision", None, ("launch", "friday")),
    ("action", "maria", ("budget",)),
    ("action", 0, ("book", "room")),
)

QUALITY_VOICES = ("en-us", "en-us+f3", "en-us+m7")
QUALITY_MEETING = (
    (0, "Okay, let us start. We have three things today: the website, the office and the budget."),
    (1, "The website is late again. The designer needs two more weeks for the pictures."),
    (2, "Can we put the website online without the pictures?"),
    (1, "I don't think that is a good idea. People will judge us by the pictures."),
    (0, "Alright. We agreed to wait two weeks for the new website."),
    (2, "Then John will call the designer tomorrow morning."),
    (0, "Next, the office. The landlord wants an answer by the end of the month."),
    (1, "The new office is bigger, but it is far from the train station."),
    (2, "Most of the team comes by train, so that matters."),
    (0, "So we decided to stay in the current office until next year."),
    (1, "I will write to the landlord this afternoon."),
    (0, "Last, the budget. Sales were good this quarter."),
    (2, "We could hire a second support person for the summer."),
    (1, "Yes, we decided to hire a support person in june."),
    (2, "Anna will post the job advert on friday."),
    (0, "Good. Thank you everyone, see you next week."),
)
# What the notes must hold: (section, owner or None, words that must all be in one line).
QUALITY_FACTS = (
    ("decision", None, ("wait", "website")),
    ("decision", None, ("stay", "office")),
    ("decision", None, ("hire", "support")),
    ("action", "john", ("call", "designer")),
    ("action", 1, ("write", "landlord")),          # said by voice 1: "I will write..."
    ("action", "anna", ("post", "advert")),
)


def meeting_audio(script, voices, gap_s: float = 0.8, wpm: int = 165
                  ) -> tuple[np.ndarray, list[tuple[float, float, int, str]]]:
    """The meeting as 16 kHz mono float32, and (start s, end s, voice, text) per utterance."""
    from glasses_firmware.drivers.resample import resample

    from ..voice.cues import synthesize_voice
    parts = [np.zeros(int(0.5 * RATE_HZ), np.float32)]
    truth, at = [], 0.5
    for voice, text in script:
        audio, rate = synthesize_voice(text, voices[voice], wpm)
        x = resample(audio[:, 0] if audio.ndim == 2 else audio, rate, RATE_HZ).astype(np.float32)
        x *= 0.5 / max(1e-6, float(np.abs(x).max()))
        truth.append((at, at + len(x) / RATE_HZ, voice, text))
        parts += [x, np.zeros(int(gap_s * RATE_HZ), np.float32)]
        at += len(x) / RATE_HZ + gap_s
    return np.concatenate(parts), truth


def write_meeting_wav(path: Path, script=TWO_VOICE_MEETING, voices=TWO_VOICES, pad_to_s: float = 0.0,
                      gap_s: float = 0.8) -> list[tuple[float, float, int, str]]:
    """A meeting WAV for `sim mic` (padded with silence to `pad_to_s`); returns its truth."""
    from glasses_firmware.drivers.atomic import write_atomic
    from glasses_firmware.drivers.wavio import wav_bytes
    audio, truth = meeting_audio(script, voices, gap_s)
    if len(audio) < pad_to_s * RATE_HZ:
        audio = np.concatenate([audio, np.zeros(int(pad_to_s * RATE_HZ) - len(audio), np.float32)])
    write_atomic(path, wav_bytes(audio, RATE_HZ))
    return truth


def write_recording(data_dir: Path, rec_id: str, audio: np.ndarray, started: float,
                    sealer=None) -> Path:
    """`recordings/<id>/` as the recorder leaves it after `record stop`: segments sealed by
    `sealer` (drivers/sealed.py), or in the clear as before sealing if it is None."""
    from glasses_firmware.drivers.atomic import write_atomic
    from glasses_firmware.drivers.wavio import wav_bytes
    write = sealer.write if sealer is not None else write_atomic
    d = Path(data_dir) / "recordings" / rec_id
    d.mkdir(parents=True, exist_ok=True)
    step = int(SEGMENT_S * RATE_HZ)
    n = 0
    for n, i in enumerate(range(0, len(audio), step), 1):
        write(d / f"seg-{n:05d}.wav", wav_bytes(audio[i:i + step], RATE_HZ))
    info = {"started": started, "rate_hz": RATE_HZ, "segment_s": SEGMENT_S,
            "ended": started + len(audio) / RATE_HZ, "segments": n}
    write_atomic(d / "info.json", json.dumps(info).encode())
    return d


def label_accuracy(utterances: list[dict], labels: list[str], truth) -> dict:
    """Accuracy (best one-to-one label-voice matching) and purity, weighted by duration."""
    pairs = []
    for u, label in zip(utterances, labels):
        overlap = [(min(u["end"], e) - max(u["start"], s), v) for s, e, v, _ in truth]
        best, voice = max(overlap)
        if best > 0:
            pairs.append((label, voice, u["end"] - u["start"]))
    total = sum(w for _, _, w in pairs) or 1.0
    names = sorted({label for label, _, _ in pairs})
    voices = sorted({v for _, _, v, _ in truth})
    weight = {(a, v): sum(w for label, vv, w in pairs if label == a and vv == v)
              for a in names for v in voices}
    best = 0.0
    for perm in itertools.permutations(voices, min(len(voices), len(names))):
        best = max(best, sum(weight[(a, v)] for a, v in zip(names, perm)))
    purity = sum(max(weight[(a, v)] for v in voices) for a in names) if names else 0.0
    return {"accuracy": round(best / total, 3), "purity": round(purity / total, 3),
            "speakers_found": len(set(names) - {"Speaker ?"}), "speakers_true": len(voices),
            "utterances": len(pairs)}


def facts_found(notes_text: str, facts, truth_labels: dict[int, str]) -> dict:
    """Which scripted decisions and action items the notes hold, by section; `heard`: the
    share the ASR got into the transcript at all (what the summarizer could find)."""
    sections, cur = {}, None
    for line in notes_text.splitlines():
        if line.startswith("## "):
            cur = line[3:].strip().lower()
        elif cur:
            sections.setdefault(cur, []).append(line.lower())
    where = {"decision": sections.get("decisions", []), "action": sections.get("action items", [])}
    transcript = sections.get("transcript", [])
    anywhere = where["decision"] + where["action"] + sections.get("summary", [])
    rows, in_place, anywhere_n, heard_n = [], 0, 0, 0
    for kind, owner, need in facts:
        if isinstance(owner, int):
            owner = truth_labels.get(owner, "?").lower()
        ok = any(all(w in line for w in need) and (owner is None or owner in line)
                 for line in where[kind])
        seen = any(all(w in line for w in need) for line in anywhere)
        heard = any(all(w in line for w in need) for line in transcript)
        in_place += ok
        anywhere_n += seen
        heard_n += heard
        rows.append({"kind": kind, "owner": owner, "words": list(need), "in_section": ok,
                     "anywhere": seen, "heard": heard})
    n = len(facts) or 1
    dec = [r for r in rows if r["kind"] == "decision"]
    act = [r for r in rows if r["kind"] == "action"]
    return {"decisions": round(sum(r["in_section"] for r in dec) / max(1, len(dec)), 3),
            "actions_with_owner": round(sum(r["in_section"] for r in act) / max(1, len(act)), 3),
            "anywhere": round(anywhere_n / n, 3), "heard": round(heard_n / n, 3), "rows": rows}


async def run_notes(models_dir: Path, threads: int, script, voices, facts, progress,
                    keep_dir: Path | None = None) -> dict:
    """One scripted meeting through the real transcriber service into notes."""
    from glasses_firmware.drivers.sealed import Sealer

    from ..worker import InferenceClient

    audio, truth = meeting_audio(script, voices)
    models = InferenceClient(models_dir, threads=threads, preload=("llm", "asr"))
    await models.start()
    with tempfile.TemporaryDirectory(prefix="glasses-meeting-q-") as tmp:
        data = Path(keep_dir or tmp)
        (data / "notes").mkdir(parents=True, exist_ok=True)
        sealer = Sealer.ephemeral()       # as the firmware does, under a key of this run's
        rec_dir = write_recording(data, "20260101-090000", audio, time.time(), sealer)
        timing = await _transcribe(models, data, rec_dir.name, sealer)
        text, utterances = _read_meeting(data, rec_dir, sealer)
        result = _meeting_result(text, utterances, audio, truth, voices, facts, timing)
        progress(_progress_line(result))
        return result


async def _transcribe(models, data: Path, rec_id: str, sealer) -> tuple[float, float]:
    """The transcriber service on `models` until the notes of `rec_id` exist; then both stop.

    Returns (transcription s, summary s); TimeoutError after 30 min without notes."""
    from glasses_firmware.drivers.clock import Clock

    from ..blocking import Blocking
    from ..events import EventBus
    from ..meeting.transcriber import Transcriber, TranscriberSettings
    from ..power import modes as m
    from ..voice import loop as v

    events = EventBus()
    seen: list[tuple[float, str]] = []
    events.subscribe(lambda text: seen.append((time.perf_counter(), text)))
    modes = m.ModeMachine(base_for=lambda: m.STANDBY)
    turns = v.VoiceLoop()
    t0 = time.perf_counter()
    svc = Transcriber(models, modes, turns, Clock(), events, Blocking(), data,
                      recording=lambda: None, settings=TranscriberSettings(poll_s=0.5),
                      sealer=sealer)
    svc.start()
    try:
        await _wait_for_notes(data, rec_id, t0, timeout_s=1800)
    finally:
        await svc.close()
        await models.stop()
    done = time.perf_counter()
    summarizing = next((t for t, e in seen if e.endswith("summarizing")), done)
    return summarizing - t0, done - summarizing


async def _wait_for_notes(data: Path, rec_id: str, t0: float, timeout_s: float) -> None:
    """Poll until `notes/<rec_id>.md` exists; TimeoutError `timeout_s` after `t0`."""
    from ..meeting import notes
    while not notes.exists(data, rec_id):
        await asyncio.sleep(0.2)
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError("meeting notes took more than 30 min")


def _read_meeting(data: Path, rec_dir: Path, sealer) -> tuple[str, list[dict]]:
    """The notes' text and the journal's utterances of the recording in `rec_dir`."""
    from ..meeting import journal as j
    from ..meeting import notes
    text = notes.read_text(notes.path(data, rec_dir.name), sealer)
    return text, j.progress(j.Journal(rec_dir / j.JOURNAL, sealer)).utterances


def _meeting_result(text: str, utterances: list[dict], audio: np.ndarray, truth, voices, facts,
                    timing: tuple[float, float]) -> dict:
    """The figures of one meeting, from its notes, its utterances and the script's truth."""
    from ..meeting import notes
    from .measures import wer
    transcribe_s, summarize_s = timing
    labels = [line.speaker for line in notes.labelled(utterances)]
    minutes = len(audio) / RATE_HZ / 60
    said = " ".join(t for *_, t in truth)
    heard = " ".join(u["text"] for u in utterances)
    return {"audio_s": round(len(audio) / RATE_HZ, 1), "voices": list(voices),
            "speakers": label_accuracy(utterances, labels, truth),
            "facts": facts_found(text, facts, _truth_labels(utterances, labels, truth)),
            "threshold_sweep": _threshold_sweep(utterances, truth),
            "transcribe_s_per_audio_min": round(transcribe_s / minutes, 1),
            "summarize_s": round(summarize_s, 1),
            "wer": round(wer(said, heard), 3),
            "method": notes.meta(text).get("method"), "notes": text}


def _truth_labels(utterances: list[dict], labels: list[str], truth) -> dict[int, str]:
    """Who each voice is in the notes: the label most of its speech got."""
    by_voice = {}
    for u, label in zip(utterances, labels):
        voice = max(truth, key=lambda t: min(u["end"], t[1]) - max(u["start"], t[0]))[2]
        by_voice.setdefault(voice, []).append(label)
    return {voice: max(set(ls), key=ls.count) for voice, ls in by_voice.items()}


def _threshold_sweep(utterances: list[dict], truth) -> dict:
    """The same embeddings grouped at other thresholds: data for tuning speakers.py."""
    from ..meeting.speakers import THRESHOLD
    from ..meeting.speakers import label as group_voices
    voiced = [u for u in utterances if u.get("embedding")]
    sweep = {}
    for th in (0.75, 0.8, 0.85, THRESHOLD):
        r = label_accuracy(voiced, group_voices([u["embedding"] for u in voiced], th), truth)
        sweep[str(th)] = {"accuracy": r["accuracy"], "speakers": r["speakers_found"]}
    return sweep


def _progress_line(result: dict) -> str:
    """One meeting's headline figures, for the progress output."""
    s, f = result["speakers"], result["facts"]
    return (f"meeting {result['audio_s']} s, {len(result['voices'])} voices: labels "
            f"{s['accuracy']:.0%} right ({s['speakers_found']} speakers found), "
            f"decisions {f['decisions']:.0%}, actions with owner "
            f"{f['actions_with_owner']:.0%}, transcription "
            f"{result['transcribe_s_per_audio_min']} s per audio minute, summary "
            f"{result['summarize_s']} s")


async def run(models_dir: Path, threads: int) -> dict:
    """The meeting figures of `glasses bench --quality` (about 2-3 minutes on 2 cores)."""
    def progress(text):
        print(f"  {text}", file=sys.stderr, flush=True)

    quality = await run_notes(models_dir, threads, QUALITY_MEETING, QUALITY_VOICES,
                              QUALITY_FACTS, progress)
    short = await run_notes(models_dir, threads, TWO_VOICE_MEETING, TWO_VOICES, TWO_VOICE_FACTS,
                            progress)
    return {"models_dir": str(models_dir), "three_voices": quality, "two_voices": short}


def summary(result: dict) -> str:
    """The report as a few lines of text."""
    lines = [f"models {result['models_dir']}"]
    for name in ("three_voices", "two_voices"):
        r = result[name]
        s, f = r["speakers"], r["facts"]
        lines.append(f"meeting {name.replace('_', ' ')} ({r['audio_s']:.0f} s): speaker labels "
                     f"{s['accuracy']:.0%} (purity {s['purity']:.0%}, {s['speakers_found']} of "
                     f"{s['speakers_true']} speakers); decisions {f['decisions']:.0%}, actions "
                     f"with owner {f['actions_with_owner']:.0%}, facts anywhere {f['anywhere']:.0%} "
                     f"(in the transcript at all: {f['heard']:.0%}); "
                     f"WER {r['wer']:.1%}; transcription {r['transcribe_s_per_audio_min']} s per "
                     f"audio minute, summary {r['summarize_s']} s; items by {r['method']}")
        lines.append("    speaker threshold sweep: " + ", ".join(
            f"{k}: {v['accuracy']:.0%} ({v['speakers']} speakers)"
            for k, v in r["threshold_sweep"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    from glasses_firmware.models.manifest import default_models_dir
    out = asyncio.run(run(Path(sys.argv[1]) if len(sys.argv) > 1 else default_models_dir(), 2))
    print(summary(out))
    for name in ("three_voices", "two_voices"):
        print(out[name]["notes"])
