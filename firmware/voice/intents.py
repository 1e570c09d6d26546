"""What people say for each device action, and text -> intent matching.

The same table feeds the command grammar (PocketSphinx, so the phrases use only
dictionary words) and the matching of typed or transcribed text. The actions themselves
are the router's (router.py).
"""

import difflib
import re
import unicodedata
from dataclasses import dataclass, field

LANGUAGES = {"en": "English", "zh": "Chinese", "ko": "Korean"}

# action -> the everyday ways of saying it (lower case, dictionary words only). Single
# words only where people really say them alone: a lone "photo" in the grammar would
# swallow "take a photo" and any sentence that ends in a similar sound.
PHRASES: dict[str, tuple[str, ...]] = {
    "photo": ("take a photo", "take a picture", "take photo", "take picture", "snap a photo",
              "snap a picture", "capture a photo"),
    "video_start": ("start video", "start a video", "record a video", "start recording video",
                    "take a video"),
    "video_stop": ("stop video", "stop the video", "stop recording video"),
    "record_start": ("start recording", "record the meeting", "start meeting recording",
                     "start a recording"),
    "record_stop": ("stop recording", "stop the recording", "stop meeting recording"),
    "notes_start": ("start the meeting notes", "start meeting notes", "take meeting notes",
                    "take notes of the meeting"),
    "notes_stop": ("stop the meeting notes", "stop meeting notes", "stop taking notes"),
    "decisions": ("what did we decide", "what did we decide in the meeting",
                  "what were the decisions"),
    "translate_zh": ("translate to chinese", "translate into chinese"),
    "translate_ko": ("translate to korean", "translate into korean"),
    "translate_en": ("translate to english", "translate into english"),
    "converse_en_zh": ("translate between english and chinese", "translate english and chinese",
                       "translate between chinese and english", "translate chinese and english"),
    "converse_en_ko": ("translate between english and korean", "translate english and korean",
                       "translate between korean and english", "translate korean and english"),
    "converse_off": ("stop translating", "stop translation", "stop the translation",
                     "translation off", "end translation"),
    "read": ("read this", "read that", "read this sign", "read the sign", "read the text",
             "what does this say", "what does that say", "what does the sign say"),
    "read_translate": ("translate this", "translate that", "translate this sign",
                       "translate the sign", "translate the text"),
    "ask_view": ("what is this price", "what's the price", "how much is this",
                 "how much does this cost", "what does this cost", "what is on the menu",
                 "what's on the menu"),
    "scan": ("scan this", "scan this code", "scan the code", "what is this code",
             "what's this code", "read the code", "what is this product", "look this up"),
    "pay": ("pay this", "pay with this code", "pay the bill", "scan to pay", "pay here"),
    "pay_cancel": ("cancel the payment", "don't pay", "do not pay", "cancel payment"),
    "pay_confirm": ("confirm", "confirm the payment", "yes pay", "pay now", "confirm payment"),
    "privacy_pause": ("don't record me", "do not record me", "stop recording me",
                      "please don't record me", "pause the camera"),
    "privacy_resume": ("you can record again", "resume the camera", "camera on again"),
    "volume_up": ("volume up", "louder", "turn it up", "turn the volume up", "turn up the volume"),
    "volume_down": ("volume down", "quieter", "turn it down", "turn the volume down",
                    "turn down the volume"),
    "battery": ("what's the battery", "what is the battery", "battery level",
                "how much battery", "how much battery is left", "what's the battery level",
                "how much battery do i have"),
    "time": ("what time is it", "what's the time", "tell me the time"),
    "cancel": ("stop", "cancel", "never mind"),
    # The phone (phone/calls.py, phone/media.py). During a call these are heard without
    # the wake word (phone/call_voice.py), so the call's words are short and distinct.
    "call_answer": ("answer", "answer the call", "answer it", "pick up", "accept the call"),
    "call_reject": ("reject", "reject the call", "decline", "decline the call"),
    "call_hangup": ("hang up", "end the call", "end call", "hang up the call"),
    "music_play": ("play music", "play the music", "resume the music", "resume music"),
    "music_pause": ("pause the music", "pause music", "stop the music", "stop music"),
    "music_next": ("next song", "next track", "skip this song", "skip the song", "play the next song"),
    "music_now": ("what song is this", "what's playing", "what is playing", "what song is playing",
                  "what is this song", "who sings this"),
}

PHRASE_TO_ACTION = {p: a for a, ps in PHRASES.items() for p in ps}
ALL_PHRASES = sorted(PHRASE_TO_ACTION)


@dataclass(frozen=True)
class Intent:
    action: str | None      # a router action, or None for a question to the LLM
    text: str
    language: str
    args: dict = field(default_factory=dict)    # what the words carried ("pay 25 yuan")


# Commands that carry a value, matched on the text as heard (before normalize() drops the
# decimal point): "pay 25 yuan", "pay 12.50 dollars", "pay ¥25", as Whisper writes them.
SYMBOLS = {"¥": "yuan", "￥": "yuan", "₹": "rupees", "€": "euros", "$": "dollars",
           "r$": "reais", "£": "pounds", "₩": "won", "฿": "baht"}
_PAY = re.compile(r"^(?:please )?pay (?P<symbol>r\$|[¥￥₹€$£₩฿])?(?P<amount>\d[\d,]*(?:\.\d{1,2})?)"
                  r"(?: (?P<currency>[a-z]+))?(?: please)?$")


# Words that carry no command: politeness, the wake word said along, hesitations. A
# transcript that is a phrase plus some of these is that phrase.
FILLERS = frozenset("""please now for me can could would will you hey okay ok jarvis nabu just
go ahead and the a an uh um er so right quickly glasses thanks thank""".split())
MAX_COMMAND_WORDS = 8        # longer utterances are questions, whatever they contain
# How close the content words of a transcript must be to a phrase's (difflib ratio over
# characters), and by how much the best action must beat the next: catches ASR slips
# ("take a foto", "wats the batery") but not a sentence that only shares words with one.
FUZZY_MIN_RATIO = 0.8
FUZZY_MARGIN = 0.06


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = re.sub(r"\b(hey|okay|ok) (jarvis|nabu)\b[,.!]?", " ", text)   # a wake word said along
    text = re.sub(r"\b(please|could you|can you|would you)\b", " ", text)
    return " ".join(re.sub(r"[^\w' ]", " ", text).split())


def content(text: str) -> str:
    """The words that matter for matching a command: normalized, fillers dropped."""
    return " ".join(w for w in normalize(text).split() if w not in FILLERS)


_CONTENT = {content(p): a for a, ps in PHRASES.items() for p in ps}


def language_of(text: str) -> str:
    """en, zh or ko, by script: Hangul is Korean, Han without Hangul is Chinese."""
    if any("\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" for ch in text):
        return "ko"
    if any("\u4e00" <= ch <= "\u9fff" for ch in text):
        return "zh"
    return "en"


def action_of(text: str) -> str | None:
    """The device action an utterance asks for, or None (a question, or not sure enough).

    Exact phrase first; then the phrase whose content words match, exactly or within an ASR
    slip. Conservative on purpose: a question that mentions a photo must reach the LLM,
    not take one. English only (the command phrases are English).
    """
    clean = normalize(text)
    if clean in PHRASE_TO_ACTION:
        return PHRASE_TO_ACTION[clean]
    if not clean or len(clean.split()) > MAX_COMMAND_WORDS or language_of(text) != "en":
        return None
    said = content(text)
    if said in _CONTENT:
        return _CONTENT[said]
    best: dict[str, float] = {}
    for phrase, action in _CONTENT.items():
        best[action] = max(best.get(action, 0.0), difflib.SequenceMatcher(None, said, phrase).ratio())
    ranked = sorted(best.items(), key=lambda kv: kv[1], reverse=True)
    (action, ratio), runner_up = ranked[0], ranked[1][1]
    # Near two actions at once ("stark the recording": start or stop?) is no command.
    return action if ratio >= FUZZY_MIN_RATIO and ratio - runner_up >= FUZZY_MARGIN else None


def match(text: str, language: str | None = None) -> Intent:
    """A device action if the utterance asks for one, else a question for the LLM.

    `language`: what the speech recognizer identified (en, zh, ko, ...); the script of the
    text decides when it is not given or not one the assistant answers in.
    """
    lang = language if language in LANGUAGES else language_of(text)
    said = unicodedata.normalize("NFKC", text).lower().strip().rstrip(".!?")
    said = " ".join(said.replace(",", " ,").replace(" ,", ",").split())
    paying = _PAY.match(said)
    if paying is not None:
        currency = paying["currency"] or SYMBOLS.get(paying["symbol"] or "")
        args = {"amount": paying["amount"].replace(",", "")}
        if currency:
            args["currency"] = currency
        return Intent("pay", text.strip(), lang, args)
    action = action_of(text)
    if action == "ask_view":             # the question itself is what the answer needs
        return Intent(action, text.strip(), lang, {"question": text.strip()})
    return Intent(action, text.strip(), lang)
