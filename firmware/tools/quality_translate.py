"""Translation quality and latency on the models given (part of `glasses bench --quality`).

A fixed set of everyday sentences, ten each way, through the firmware's own translation
path (voice/translator.py: its prompt, its clean-up, Whisper's language identification):

- en->zh from text: the LLM alone; a sentence scores by the key Chinese terms it must hold;
- en->zh from speech: espeak-ng English -> Whisper (language among en, zh) -> the LLM;
- zh->en from speech: espeak-ng Mandarin read from pinyin (Debian's `cmn` voice has no
  hanzi dictionary) -> Whisper's translate task, and, to compare, Whisper's transcript ->
  the LLM; a sentence scores by the key English words it must hold;
- zh->en from text: the hanzi through the LLM, as if the transcript were perfect.

A turn's latency here is end of audio to the first audio of the translation: recognition,
translation and synthesizing the first (only) sentence. The firmware adds the endpoint's
0.5 s of silence before it knows the speech ended. Synthetic speech is clean and regular:
these numbers are an upper bound for real voices.

    python -m glasses_firmware.firmware.tools.quality_translate [MODELS_DIR] [--json]
"""

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

# (English, groups of Chinese terms: each group must appear, by any of its spellings)
EN_ZH = (
    ("Where is the train station?", (("火车站", "车站"),)),
    ("How much does this cost?", (("多少钱", "多少", "价格", "价钱"),)),
    ("I would like a cup of coffee.", (("咖啡",),)),
    ("Thank you very much.", (("谢谢", "感谢"),)),
    ("Where is the bathroom?", (("洗手间", "厕所", "卫生间", "浴室"),)),
    ("I am allergic to peanuts.", (("过敏",), ("花生",))),
    ("Please call a doctor.", (("医生",),)),
    ("What time does the museum open?", (("博物馆",), ("开",))),
    ("Can I pay by credit card?", (("信用卡",),)),
    ("The hotel is near the airport.", (("酒店", "宾馆", "旅馆", "饭店"), ("机场",))),
)
# (pinyin for espeak-ng, the hanzi, groups of English words)
ZH_EN = (
    ("huo3 che1 zhan4 zai4 na3 li3", "火车站在哪里", (("station",),)),
    ("zhe4 ge4 duo1 shao3 qian2", "这个多少钱", (("how much", "cost", "price"),)),
    ("wo3 xiang3 he1 yi4 bei1 ka1 fei1", "我想喝一杯咖啡", (("coffee",),)),
    ("fei1 chang2 gan3 xie4", "非常感谢", (("thank",),)),
    ("xi3 shou3 jian1 zai4 na3 li3", "洗手间在哪里", (("bathroom", "restroom", "toilet", "washroom"),)),
    ("wo3 dui4 hua1 sheng1 guo4 min3", "我对花生过敏", (("allerg",), ("peanut",))),
    ("qing3 jiao4 yi1 sheng1", "请叫医生", (("doctor",),)),
    ("jin1 tian1 tian1 qi4 hen3 hao3", "今天天气很好", (("weather", "nice day", "good day", "fine day"),)),
    ("wo3 bu2 hui4 shuo1 zhong1 wen2", "我不会说中文", (("chinese",),)),
    ("qu4 ji1 chang3 zen3 me zou3", "去机场怎么走", (("airport",),)),
)
PINYIN_VOICE = "cmn-latn-pinyin"
ENGLISH_VOICE = "en-us"
WORDS_PER_MIN = 150


def score(text: str, groups) -> float:
    """The share of term groups `text` holds (case-insensitive; any spelling of a group)."""
    low = text.lower()
    return sum(any(term in low for term in group) for group in groups) / len(groups)


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def _summarize(rows: list[dict]) -> dict:
    return {"n": len(rows), "score": round(sum(r["score"] for r in rows) / len(rows), 3),
            "all_terms": sum(r["score"] == 1.0 for r in rows),
            "median_turn_s": _median(r.get("turn_s") for r in rows), "rows": rows}


class _Bench:
    """The model worker and the voice worker's TTS, and the firmware's own translator."""

    def __init__(self, models, voice):
        from ..events import EventBus
        from ..power.modes import ModeMachine
        from ..voice.translator import Translator
        self.models, self.voice = models, voice
        # A translator with the pair set, to ask it exactly what a turn asks: nothing
        # here is spoken (the first sentence is synthesized below and timed, not played).
        self.translator = Translator(models, None, ModeMachine(base_for=lambda: "STANDBY"),
                                     EventBus())
        self.translator.pair = ("en", "zh")

    async def synth_s(self, text: str, language: str) -> float:
        from ..voice.cues import synthesize
        from ..voice.speech import SPEAKING_RATE_WPM
        t0 = time.perf_counter()
        if language == "en":
            await self.voice.tts(text)
        else:
            await asyncio.to_thread(synthesize, text, language, SPEAKING_RATE_WPM)
        return time.perf_counter() - t0

    async def text_to_zh(self, progress) -> dict:
        rows = []
        for english, groups in EN_ZH:
            t0 = time.perf_counter()
            got = await self._translate(english, "en", "zh")
            rows.append({"said": english, "got": got, "score": score(got, groups),
                         "llm_s": round(time.perf_counter() - t0, 3)})
        out = _summarize(rows)
        out["median_llm_s"] = _median(r["llm_s"] for r in rows)
        progress(f"en->zh text (LLM): {out['score']:.0%} of key terms, {out['all_terms']}/10 "
                 f"sentences whole, median {out['median_llm_s']} s")
        return out

    async def text_to_en(self, progress) -> dict:
        # The hanzi as a perfect transcript would give them: the LLM's part of the
        # transcript route, apart from how well synthetic Mandarin is heard.
        rows = []
        for _, hanzi, groups in ZH_EN:
            got = await self._translate(hanzi, "zh", "en")
            rows.append({"said": hanzi, "got": got, "score": score(got, groups)})
        out = _summarize(rows)
        progress(f"zh->en text (LLM): {out['score']:.0%} of key words, {out['all_terms']}/10 whole")
        return out

    async def _translate(self, text, source, target) -> str:
        from ..voice.translator import TranslateError
        try:
            return await self.translator.translate_text(text, source, target)
        except TranslateError as e:
            return f"({e})"

    async def speech_to_zh(self, progress) -> dict:
        from .measures import speech
        rows = []
        for i, (english, groups) in enumerate(EN_ZH):
            audio = speech(english, ENGLISH_VOICE, WORDS_PER_MIN, None, seed=i)
            t0 = time.perf_counter()
            heard = await self.translator.hear(audio)
            got = await self._translate(heard.text, "en", "zh")
            to_text = time.perf_counter() - t0
            synth = await self.synth_s(got, "zh")
            rows.append({"said": english, "heard": heard.text, "language": heard.language,
                         "language_prob": round(heard.probability, 3), "got": got,
                         "score": score(got, groups), "asr_s": round(heard.asr_s, 3),
                         "turn_s": round(to_text + synth, 3)})
        out = _summarize(rows)
        out["language_right"] = sum(r["language"] == "en" for r in rows)
        progress(f"en->zh speech (Whisper + LLM): {out['score']:.0%} of key terms, language "
                 f"right {out['language_right']}/10, median turn {out['median_turn_s']} s")
        return out

    async def speech_to_en(self, progress, via_whisper: bool) -> dict:
        from .measures import speech
        self.translator.via_whisper = via_whisper
        rows = []
        for i, (pinyin, hanzi, groups) in enumerate(ZH_EN):
            audio = speech(pinyin, PINYIN_VOICE, WORDS_PER_MIN, None, seed=i)
            t0 = time.perf_counter()
            heard = await self.translator.hear(audio)
            got = heard.text if via_whisper else await self._translate(heard.text, "zh", "en")
            to_text = time.perf_counter() - t0
            synth = await self.synth_s(got, "en")
            rows.append({"said": hanzi, "heard": heard.text, "language": heard.language,
                         "language_prob": round(heard.probability, 3), "got": got,
                         "score": score(got, groups), "asr_s": round(heard.asr_s, 3),
                         "turn_s": round(to_text + synth, 3)})
        self.translator.via_whisper = True
        out = _summarize(rows)
        out["language_right"] = sum(r["language"] == "zh" for r in rows)
        route = "Whisper translate" if via_whisper else "Whisper transcript + LLM"
        progress(f"zh->en speech ({route}): {out['score']:.0%} of key words, {out['all_terms']}/10 "
                 f"whole, language right {out['language_right']}/10, median turn "
                 f"{out['median_turn_s']} s")
        return out


async def run(models_dir, threads: int) -> dict:
    """Run the sentence sets on the models in `models_dir`; the result as a dict (JSON-able)."""
    from ..worker import InferenceClient

    def progress(text):
        print(f"  {text}", file=sys.stderr, flush=True)

    models = InferenceClient(models_dir, threads=threads, preload=("llm", "asr"))
    voice = InferenceClient(models_dir, threads=threads, preload=("tts",))
    await asyncio.gather(models.start(), voice.start())
    bench = _Bench(models, voice)
    try:
        out = {"models_dir": str(models_dir),
               "en_zh_text": await bench.text_to_zh(progress),
               "en_zh_speech": await bench.speech_to_zh(progress),
               "zh_en_whisper": await bench.speech_to_en(progress, via_whisper=True),
               "zh_en_llm": await bench.speech_to_en(progress, via_whisper=False),
               "zh_en_text": await bench.text_to_en(progress)}
    finally:
        await asyncio.gather(models.stop(), voice.stop())
    out["median_turn_s"] = {"en->zh": out["en_zh_speech"]["median_turn_s"],
                            "zh->en": out["zh_en_whisper"]["median_turn_s"]}
    return out


def summary(result: dict) -> str:
    """The report as a few lines of text."""
    lines = [f"models {result['models_dir']}"]
    for key, what in (("en_zh_text", "en->zh text, LLM"),
                      ("en_zh_speech", "en->zh speech, Whisper + LLM"),
                      ("zh_en_whisper", "zh->en speech, Whisper translate"),
                      ("zh_en_llm", "zh->en speech, Whisper transcript + LLM"),
                      ("zh_en_text", "zh->en text (a perfect transcript), LLM")):
        r = result[key]
        turn = f", median turn {r['median_turn_s']} s" if r.get("median_turn_s") else ""
        lang = f", language right {r['language_right']}/{r['n']}" if "language_right" in r else ""
        lines.append(f"{what:<42} key terms {r['score']:.0%}, whole {r['all_terms']}/{r['n']}"
                     f"{lang}{turn}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from glasses_firmware.models.manifest import default_models_dir
    args = [a for a in argv if a != "--json"]
    models_dir = Path(args[0]) if args else default_models_dir()
    if models_dir is None:
        print("no models: run `glasses models install` or give MODELS_DIR", file=sys.stderr)
        return 2
    result = asyncio.run(run(models_dir, os.cpu_count() or 1))
    print(json.dumps(result, ensure_ascii=False) if "--json" in argv else summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
