"""The ports: the narrow interfaces services are built from, declared in one place.

A service takes in its constructor only the ports it uses (the camera, the arbiter, a mode
gate, the clock, an event sink, something that speaks), never the whole firmware.
`Firmware.__init__` (app.py) is the only place that wires real objects into them, and a
test builds a service from sim parts and these same real objects.

Who implements each port:

| port | implemented by |
|---|---|
| Clock | drivers.clock.Clock, SimClock |
| EventSink | events.EventBus |
| Blocking | blocking.Blocking |
| ModeGate | power.modes.ModeMachine |
| Claims | arbiter.Arbiter |
| Camera | drivers.interlock.InterlockedCamera (the board exposes no other) |
| Microphones | drivers.audio.Microphones |
| Speaker | drivers.speaker.Speaker |
| Speaks | voice.speech.SpeechOut |
| Earcons | voice.cues.Cues |
| Frames | capture.capture.Capture |
| TextModels | worker.client.InferenceClient (the model worker) |
| Phone | phone.companion.Companion (Gadgetbridge over BlueZ), payments.phone.NoPhone (no [bluetooth]) |
| VoiceModels, LanguageModels, MeetingModels | worker.client.InferenceClient (voice and model workers) |
"""

from pathlib import Path
from typing import Any, AsyncIterator, Callable, Protocol

import numpy as np


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def wall(self) -> float: ...
    async def asleep(self, seconds: float) -> None: ...


class EventSink(Protocol):
    def emit(self, kind: str, detail: str = "") -> None:
        """One asynchronous event line (`EVT kind detail` on consoles that listen)."""


class Blocking(Protocol):
    async def run(self, fn: Callable, *args, timeout_s: float | None = None) -> Any:
        """Run a blocking call off the loop; DeviceTimeout past its deadline."""


class ModePolicy(Protocol):
    """What the current mode allows (power.modes.Policy)."""

    camera: bool
    video: bool
    listening: bool
    llm: bool
    soc: str
    idle_timeout_s: float


class ModeGate(Protocol):
    """The mode machine as services see it: what the mode allows, and the declared events."""

    mode: str

    @property
    def policy(self) -> ModePolicy: ...
    def allowed(self, event: str) -> bool: ...
    def fire(self, event: str, reason: str = "") -> str: ...
    def subscribe(self, callback: Callable[[str, str, str, str], None]) -> None: ...


class Claim(Protocol):
    owner: str
    released: bool


class Claims(Protocol):
    """The arbiter: who may use the camera, microphones, speaker and worker."""

    def acquire(self, owner: str, resources, on_preempt: Callable[[], None] | None = None) -> Claim: ...
    def release(self, claim: Claim) -> None: ...
    def suspended(self, owner: str) -> bool: ...


class Camera(Protocol):
    """The privacy-interlocked camera: no frame unless the LED is lit and reads back."""

    streaming: bool
    recording: bool
    on_video_stopped: Callable[[Path, str], None] | None
    on_tripped: Callable[[str], None] | None

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def capture_jpeg(self) -> bytes: ...
    def capture_lores(self) -> np.ndarray: ...
    def start_video(self, path: Path, max_duration_s: float) -> None: ...
    def stop_video(self) -> Path: ...


class Microphones(Protocol):
    running: bool

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def read_speech_available(self) -> np.ndarray: ...


class Playback(Protocol):
    done: bool


class Speaker(Protocol):
    volume: float

    def play(self, samples: np.ndarray, rate_hz: int) -> Playback: ...
    def stop(self) -> None: ...


class Speaks(Protocol):
    """Speech out: sentences queued to the speaker, stoppable at once."""

    busy: bool
    first_audio_at: float | None

    async def say(self, text: str, language: str = "en") -> None: ...
    async def drain(self) -> None: ...
    def stop(self) -> None: ...


class Earcons(Protocol):
    def earcon(self, name: str) -> Any: ...


class Stream(Protocol):
    result: Any

    def cancel(self) -> None: ...
    def __aiter__(self) -> AsyncIterator: ...


class VoiceModels(Protocol):
    """The voice worker: wake word, VAD, command grammar, TTS (milliseconds each)."""

    state: str

    async def vad(self, audio: np.ndarray, timeout_s: float = ..., *, reset: bool = False) -> np.ndarray: ...
    async def wake(self, audio: np.ndarray, timeout_s: float = ..., *, reset: bool = False,
                   models: tuple[str, ...] | None = None) -> dict[str, float]: ...
    async def grammar(self, audio: np.ndarray, phrases: list[str], timeout_s: float = ...) -> dict: ...
    async def tts(self, text: str, timeout_s: float = ...) -> tuple[np.ndarray, int]: ...


class LanguageModels(Protocol):
    """The model worker: LLM and ASR (seconds each)."""

    state: str

    def generate(self, prompt: str | None = None, *, messages: list[dict] | None = None,
                 system: str | None = None, max_tokens: int = ..., **kw) -> Stream: ...
    async def transcribe(self, audio: np.ndarray, *, task: str = "transcribe",
                         language: str | None = None, **kw) -> dict:
        """{"text", "language", "language_prob"}; task "translate" gives English."""


class MeetingModels(LanguageModels, Protocol):
    """The model worker as meeting notes use it: the ASR and LLM, plus voice activity
    (its own VAD stream, apart from the voice worker's listener) and speaker voices."""

    async def vad(self, audio: np.ndarray, timeout_s: float = ..., *, reset: bool = False) -> np.ndarray: ...
    def transcribe_stream(self, audio: np.ndarray, *, task: str = "transcribe",
                          language: str | list[str] | None = None, priority: int = ...,
                          timeout_s: float = ...) -> Stream: ...
    async def embed_speaker(self, audio: np.ndarray, timeout_s: float = ..., *,
                            priority: int = ...) -> np.ndarray:
        """float32 [256], unit norm; BadInput under 0.5 s of speech."""


class Frames(Protocol):
    """Frames to read text and codes in (capture.Capture): through the interlocked camera,
    never saved. `owner` names who holds the camera for the arbiter."""

    async def lores_frame(self, owner: str = "assistant") -> np.ndarray: ...
    def looking(self, owner: str = "assistant"):
        """Async context: yields `async next_frame() -> luma`, the camera held between them."""
    async def still_jpeg(self) -> bytes: ...


class TextModels(Protocol):
    """The model worker's OCR role (PP-OCR)."""

    state: str

    async def ocr(self, image_rgb: np.ndarray, timeout_s: float = ...) -> list[dict]:
        """[{"text", "score", "box": 4 [x, y] corners}] in image pixels."""


Touch = Callable[[], None]            # "the user did something": restarts idle timeouts
Conditions = Callable[[], Any]        # the latest power.conditions.Conditions


class Phone(Protocol):
    """The paired phone: the wallet a payment is handed to, the shop a product code is
    looked up in. Unreachable (drivers.errors) when it is not there."""

    name: str
    connected: bool

    async def pay(self, request: dict) -> dict: ...        # {"status": "paid"|"declined", ...}
    async def lookup(self, code: str) -> str | None: ...
