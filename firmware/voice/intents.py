"""What people say for each device action, and text -> intent matching.

The same table feeds the command grammar (PocketSphinx, so the phrases use only
dictionary words) and the matching of typed or transcribed text. The actions themselves
are the router's (router.py).
"""

import re
import unicodedata
from dataclasses import dataclass

LANGUAGES = {"en": "English", "zh": "Chinese", "ko": "Korean"}

# action -> the everyday ways of saying it (lower case, dictionary words only). Single
# words only where people really say them alone: a lone "photo" in the grammar would
# swallow "take a photo" and any sentence that ends in a similar sound.
PHRASES: dict[str, tuple[str, ...]] = {
    "photo": ("take a photo", "take a picture", "take photo", "take picture", "snap a photo",
              "capture a photo"),
    "video_start": ("start video", "start a video", "record a video", "start recording video",
                    "take a video"),
    "video_stop": ("stop video", "stop the video", "stop recording video"),
    "record_start": ("start recording", "record the meeting", "start meeting recording",
                     "start a recording"),
    "record_stop": ("stop recording", "stop the recording", "stop meeting recording"),
    "translate_zh": ("translate to chinese", "translate into chinese"),
    "translate_ko": ("translate to korean", "translate into korean"),
    "translate_en": ("translate to english", "translate into english"),
    "volume_up": ("volume up", "louder", "turn it up", "turn the volume up"),
    "volume_down": ("volume down", "quieter", "turn it down", "turn the volume down"),
    "battery": ("what's the battery", "what is the battery", "battery level",
                "how much battery", "how much battery is left", "what's the battery level"),
    "time": ("what time is it", "what's the time", "tell me the time"),
    "cancel": ("stop", "cancel", "never mind"),
}

PHRASE_TO_ACTION = {p: a for a, ps in PHRASES.items() for p in ps}
ALL_PHRASES = sorted(PHRASE_TO_ACTION)


@dataclass(frozen=True)
class Intent:
    action: str | None      # a router action, or None for a question to the LLM
    text: str
    language: str


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = re.sub(r"\b(hey|okay|ok) (jarvis|nabu)\b[,.!]?", " ", text)   # a wake word said along
    text = re.sub(r"\b(please|could you|can you|would you)\b", " ", text)
    return " ".join(re.sub(r"[^\w' ]", " ", text).split())


def language_of(text: str) -> str:
    """en, zh or ko, by script: Hangul is Korean, Han without Hangul is Chinese."""
    if any("\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" for ch in text):
        return "ko"
    if any("\u4e00" <= ch <= "\u9fff" for ch in text):
        return "zh"
    return "en"


def match(text: str) -> Intent:
    """A device action if the whole utterance is one of its phrases, else a question."""
    return Intent(PHRASE_TO_ACTION.get(normalize(text)), text.strip(), language_of(text))
