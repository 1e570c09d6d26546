"""`glasses bench --quality`: how well the glasses hear and answer, on the models given.

Everything goes through the inference workers and the firmware's own recognition path
(voice/recognizer.py: the command grammar, then the ASR and the intent matcher):

- asr: word error rate on a fixed sentence set synthesized with espeak-ng voices at
  several speeds, clean and with white noise at a set SNR;
- commands: device-command phrases said by several voices, recognized as the assistant
  does it (accuracy), and everyday sentences that are not commands (false actions: the
  goal is none);
- llm: exact-fact accuracy of the spoken-answer prompt on a fixed question set in English
  and Chinese (an answer counts when it contains the expected fact);
- meeting: speaker-label accuracy and facts found in the notes of scripted multi-voice
  meetings (tools/quality_meeting.py);
- translation: a fixed sentence set both ways, en->zh and zh->en (tools/quality_translate.py).

Synthetic speech is clean and regular: these numbers are an upper bound for real voices.
"""

import asyncio
import sys
import time
from pathlib import Path

import numpy as np

from .measures import edit_distance, speech, words

SENTENCES = (
    "turn on the lights in the kitchen",
    "remind me to call my sister tomorrow morning",
    "the meeting starts after lunch in the small room",
    "how long does it take to walk to the station",
    "please send the photos to my brother",
    "we need to buy bread milk and eggs",
    "the train to the airport leaves every half hour",
    "can you read the sign on the door",
    "my glasses are on the table next to the window",
    "what is the weather going to be like this weekend",
    "the restaurant closes early on sundays",
    "let us meet at the bridge in ten minutes",
)
# (voice, words per minute, SNR in dB or None for clean)
CONDITIONS = (
    ("en-us", 175, None), ("en-gb", 175, None), ("en-us+f3", 175, None),
    ("en-gb-scotland", 175, None), ("en-029", 175, None),
    ("en-us", 140, None), ("en-us", 210, None),
    ("en-us", 175, 20), ("en-gb", 175, 20), ("en-us", 175, 10),
)
COMMANDS = (
    ("take a photo", "photo"), ("take a picture", "photo"), ("snap a photo", "photo"),
    ("start a video", "video_start"), ("stop the video", "video_stop"),
    ("record the meeting", "record_start"), ("stop the recording", "record_stop"),
    ("translate into chinese", "translate_zh"), ("translate to korean", "translate_ko"),
    ("volume up", "volume_up"), ("turn it down", "volume_down"), ("louder", "volume_up"),
    ("what's the battery", "battery"), ("how much battery is left", "battery"),
    ("what time is it", "time"), ("tell me the time", "time"),
    ("never mind", "cancel"), ("could you take a picture please", "photo"),
    ("hey jarvis what time is it", "time"), ("turn up the volume please", "volume_up"),
    ("translate this sign for me", "read_translate"),   # a command since reading (issue 12)
)
COMMAND_VOICES = ("en-us", "en-gb", "en-us+f3")
NOT_COMMANDS = (
    "why is the sky blue", "how do I take a good photo at night", "who took this picture",
    "what is the capital of france", "tell me a joke about cats", "the bus stop is closed today",
    "stop the car at the next corner", "start the engine and wait", "how long does the battery of a phone last",
    "what time does the museum open", "the sign was hard to read", "record sales this year",
    "I left my camera at home", "take me to the train station", "the video was really funny",
    "turn left after the bridge", "my sister is taking pictures of the birds",
    "what is twelve times twelve", "play some music", "call my mother",
    "is it going to rain", "how far is the moon", "the volume of this box is small",
    "never mind the weather we will go anyway", "let us start the meeting with the budget",
    "what did you say", "good morning", "thank you very much", "how are you today",
    "where did I put my keys",
)
NOT_COMMAND_VOICES = ("en-us", "en-gb")
FACTS = (
    ("en", "What is the capital of France?", ("paris",)),
    ("en", "What is the capital of Japan?", ("tokyo",)),
    ("en", "Who wrote Romeo and Juliet?", ("shakespeare",)),
    ("en", "How many days are in a week?", ("seven", "7")),
    ("en", "What is twelve times twelve?", ("144", "one hundred forty-four", "one hundred and forty-four")),
    ("en", "What is the largest planet in our solar system?", ("jupiter",)),
    ("en", "What color do you get when you mix blue and yellow?", ("green",)),
    ("en", "How many months are in a year?", ("twelve", "12")),
    ("en", "What is the boiling point of water in Celsius?", ("100", "one hundred")),
    ("en", "Which ocean is the largest?", ("pacific",)),
    ("zh", "中国的首都是哪里？", ("北京",)),
    ("zh", "一年有几个月？", ("12", "十二")),
    ("zh", "一个星期有几天？", ("7", "七")),
    ("zh", "日本的首都是哪里？", ("东京",)),
    ("zh", "水在多少摄氏度沸腾？", ("100", "一百")),
    ("zh", "太阳系最大的行星是哪个？", ("木星",)),
    ("zh", "法国的首都是哪里？", ("巴黎",)),
    ("zh", "三加五等于几？", ("8", "八")),
    ("zh", "世界上最大的海洋是哪个？", ("太平洋",)),
    ("zh", "《罗密欧与朱丽叶》的作者是谁？", ("莎士比亚",)),
)


def _text(result) -> str:
    return result["text"] if isinstance(result, dict) else str(result)


async def _asr(models, progress) -> dict:
    rows = []
    for voice, wpm, snr in CONDITIONS:
        errors = total = 0
        latency = []
        for i, sentence in enumerate(SENTENCES):
            audio = speech(sentence, voice, wpm, snr, seed=i)
            t0 = time.perf_counter()
            got = _text(await models.transcribe(audio))
            latency.append(time.perf_counter() - t0)
            errors += edit_distance(words(sentence), words(got))
            total += len(words(sentence))
        rows.append({"voice": voice, "wpm": wpm, "snr_db": snr, "wer": round(errors / total, 3),
                     "median_latency_s": round(float(np.median(latency)), 3)})
        progress(f"asr {voice} {wpm} wpm {'clean' if snr is None else f'{snr} dB'}: "
                 f"WER {errors / total:.1%}")
    clean = [r["wer"] for r in rows if r["snr_db"] is None]
    at20 = [r["wer"] for r in rows if r["snr_db"] == 20]
    return {"conditions": rows, "sentences": len(SENTENCES),
            "wer_clean_mean": round(float(np.mean(clean)), 3),
            "wer_20db_mean": round(float(np.mean(at20)), 3) if at20 else None}


async def _commands(recognizer, progress) -> dict:
    right, wrong = 0, []
    for voice in COMMAND_VOICES:
        for i, (phrase, action) in enumerate(COMMANDS):
            intent = await recognizer.recognize(speech(phrase, voice, 175, None, seed=i))
            if intent.action == action:
                right += 1
            else:
                wrong.append({"said": phrase, "voice": voice, "heard": intent.text,
                              "action": intent.action})
    false = []
    for voice in NOT_COMMAND_VOICES:
        for i, sentence in enumerate(NOT_COMMANDS):
            intent = await recognizer.recognize(speech(sentence, voice, 175, None, seed=i))
            if intent.action is not None:
                false.append({"said": sentence, "voice": voice, "heard": intent.text,
                              "action": intent.action})
    n = len(COMMANDS) * len(COMMAND_VOICES)
    progress(f"commands: {right}/{n} right, {len(false)} false actions on "
             f"{len(NOT_COMMANDS) * len(NOT_COMMAND_VOICES)} other sentences")
    return {"accuracy": round(right / n, 3), "n": n, "misses": wrong,
            "false_actions": len(false), "n_not_commands": len(NOT_COMMANDS) * len(NOT_COMMAND_VOICES),
            "false_action_examples": false}


async def _llm(models, progress) -> dict:
    from ..voice.conversation import MAX_ANSWER_TOKENS, SYSTEM_PROMPT
    from ..voice.intents import LANGUAGES
    by_lang: dict[str, list[int]] = {}
    answers = []
    for lang, question, facts in FACTS:
        stream = models.generate(question, system=SYSTEM_PROMPT.format(language=LANGUAGES[lang]),
                                 max_tokens=MAX_ANSWER_TOKENS)
        answer = "".join([piece async for piece in stream])
        ok = any(f in answer.lower() for f in facts)
        by_lang.setdefault(lang, []).append(ok)
        answers.append({"language": lang, "question": question, "answer": answer, "correct": ok})
    result = {f"accuracy_{lang}": round(sum(v) / len(v), 3) for lang, v in by_lang.items()}
    progress("llm: " + ", ".join(f"{k} {v:.0%}" for k, v in result.items()))
    return {**result, "answers": answers}


PARTS = ("asr", "commands", "llm", "meeting", "translation")


async def run(models_dir: Path, threads: int, parts=PARTS) -> dict:
    from ..voice.recognizer import Recognizer
    from ..worker import InferenceClient

    def progress(text):
        print(f"  {text}", file=sys.stderr, flush=True)

    models = InferenceClient(models_dir, threads=threads, preload=("llm", "asr"))
    voice = InferenceClient(models_dir, threads=1, preload=("grammar",))
    await asyncio.gather(models.start(), voice.start())
    out: dict = {"models_dir": str(models_dir)}
    try:
        if "asr" in parts:
            out["asr"] = await _asr(models, progress)
        if "commands" in parts:
            out["commands"] = await _commands(Recognizer(voice, models), progress)
        if "llm" in parts:
            out["llm"] = await _llm(models, progress)
    finally:
        await asyncio.gather(models.stop(), voice.stop())
    # These start workers of their own, the way the meeting and translation services use them.
    if "meeting" in parts:
        from . import quality_meeting
        out["meeting"] = await quality_meeting.run(models_dir, threads)
    if "translation" in parts:
        from . import quality_translate
        out["translation"] = await quality_translate.run(models_dir, threads)
    return out


def summary(result: dict) -> str:
    """The report as a few lines of text."""
    lines = [f"models {result['models_dir']}"]
    if "asr" in result:
        a = result["asr"]
        lines.append(f"asr  WER clean {a['wer_clean_mean']:.1%} (mean of {sum(r['snr_db'] is None for r in a['conditions'])} "
                     f"voice/speed conditions), at 20 dB SNR {a['wer_20db_mean']:.1%}")
        for r in a["conditions"]:
            snr = "clean" if r["snr_db"] is None else f"{r['snr_db']} dB"
            lines.append(f"     {r['voice']:<15} {r['wpm']} wpm {snr:<6} WER {r['wer']:.1%}")
    if "commands" in result:
        c = result["commands"]
        lines.append(f"commands  {c['accuracy']:.0%} of {c['n']} right; false actions "
                     f"{c['false_actions']} of {c['n_not_commands']} other sentences")
    if "meeting" in result:
        from . import quality_meeting
        lines += quality_meeting.summary(result["meeting"]).splitlines()[1:]
    if "translation" in result:
        from . import quality_translate
        lines += quality_translate.summary(result["translation"]).splitlines()[1:]
    if "llm" in result:
        l = result["llm"]
        lines.append("llm  facts " + ", ".join(f"{k.split('_')[1]} {v:.0%}" for k, v in l.items()
                                               if k.startswith("accuracy_")))
    return "\n".join(lines)
