"""Reading the text the camera sees: "read this", "what does this say", "translate this sign".

A frame comes through the capture service, so the mode's camera flag, the arbiter and the
HAL's privacy interlock decide as they do for a photo (the LED is lit and read back for
the frame); nothing is saved. PP-OCR (the model worker's OCR role) finds the lines; lines
it is not sure of are dropped, the rest read top to bottom, left to right.

The low-resolution stream (640x360) comes first: it is already configured, and a sign
that fills a good part of the view reads exactly in about 0.3 s of OCR. Smaller text
(lines under SMALL_LINE_PX high in it: menus, labels, a sign across the street), or no text
at all, is read again from a full-resolution still decoded at half size (2304x1296, 3.6
times the pixels per letter), for about a second more. Measured on rendered text: lines
under 36 px high in the lores frame lost the spaces between words ("Coffee3.50",
"Greentea2.80" for 12-24 px letters) while the still read every size right; a real lens
blurs more than a rendered image, so the bar is not lower (docs/translation.md).
"""

import io
import logging
import re
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from glasses_firmware.drivers.errors import GlassesError

from ..ports import Blocking, Frames, TextModels
from ..worker.errors import not_ready
from .intents import LANGUAGES, language_of
from .translator import Translator

log = logging.getLogger("glasses.reading")

MIN_SCORE = 0.7           # PP-OCR's confidence under which a line is dropped
SMALL_LINE_PX = 36        # lores lines lower than this are read again from a still
STILL_MAX_SIDE = 2304     # the still is decoded at this size (JPEG draft: fast)
OCR_TIMEOUT_S = 20.0
NOTHING = "I can't see any text."


class ReadError(GlassesError, RuntimeError):
    """Nothing can be read now; the message says why and what to do."""


def order_lines(found: list[dict], min_score: float = MIN_SCORE) -> tuple[list[str], float]:
    """(rows of text top to bottom, each left to right; median line height in px).

    Boxes whose vertical middles are within half a line of each other are one row (a
    sign's words can come back as separate boxes).
    """
    boxes = []
    for item in found:
        text = str(item.get("text", "")).strip()
        if not text or float(item.get("score", 0.0)) < min_score:
            continue
        xs = [float(p[0]) for p in item["box"]]
        ys = [float(p[1]) for p in item["box"]]
        boxes.append((min(ys), max(ys), min(xs), text))
    boxes.sort(key=lambda b: (b[0] + b[1]) / 2)
    rows: list[dict] = []
    for top, bottom, left, text in boxes:
        middle, height = (top + bottom) / 2, bottom - top
        if rows and abs(middle - rows[-1]["middle"]) < 0.5 * min(height, rows[-1]["height"]):
            rows[-1]["items"].append((left, text))
        else:
            rows.append({"middle": middle, "height": height, "items": [(left, text)]})
    heights = sorted(b[1] - b[0] for b in boxes)
    median = heights[len(heights) // 2] if heights else 0.0
    return [" ".join(t for _, t in sorted(r["items"])) for r in rows], median


def text_region(found: list[dict], shape, margin: float = 0.5) -> tuple[float, ...] | None:
    """(left, top, right, bottom) as fractions of the frame around every line found, with
    `margin` line heights around it; None if nothing was found."""
    boxes = [item["box"] for item in found if str(item.get("text", "")).strip()]
    if not boxes:
        return None
    xs = [float(p[0]) for b in boxes for p in b]
    ys = [float(p[1]) for b in boxes for p in b]
    pad = margin * max(max(p[1] for p in b) - min(p[1] for p in b) for b in boxes)
    h, w = shape[:2]
    return (max(0.0, (min(xs) - pad) / w), max(0.0, (min(ys) - pad) / h),
            min(1.0, (max(xs) + pad) / w), min(1.0, (max(ys) + pad) / h))


def crop(rgb: np.ndarray, region) -> np.ndarray:
    h, w = rgb.shape[:2]
    left, top, right, bottom = region
    return rgb[int(top * h):int(np.ceil(bottom * h)), int(left * w):int(np.ceil(right * w))]


def luma_to_rgb(luma: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(luma, np.uint8)[..., None], 3, axis=2)


def decode_still(jpeg: bytes, max_side: int = STILL_MAX_SIDE) -> np.ndarray:
    """RGB uint8 of a JPEG, at most `max_side` px wide or high (decoded small: DCT scaling)."""
    with Image.open(io.BytesIO(jpeg)) as im:
        im.draft("RGB", (max_side, max_side))
        im = im.convert("RGB")
        im.thumbnail((max_side, max_side))
        return np.asarray(im)


@dataclass(frozen=True)
class Reading:
    """What was read, and how it should be said."""

    lines: tuple[str, ...]
    language: str                 # of the text, by its script
    frames: tuple[str, ...]       # which frames were read ("lores 640x360", "still 2304x1296")
    seconds: float
    ocr_seconds: float            # of `seconds`, in PP-OCR (the rest: camera, translation)
    translation: str | None = None
    target: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def say(self) -> str:
        if not self.lines:
            return NOTHING
        return self.translation or self.text

    @property
    def say_language(self) -> str:
        return self.target if self.translation else self.language

    def report(self) -> list[str]:
        """The console's lines."""
        if not self.lines:
            return [f"no text found ({', '.join(self.frames)})"]
        out = [f"text ({self.language}): {line}" for line in self.lines]
        if self.translation:
            out.append(f"translation {self.language}->{self.target}: {self.translation}")
        elif self.target:
            out.append(f"already {LANGUAGES.get(self.target, self.target)}: not translated")
        return out + [f"read from {', '.join(self.frames)} in {self.seconds:.2f} s "
                      f"(OCR {self.ocr_seconds:.2f} s)"]


@dataclass(frozen=True)
class Answer:
    """A question about what is in view, answered from the text read there."""

    question: str
    reading: Reading
    say: str
    checked: bool                 # the LLM's answer kept (its numbers are in the text)
    say_language: str = "en"

    def report(self) -> list[str]:
        return [f"question: {self.question}", f"answer: {self.say}",
                *self.reading.report()] + ([] if self.checked else
                                           ["the model's answer was not used: it named numbers "
                                            "not in the text, or could not tell"])


ANSWER_SYSTEM = (
    "You answer a question about text that camera glasses read with OCR. You cannot see "
    "pictures, objects, colours or people: you only know the text given. Answer in one short "
    "sentence using only that text. If the text does not answer the question, say: "
    "I can't tell from the text.")
ANSWER_TOKENS = 60


def numbers_in(text: str) -> set[str]:
    """The numbers written in `text` (12.50 and 12,50 alike), for checking an answer."""
    return {n.lstrip("0") or "0" for n in re.findall(r"\d+(?:[.,]\d+)?", text.replace(",", "."))}


class Reader:
    """Reads text in view; `read(translate_to=None)` -> Reading. The wearer's language is
    what "translate this sign" translates into."""

    def __init__(self, frames: Frames, models: TextModels | None, translator: Translator,
                 blocking: Blocking, wearer_language: str = "en"):
        self.frames, self.models, self.translator = frames, models, translator
        self.blocking = blocking
        self.wearer_language = wearer_language

    async def read(self, translate_to: str | None = None) -> Reading:
        """Read what the camera sees; translated into `translate_to` if given and different.

        ReadError if there is no OCR; the capture service's CaptureRefused if the camera
        may not run (mode, arbiter, privacy LED); TranslateError if translation is not
        possible now.
        """
        if translate_to is not None and translate_to not in LANGUAGES:
            raise ReadError(f"no language '{translate_to[:10]}'; one of {', '.join(LANGUAGES)}")
        if self.models is None:
            raise ReadError("reading needs the OCR model in the model worker; run with --models")
        if self.models.state != "ready":
            raise ReadError(not_ready(self.models, "reading"))
        t0 = time.perf_counter()
        luma = await self.frames.lores_frame()
        found, ocr_s = await self._ocr(luma_to_rgb(luma))
        lines, height = order_lines(found)
        frames = [f"lores {luma.shape[1]}x{luma.shape[0]}"]
        if not lines or height < SMALL_LINE_PX:
            still = await self.blocking.run(decode_still, await self.frames.still_jpeg())
            frames.append(f"still {still.shape[1]}x{still.shape[0]}")
            # Only where the lores frame saw text, if it saw any: the detector's time grows
            # with the pixels it is given (the whole still: about 1.5 s on two cores).
            region = text_region(found, luma.shape)
            if region is not None:
                still = crop(still, region)
            again, more_s = await self._ocr(still)
            ocr_s += more_s
            lines = order_lines(again)[0] or lines
        text = " ".join(lines)
        language = language_of(text)
        translation = None
        if lines and translate_to is not None and translate_to != language:
            translation = await self.translator.translate_text(text, language, translate_to)
        reading = Reading(tuple(lines), language, tuple(frames), time.perf_counter() - t0,
                          ocr_s, translation, translate_to)
        log.info("read %r from %s", text[:80], ", ".join(frames))
        return reading

    async def answer(self, question: str) -> Answer:
        """A question about what is in view ("how much is this?"), from the text read there.

        There is no vision model: the honest answer to what cannot be read is that. The
        small LLM may invent a price; an answer naming a number that is not in the text is
        not used, and the text itself is read out instead.
        """
        reading = await self.read()
        if not reading.lines:
            return Answer(question, reading, "I can't see any text to answer from, and I can "
                          "only read text, not pictures or objects.", True)
        why = self.translator.llm_off()
        if why is not None:
            return Answer(question, reading, f"I read: {reading.text}", False, reading.language)
        stream = self.models.generate(
            messages=[{"role": "user", "content": f"Text: {reading.text}\nQuestion: {question}"}],
            system=ANSWER_SYSTEM, max_tokens=ANSWER_TOKENS, timeout_s=OCR_TIMEOUT_S)
        try:
            said = " ".join("".join([piece async for piece in stream]).split())
        except GlassesError as e:
            log.warning("answer about the view failed: %s", e)
            said = ""
        invented = numbers_in(said) - numbers_in(reading.text)
        # "I can't tell" with text in view: the text itself is more use than a shrug.
        if not said or invented or "can't tell" in said.lower():
            return Answer(question, reading, f"I read: {reading.text}", False, reading.language)
        return Answer(question, reading, said, True, language_of(said))

    async def _ocr(self, rgb: np.ndarray) -> tuple[list[dict], float]:
        """(what PP-OCR found, seconds it took)."""
        t0 = time.perf_counter()
        found = await self.models.ocr(np.ascontiguousarray(rgb), timeout_s=OCR_TIMEOUT_S)
        return found, time.perf_counter() - t0

