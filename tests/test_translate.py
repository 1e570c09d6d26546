"""Conversation translation and reading text, on the sim board as a user meets them.

`glasses run --board sim` with the installed real models (Whisper base, Qwen2.5-Coder 0.5B,
PP-OCR from its wheel): English said into the microphones comes back as Chinese captions
and speech, Mandarin (espeak-ng reading pinyin into a WAV, played with `sim mic`) as
English; a rendered sign set with `sim scene` is read aloud, and translated.
"""

import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from glasses_firmware.firmware.voice.reading import order_lines
from glasses_firmware.firmware.voice.translator import clean
from glasses_firmware.models.manifest import default_models_dir
from tests.conftest import RunningFirmware

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
COFFEE = "wo3 xiang3 he1 yi4 bei1 ka1 fei1"      # 我想喝一杯咖啡, as espeak-ng's pinyin voice reads
real_models = pytest.mark.skipif(default_models_dir() is None,
                                 reason="real models not installed: run `glasses models install`")


def has_hanzi(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def sign(path: Path, lines: list[str], size=(1600, 900), font_px=120) -> Path:
    """A green sign with white letters; 120 px in 1600 fills the view as a sign held up close."""
    img = Image.new("RGB", size, (30, 90, 50))
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, font_px)
    step = int(font_px * 1.4)
    y = (size[1] - step * len(lines)) // 2
    for line in lines:
        draw.text(((size[0] - draw.textlength(line, font=font)) / 2, y), line, font=font,
                  fill="white")
        y += step
    img.save(path)
    return path


def pinyin_wav(path: Path, pinyin: str) -> Path:
    # Debian's espeak-ng `cmn` voice has no hanzi dictionary and reads Latin letters as
    # English, so `sim say --lang zh` cannot speak Mandarin; its pinyin voice can.
    subprocess.run(["espeak-ng", "-v", "cmn-latn-pinyin", "-s", "150", "-w", str(path), pinyin],
                   check=True, capture_output=True, timeout=30)
    return path


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("translate")
    fw = RunningFirmware(tmp, extra=("--models", str(default_models_dir())))
    fw.wait_workers_ready()
    assert fw.cmd("events on").ok
    fw.tmp = tmp
    yield fw
    fw.stop()


def played(fw, back_to: str, timeout_s=30.0) -> None:
    """Wait until the voice loop is back in `back_to`: it leaves `speak` only once the reply
    has played, and the microphones drop what they hear while the glasses speak."""
    deadline = time.monotonic() + timeout_s
    while fw.cmd("mode --json").json()["voice"] != back_to:
        assert time.monotonic() < deadline, f"the voice loop did not return to {back_to}"
        time.sleep(0.1)
    time.sleep(0.4)      # and the echo tail the segmenter still ignores


# -- reading -------------------------------------------------------------------------------

@real_models
def test_a_sign_in_view_is_read_aloud(fw):
    fw.cmd(f"sim scene {sign(fw.tmp / 'exit.png', ['EXIT ONLY'])}")
    reply = fw.cmd("read", timeout_s=60)
    assert reply.ok and reply.lines[0] == "text (en): EXIT ONLY", reply.lines
    events = fw.events_until(lambda e: e.startswith("speak "))
    assert "speak EXIT ONLY" in events
    # Typed the way it would be said: two lines of a sign, top to bottom.
    fw.cmd(f"sim scene {sign(fw.tmp / 'platform.png', ['Platform 3', 'to Airport'])}")
    reply = fw.cmd("ask what does this say", timeout_s=60)
    assert reply.lines == ["Platform 3 to Airport"]
    fw.events_until(lambda e: e == "speak Platform 3 to Airport")
    # Small print (a menu at arm's length): too small in the lores frame, read from a still.
    fw.cmd(f"sim scene {sign(fw.tmp / 'menu.png', ['Coffee 3.50', 'Green tea 2.80'], font_px=30)}")
    reply = fw.cmd("read", timeout_s=60)
    print("\n".join(reply.lines))
    assert reply.lines[:2] == ["text (en): Coffee 3.50", "text (en): Green tea 2.80"], reply.lines
    assert "read from lores 640x360, still 2304x1296" in reply.lines[-1]
    assert not list((fw.data_dir / "photos").glob("*.jpg"))        # looked at, never saved


@real_models
def test_a_sign_is_translated_and_no_text_is_said_so(fw):
    fw.cmd(f"sim scene {sign(fw.tmp / 'platform.png', ['Platform 3', 'to Airport'])}")
    reply = fw.cmd("read --translate zh", timeout_s=60)
    translated = [line for line in reply.lines if line.startswith("translation en->zh: ")]
    assert reply.ok and translated and has_hanzi(translated[0]), reply.lines
    fw.events_until(lambda e: e.startswith("speak ") and has_hanzi(e))
    Image.new("RGB", (1600, 900), (128, 128, 128)).save(fw.tmp / "blank.png")
    fw.cmd(f"sim scene {fw.tmp / 'blank.png'}")
    reply = fw.cmd("read", timeout_s=60)
    assert reply.lines[0] == "no text found (lores 640x360, still 2304x1296)"
    fw.events_until(lambda e: e == "speak I can't see any text.")


@real_models
def test_a_question_about_what_is_in_view_is_answered_from_its_text_only(fw):
    """No vision model: the price comes from the text read, and with no text the answer
    says what the glasses cannot do rather than guess."""
    fw.cmd(f"sim scene {sign(fw.tmp / 'price.png', ['Espresso', '3.50'])}")
    reply = fw.cmd("ask how much is this", timeout_s=90)
    assert reply.ok and "3.50" in reply.lines[0], reply.lines
    Image.new("RGB", (1600, 900), (128, 128, 128)).save(fw.tmp / "blank.png")
    fw.cmd(f"sim scene {fw.tmp / 'blank.png'}")
    reply = fw.cmd("ask what is this price", timeout_s=90)
    assert reply.lines == ["I can't see any text to answer from, and I can only read text, "
                           "not pictures or objects."]


@real_models
def test_reading_is_refused_without_the_privacy_light_or_when_hot(fw):
    fw.cmd("sim led broken")
    reply = fw.cmd("read", timeout_s=60)
    assert not reply.ok and "read refused" in reply.error and "LED" in reply.error
    fw.events_until(lambda e: e.startswith("speak Camera blocked"))
    fw.cmd("sim led ok")
    fw.cmd("sim temp 80")
    reply = fw.cmd("read", timeout_s=60)
    assert not reply.ok and "camera is off in HOT mode" in reply.error
    fw.events_until(lambda e: e == "speak Sorry, that did not work.")
    played(fw, "wake")
    fw.cmd("sim temp 30")
    assert fw.cmd("status --json").json()["mode"] in ("STANDBY", "INTERACTIVE")


# -- conversation translation ----------------------------------------------------------------

@real_models
def test_conversation_english_and_chinese_both_ways(fw):
    reply = fw.cmd("translate on en zh")
    assert reply.lines == ["translating en <-> zh; `translate off` to end"]
    assert "assistant translating English and Chinese" in reply.events + fw.cmd("version").events
    assert fw.cmd("mode --json").json()["voice"] == "converse"      # no wake word from here on
    assert fw.cmd("sim say Where is the train station?").ok
    events = fw.events_until(lambda e: e.startswith("translate en->zh "))
    assert "caption en: Where is the train station?" in events
    caption = next(e for e in events if e.startswith("caption en->zh: "))
    assert has_hanzi(caption) and "车站" in caption, caption
    assert any(e.startswith("speak ") and has_hanzi(e) for e in events)
    played(fw, "converse")
    assert fw.cmd(f"sim mic {pinyin_wav(fw.tmp / 'coffee.wav', COFFEE)}").ok
    events = fw.events_until(lambda e: e.startswith("translate zh->en "))
    caption = next(e for e in events if e.startswith("caption zh->en: ")).lower()
    # Whisper base sometimes ends its translation early ("I want to have a cup of").
    assert any(word in caption for word in ("coffee", "drink", "cup")), caption
    assert any(e.startswith("speak ") and not has_hanzi(e) for e in events)
    # What was said, in its own script: a second pass, after the translation.
    fw.events_until(lambda e: e.startswith("caption zh: ") and has_hanzi(e), seen=events)
    played(fw, "converse")
    status = fw.cmd("translate status --json").json()
    assert status["on"] and status["turns"] == 2 and status["median_latency_s"] > 0
    assert (status["last"]["source"], status["last"]["target"]) == ("zh", "en")
    print("\n".join(fw.cmd("translate status").lines))
    assert fw.cmd("translate off").lines == ["translation off"]
    assert fw.cmd("mode --json").json()["voice"] == "wake"


@real_models
def test_too_hot_for_the_llm_english_waits_but_chinese_still_reaches_english(fw):
    assert fw.cmd("translate on en zh").ok
    assert fw.cmd("sim temp 80").ok and fw.cmd("status --json").json()["mode"] == "HOT"
    assert fw.cmd("mode --json").json()["voice"] == "converse"
    assert fw.cmd("sim say Where is the train station?").ok
    events = fw.events_until(lambda e: e.startswith("speak I can't translate English"))
    said = next(e for e in events if e.startswith("speak I can't translate"))
    assert "too hot" in said and "Chinese into English still works" in said
    played(fw, "converse")
    assert fw.cmd(f"sim mic {pinyin_wav(fw.tmp / 'coffee.wav', COFFEE)}").ok
    events = fw.events_until(lambda e: e.startswith("translate zh->en "))
    assert any(e.startswith("caption zh->en: ") for e in events)
    played(fw, "converse")
    assert fw.cmd("sim temp 30").ok
    assert fw.cmd("translate off").ok


@real_models
def test_translation_by_voice_and_stopped_by_voice(fw):
    assert fw.cmd("sim button action click").ok
    events = fw.events_until(lambda e: e.startswith("assistant listening (button)"))
    assert fw.cmd("sim say translate between english and chinese").ok
    events = fw.events_until(lambda e: e.startswith("assistant translating English and Chinese"),
                          seen=events)
    assert "assistant command converse_en_zh" in events
    played(fw, "converse")
    assert fw.cmd("sim say stop translating").ok
    events = fw.events_until(lambda e: e == "speak Translation off.")
    assert "translate off (asked to stop)" in events
    assert not any(e.startswith("caption en->zh") for e in events)
    assert fw.cmd("translate status").lines == ["translation off"]


def test_console_refuses_what_it_cannot_do(firmware):
    """Without models: the usage and the languages are checked before anything runs."""
    assert "usage: translate on LANG LANG" in firmware.cmd("translate").error
    assert "choose two of en, zh, ko" in firmware.cmd("translate on en fr").error
    assert "two different languages" in firmware.cmd("translate on zh zh").error
    assert "run with --models" in firmware.cmd("translate on en zh").error
    assert firmware.cmd("translate status").lines == ["translation off"]
    assert "usage: read [--translate en|zh|ko]" in firmware.cmd("read --translate fr").error
    assert "run with --models" in firmware.cmd("read").error


# -- the parts that are plain functions --------------------------------------------------------

def test_lines_are_read_top_to_bottom_left_to_right_and_unsure_ones_dropped():
    def box(x, y, w=100, h=30):
        return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    found = [{"text": "Airport", "score": 0.98, "box": box(200, 100)},
             {"text": "to", "score": 0.97, "box": box(80, 104, 60, 26)},
             {"text": "Platform 3", "score": 0.99, "box": box(50, 20)},
             {"text": "~~", "score": 0.41, "box": box(300, 300)}]
    lines, height = order_lines(found)
    assert lines == ["Platform 3", "to Airport"] and 26 <= height <= 30


def test_the_small_models_commentary_is_cut_from_a_translation():
    assert clean('Translation: "火车站在哪里？"\nThis means where is the station.', "zh") == "火车站在哪里？"
    assert clean("火车站在哪里？ (Huǒchē zhàn zài nǎlǐ?)", "zh") == "火车站在哪里？"
    assert clean("The bathroom is in the living room.", "zh") == ""      # an answer, not Chinese
    assert clean("I want a cup of coffee.", "en") == "I want a cup of coffee."
    assert clean("我想喝咖啡", "en") == ""
