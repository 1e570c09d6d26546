"""The firmware process: the one place that wires the services together, and its lifecycle.

Read this file first. `Firmware.__init__` brings up the board and builds every service
from the ports it needs (ports.py lists them and who implements each); no service reaches
another through this object. The rest: hardware callbacks handed over to the loop, the
sampling that feeds the mode scheduler, `serve` (console, systemd) and `shutdown`.
"""

import asyncio
import logging
import logging.handlers
import signal
from pathlib import Path

from glasses_firmware.drivers.atomic import remove_stale_temps
from glasses_firmware.drivers.bringup import Board
from glasses_firmware.drivers.devicekey import device_sealer
from glasses_firmware.drivers.errors import GlassesError

from . import __version__, notify
from .arbiter import Arbiter
from .blocking import Blocking
from .capture.capture import Capture, CaptureSettings
from .events import EventBus, LogTail
from .meeting.recorder import Recorder
from .meeting.transcriber import Transcriber
from .offload.control import Offload
from .payments.flow import Payments
from .payments.phone import NoPhone
from .payments.scanner import Scanner
from .phone.bluez import LinkSettings, PhoneLink
from .phone.call_voice import CallVoice
from .phone.calls import Calls
from .phone.companion import Companion
from .phone.media import Media
from .power import modes as m
from .power.conditions import Conditions, ModeScheduler, Thresholds
from .power.energy import Activity, EnergyMeter
from .power.manager import PowerManager
from .power.monitor import Monitor
from .tasks import spawn
from .voice.assistant import Assistant
from .voice.conversation import Conversation
from .voice.cues import Cues
from .voice.hub import AudioHub
from .voice.reading import Reader
from .voice.actions import ActionRouter
from .voice.speech import SpeechOut
from .voice.translator import Translator

log = logging.getLogger("glasses")
TALKING = ("listen", "recognize", "respond", "speak")   # voice loop states a notification waits out

DATA_SUBDIRS = ("photos", "videos", "recordings", "notes", "logs")
SAMPLE_PERIOD_S = 5.0


def prepare_data_dir(data_dir: Path) -> None:
    for sub in DATA_SUBDIRS:
        (data_dir / sub).mkdir(parents=True, exist_ok=True)


def setup_logging(data_dir: Path, tail: LogTail) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    file = logging.handlers.RotatingFileHandler(data_dir / "logs" / "glasses.log",
                                                maxBytes=2_000_000, backupCount=3)
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file)
    root.addHandler(tail)


def _asr_is_real(models_dir) -> bool:
    """Whether the ASR can confirm a command: not a random-weight test model."""
    if models_dir is None:
        return False
    from glasses_firmware.models.manifest import load
    try:
        return not load(models_dir).for_role("asr").random_weights
    except GlassesError:
        return False


class Firmware:
    """The running application: owns the board and the services, and wires them."""

    version = __version__

    def __init__(self, config, data_dir: Path, clock, log_tail: LogTail | None = None,
                 models_dir=None, plan: str = "scheduler"):
        self.config, self.clock, self.plan = config, clock, plan
        self.data_dir = Path(data_dir)
        prepare_data_dir(self.data_dir)
        remove_stale_temps(self.data_dir)       # before anything here writes
        # Recordings and notes are sealed under the device key (docs/encryption.md), made
        # on the first boot if the board has none; never kept in the data dir.
        self.sealer = device_sealer(config.storage, self.data_dir)
        self.log_tail = log_tail or LogTail()
        self.models_dir = models_dir
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        self.lifecycle = "starting"
        self.started_at = clock.monotonic()
        self.events = EventBus()
        self.blocking = Blocking()
        self.arbiter = Arbiter()
        # Build order: each feature takes only what the ones before it made.
        self._build_workers()
        self._build_board()
        self._build_power()
        self._build_voice_out()
        self._build_capture()
        self._build_listening()
        self._build_phone()
        self._build_payments()
        self._build_assistant()
        self._build_meeting()
        self._build_energy()

    def _build_workers(self) -> None:
        """Two supervised inference workers, each behind the user's offload servers.

        The voice worker (wake word, VAD, command grammar, TTS) answers within milliseconds
        even while the model worker (LLM, ASR) is busy generating, so listening, barge-in
        and the first spoken sentence never queue behind a whole answer.
        """
        model = voice = None
        if self.models_dir is not None:
            from .worker import InferenceClient
            threads = self.config.inference.threads
            model = InferenceClient(self.models_dir, threads=threads, preload=("llm", "asr"))
            # One thread keeps standby listening cheap; the voice gets the board's threads,
            # since the first spoken words wait on it (Piper: 250 ms on one, 150 on two).
            voice = InferenceClient(self.models_dir, threads=1,
                                    preload=("wake", "vad", "grammar", "tts"),
                                    role_options={"tts": {"threads": threads}})
        # Offload (docs/offload.md): the roles set in <data>/offload.toml go to the user's
        # servers, the on-board workers answering whenever one fails; none set, none reached.
        self.offload = Offload(self.data_dir, self.events)
        self.model_worker = self.offload.wrap(model, ("llm", "asr"))
        self.voice_worker = self.offload.wrap(voice, ("tts",))

    def _build_board(self) -> None:
        self.board = Board(self.config, self.data_dir, self.clock,
                           on_gesture=self._from_thread(self._gesture))
        self.board.imu.int1.when_activated = self._from_thread(self.sample)

    def _build_power(self) -> None:
        """Sensors -> conditions -> modes -> what each mode powers."""
        board = self.board
        self.monitor = Monitor(board.imu, board.fuel_gauge, board.thermal, board.charger_input,
                               self.clock, self.events,
                               wear_unsensed=board.missing_for("imu") is not None)
        # The machine asks the scheduler, made next from it, for the mode to return to.
        self.modes = m.ModeMachine(base_for=self._base_mode)
        self.modes.subscribe(lambda old, new, event, reason:
                             self.events.emit("mode", f"{new} {reason}".strip()))
        self.scheduler = ModeScheduler(Thresholds.from_board(self.config), self.modes,
                                       self.clock, self.plan)
        self.power = PowerManager(board.soc, self.modes, self.events, self.blocking)

    def _build_voice_out(self) -> None:
        self.cues = Cues(self.board.speaker, self.blocking)
        self.speech = SpeechOut(self.board.speaker, self.voice_worker, self.cues, self.events,
                                self.clock, self.blocking, touch=self.scheduler.touch)

    def _build_capture(self) -> None:
        """Photos and video behind the LED interlock; meeting audio from the microphones."""
        self.capture = Capture(camera=self.board.camera, claims=self.arbiter, modes=self.modes,
                               clock=self.clock, events=self.events, speech=self.speech,
                               earcons=self.cues, blocking=self.blocking, data_dir=self.data_dir,
                               settings=CaptureSettings.from_board(self.config),
                               conditions=lambda: self.scheduler.conditions,
                               always_on=self.plan == "always-on")
        self.hub = AudioHub(self.board.microphones, self.clock, self.events, self.blocking)
        self.recorder = Recorder(self.hub, self.arbiter, self.modes, self.clock, self.events,
                                 self.blocking, self.data_dir, sealer=self.sealer)

    def _build_listening(self) -> None:
        """What a turn can do besides actions: talk, translate, read what the camera sees."""
        self.conversation = Conversation(self.model_worker, self.speech, self.modes, self.events)
        self.translator = Translator(self.model_worker, self.speech, self.modes, self.events)
        self.reader = Reader(self.capture, self.model_worker, self.translator, self.blocking)

    def _build_phone(self) -> None:
        """BlueZ, the Gadgetbridge companion, calls (oFono, BlueALSA) and music (AVRCP).

        Only when the board has Bluetooth. Notifications wait while the wearer talks or the
        assistant answers; a call holds the speaker and microphones.
        """
        self.phone_link, self.phone = None, NoPhone()
        self.calls = self.media = self.call_voice = None
        if (bt := self.board.bluetooth) is None:
            return
        self.phone_link = PhoneLink(LinkSettings(bt.address, bt.adapter, bt.alias), self.events,
                                    self.clock, speech=self.speech)
        self.phone = Companion(self.phone_link, self.speech, self.events, self.clock,
                               busy=self.wearer_busy)
        self.media = Media(bt.address, self.speech, self.events, self.clock,
                           on_playing=self.board.speaker.mark_phone_audio)
        self.calls = Calls(bt.address, self.arbiter, self.board.speaker, self.hub, self.speech,
                           self.events, self.clock, self.blocking, media=self.media,
                           companion=self.phone)

    def _build_payments(self) -> None:
        """Codes read through the interlocked camera, confirmed only by the button while
        worn, handed to the phone's wallet (none until a phone is linked)."""
        self.payments = Payments(Scanner(self.capture, self.blocking, self.clock), self.phone,
                                 self.speech, self.events, self.clock, self.blocking,
                                 self.data_dir, worn=lambda: self.fresh_conditions().worn)

    def _build_assistant(self) -> None:
        """The router serves voice intents and console commands alike."""
        self.router = ActionRouter(
            capture=self.capture, recorder=self.recorder, speaker=self.board.speaker,
            conversation=self.conversation, clock=self.clock, conditions=self.fresh_conditions,
            data_dir=self.data_dir, translator=self.translator, reader=self.reader,
            payments=self.payments, privacy=self.capture, calls=self.calls, media=self.media,
            sealer=self.sealer)
        self.assistant = Assistant(
            hub=self.hub, voice=self.voice_worker, models=self.model_worker, claims=self.arbiter,
            modes=self.modes, clock=self.clock, events=self.events, speech=self.speech,
            earcons=self.cues, router=self.router, conversation=self.conversation,
            blocking=self.blocking, data_dir=self.data_dir, touch=self.scheduler.touch,
            asr_confirms=_asr_is_real(self.models_dir), translator=self.translator)
        if self.calls is not None:    # "answer", "hang up" heard during a call, no wake word
            self.call_voice = CallVoice(calls=self.calls, voice=self.voice_worker,
                                        claims=self.arbiter, clock=self.clock, hub=self.hub,
                                        router=self.router, events=self.events)

    def _build_meeting(self) -> None:
        """Transcripts and summaries in the background, behind the assistant's turns; before
        a halt every file is closed, the meeting first when the battery dies."""
        self.transcriber = Transcriber(self.model_worker, self.modes, self.assistant.loop,
                                       self.clock, self.events, self.blocking, self.data_dir,
                                       recording=lambda: self.recorder.dir, sealer=self.sealer)
        self.power.add_power_down_step("recording", self._stop_recording_if_critical)
        self.power.add_power_down_step("video", lambda mode: self.capture.close_all(f"{mode} mode"))
        self.power.add_power_down_step("microphones", lambda mode: self.hub.close())

    def _build_energy(self) -> None:
        """Last: it observes what the others switched on or off."""
        self.energy = EnergyMeter(self.config.power, self.clock, self.board.component_states,
                                  lambda: self.modes.mode, self._activity)
        self.modes.subscribe(lambda *change: self.energy.tick())
        if isinstance(getattr(self.clock, "listeners", None), list):
            self.clock.listeners.append(self.energy.tick)

    # Small views the wiring hands out.
    @property
    def mode(self) -> str:
        return self.modes.mode

    def _activity(self) -> Activity:
        return Activity(video=self.capture.recording_video, meeting=self.recorder.running,
                        music=self.board.speaker.phone_audio)

    def _base_mode(self) -> str:
        return self.scheduler.base_mode()

    def wearer_busy(self) -> bool:
        """The wearer talks, the assistant answers or a call runs: notifications wait."""
        return self.assistant.state in TALKING or self.in_call()

    def in_call(self) -> bool:
        """A phone call rings or runs: spoken notifications wait until it ends."""
        return self.calls is not None and self.calls.state != "idle"

    def fresh_conditions(self) -> Conditions:
        self.sample()
        return self.scheduler.conditions

    async def _stop_recording_if_critical(self, mode: str) -> None:
        if mode == m.CRITICAL:
            await self.recorder.stop("battery critical")

    def worker_states(self) -> dict[str, str]:
        """{"model": state, "voice": state} of the two inference workers."""
        return {name: client.state if client is not None else "not_started"
                for name, client in (("model", self.model_worker), ("voice", self.voice_worker))}

    def _from_thread(self, fn):
        # Device callbacks run on driver threads: they only hand over to the loop.
        return lambda *args: self.loop.call_soon_threadsafe(fn, *args)

    # Inputs.
    def _gesture(self, button: str, gesture: str) -> None:
        if gesture in ("click", "double", "long"):
            self.events.emit("button", f"{button} {gesture}")
        self.scheduler.touch()
        if self.phone_link is not None and self.phone_link.gesture(button, gesture):
            return                  # a pairing confirmed, or the pairing window opened (phone link)
        if self.calls is not None and self.calls.gesture(button, gesture):
            return                  # while a call rings or runs, the action button is the call's
        if self.payments.gesture(button, gesture):
            return                  # a payment offer was waiting for this press
        self.assistant.gesture(button, gesture)
        if button == "capture" and gesture == "click" and self.modes.policy.camera:
            spawn(self._button_photo(), name="button-photo")
        elif button == "capture" and gesture == "long":      # "don't record me", and back
            if not self.capture.resume_privacy():
                spawn(self.capture.pause_privacy("the capture button was held"), name="privacy")

    async def _button_photo(self) -> None:
        try:
            await self.router.run("photo")
        except GlassesError as e:
            self.events.emit("capture", f"button photo refused: {e}")

    def sample(self):
        """Read the sensors now and let the scheduler act on them (loop thread)."""
        snap = self.monitor.sample()
        self.energy.tick()
        g = snap.gauge
        self.scheduler.update(Conditions(
            worn=self.monitor.worn, charging=self.monitor.charging,
            percent=g.percent if g else self.scheduler.conditions.percent,
            temperature_c=self.monitor.temperature_c))
        return snap

    async def sample_forever(self) -> None:
        while True:
            try:
                self.sample()
            except GlassesError as e:
                log.warning("sampling failed: %s", e)
            await self.clock.asleep(SAMPLE_PERIOD_S)

    def models_info(self) -> list[dict]:
        """One row per model in the manifest (blocking: hashes files)."""
        if self.models_dir is None:
            return []
        from glasses_firmware.models.manifest import load
        from glasses_firmware.models.verify import verify_all
        return verify_all(load(self.models_dir))

    # Lifecycle.
    async def start_workers(self) -> None:
        """Start listening and the inference workers; their state shows in `status`."""
        for service in (self.calls, self.media):
            if service is not None:
                service.start()     # watch oFono and BlueZ, reconnecting with back-off
        self.assistant.start()
        for name, client in (("voice", self.voice_worker), ("worker", self.model_worker)):
            if client is None:
                continue
            try:
                await client.start()
                self.events.emit("worker", f"{name} ready")
            except GlassesError as e:
                self.events.emit("fault", f"{name} worker {e}")
        if self.model_worker is not None and self.model_worker.state == "ready":
            spawn(self.conversation.warm_up(), name="llm-warm-up")
        self.transcriber.start()      # resumes any meeting a power cut left unfinished

    def stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            log.info("stopping: %s", reason)
            self.lifecycle = "stopping"
            self.stopping.set()

    async def shutdown(self) -> None:
        for service in (self.calls, self.media):
            if service is not None:
                await service.close()           # a call in progress ends, its claims released
        await self.transcriber.close()
        await self.assistant.close()
        await self.hub.close()
        await self.capture.close_all("shutting down")
        await self.recorder.stop("shutting down")
        await self.power.close()
        for client in (self.voice_worker, self.model_worker):
            if client is not None:
                await client.stop()
        if self.phone_link is not None:
            self.phone_link.close()             # phone link: before the board (and its sim bus) goes
        self.energy.tick()
        listeners = getattr(self.clock, "listeners", None)
        if isinstance(listeners, list) and self.energy.tick in listeners:
            listeners.remove(self.energy.tick)
        self.board.close()


async def serve(fw: Firmware, console: str) -> int:
    from .console.transports import open_console
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, fw.stop, signal.Signals(sig).name)
    con = None
    tasks = [asyncio.create_task(fw.sample_forever(), name="monitor"),
             asyncio.create_task(fw.start_workers(), name="worker-start"),
             asyncio.create_task(notify.keep_watchdog_fed(), name="watchdog")]
    if fw.phone_link is not None:               # phone link: BlueZ, reconnecting with back-off
        tasks.append(asyncio.create_task(fw.phone_link.run(), name="phone-link"))
    try:
        con = open_console(fw, console)
        fw.board.status_led.blink()
        fw.lifecycle = "running"
        notify.notify(f"READY=1\nSTATUS=running on {fw.config.name}")
        log.info("glasses %s running on board %s, data in %s", __version__, fw.config.name, fw.data_dir)
        if console != "stdio":
            print(f"glasses {__version__}: running on board {fw.config.name}, data in {fw.data_dir}"
                  f"{', console at ' + console if console not in ('none', 'auto') else ''}; "
                  "Ctrl-C to stop", flush=True)
        await fw.stopping.wait()
        notify.notify("STOPPING=1")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if con is not None:
            con.close()
        await fw.shutdown()
    log.info("stopped cleanly")
    return 0


def run_firmware(config, data_dir: Path, clock, console: str = "none", speed: str = "1",
                 models_dir=None) -> int:
    from .virtualtime import VirtualTimeLoop
    data_dir = Path(data_dir)
    prepare_data_dir(data_dir)
    tail = LogTail()
    setup_logging(data_dir, tail)

    async def main():
        return await serve(Firmware(config, data_dir, clock, tail, models_dir), console)

    factory = (lambda: VirtualTimeLoop(clock)) if speed == "max" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())
