"""Each service built on its own from sim parts and the real ports, as app.py wires it.

No stand-in of our own code: the camera is the sim board's interlocked camera, the mode
gate is the real ModeMachine, the arbiter the real Arbiter, speech goes to the sim speaker,
time is a SimClock on the virtual-time loop. One test per mode-policy flag, where the work
happens.
"""

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from glasses_firmware import boards
from glasses_firmware.drivers.bringup import Board
from glasses_firmware.drivers.clock import SimClock
from glasses_firmware.drivers.errors import DeviceTimeout
from glasses_firmware.drivers.sealed import Sealer
from glasses_firmware.firmware.arbiter import Arbiter
from glasses_firmware.firmware.blocking import Blocking
from glasses_firmware.firmware.capture.capture import Capture, CaptureRefused, CaptureSettings
from glasses_firmware.firmware.events import EventBus
from glasses_firmware.firmware.meeting.recorder import Recorder
from glasses_firmware.firmware.power import modes as m
from glasses_firmware.firmware.power.conditions import Conditions, ModeScheduler, Thresholds
from glasses_firmware.firmware.power.manager import PowerManager
from glasses_firmware.firmware.virtualtime import VirtualTimeLoop
from glasses_firmware.firmware.voice.conversation import Conversation, LlmUnavailable
from glasses_firmware.firmware.voice.cues import Cues
from glasses_firmware.firmware.voice.hub import AudioHub
from glasses_firmware.firmware.voice.intents import match
from glasses_firmware.firmware.voice.actions import ActionRouter, UnknownAction
from glasses_firmware.firmware.voice.speech import SpeechOut

SIM = boards.load("sim")


@dataclass
class Parts:
    """The sim board and the shared ports, as Firmware.__init__ makes them."""

    board: Board
    clock: SimClock
    events: EventBus
    blocking: Blocking
    arbiter: Arbiter
    modes: m.ModeMachine
    scheduler: ModeScheduler
    speech: SpeechOut
    cues: Cues
    data_dir: Path

    def capture(self) -> Capture:
        return Capture(camera=self.board.camera, claims=self.arbiter, modes=self.modes,
                       clock=self.clock, events=self.events, speech=self.speech, earcons=self.cues,
                       blocking=self.blocking, data_dir=self.data_dir,
                       settings=CaptureSettings.from_board(SIM),
                       conditions=lambda: self.scheduler.conditions)

    def set_conditions(self, **kw) -> None:
        base = dict(worn=True, charging=False, percent=80.0, temperature_c=30.0)
        self.scheduler.update(Conditions(**{**base, **kw}))

    async def settle(self, seconds: float = 0.5) -> None:
        await self.clock.asleep(seconds)
        for _ in range(5):
            await self.blocking.run(time.sleep, 0.02)


def run(body):
    """`await body(parts)` on the virtual-time loop, with a fresh sim board."""
    clock = SimClock(realtime=False)

    async def main():
        with tempfile.TemporaryDirectory(prefix="glasses-svc-") as tmp:
            data = Path(tmp)
            for sub in ("photos", "videos", "recordings", "logs"):
                (data / sub).mkdir()
            board = Board(SIM, data, clock)
            events, blocking = EventBus(), Blocking()
            holder = {}
            modes = m.ModeMachine(base_for=lambda: holder["s"].base_mode())
            scheduler = holder["s"] = ModeScheduler(Thresholds.from_board(SIM), modes, clock)
            cues = Cues(board.speaker, blocking)
            speech = SpeechOut(board.speaker, None, cues, events, clock, blocking)
            try:
                return await body(Parts(board, clock, events, blocking, Arbiter(), modes,
                                        scheduler, speech, cues, data))
            finally:
                board.close()

    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(clock)) as runner:
        return runner.run(main())


# -- policy flag: camera ------------------------------------------------------------------

def test_camera_flag_refuses_before_the_camera_starts():
    async def body(p: Parts):
        cap = p.capture()
        p.set_conditions(temperature_c=75.0)           # HOT: no camera
        assert p.modes.mode == m.HOT and not p.modes.policy.camera
        with pytest.raises(CaptureRefused, match="camera is off in HOT mode; let it cool down"):
            await cap.photo()
        assert not p.board.camera.streaming and not p.board.camera.led_driven
        p.set_conditions(temperature_c=40.0)
        path = await cap.photo()
        assert path.read_bytes()[:2] == b"\xff\xd8" and p.modes.mode == m.STANDBY
        assert not p.board.camera.led_driven            # the LED goes off with the stream
        return True

    assert run(body)


# -- policy flag: video -------------------------------------------------------------------

def test_video_flag_refuses_and_a_mode_change_stops_a_running_video():
    async def body(p: Parts):
        cap = p.capture()
        p.set_conditions(percent=12.0)                 # LOW_BATTERY: photos yes, video no
        with pytest.raises(CaptureRefused, match="no video in LOW_BATTERY mode"):
            await cap.start_video(10)
        await cap.photo()
        p.set_conditions(percent=60.0)
        video = await cap.start_video(30)
        assert p.modes.mode == m.CAPTURE and p.board.camera.recording
        await p.settle(1.0)
        p.set_conditions(percent=60.0, temperature_c=80.0)   # CAPTURE -> HOT: no video
        for _ in range(200):        # the recorder, then the camera, stop on their threads
            await p.settle(0.2)
            if not cap.recording_video and not p.board.camera.streaming:
                break
        assert not cap.recording_video and not p.board.camera.streaming
        assert video.exists() and any("video saved" in e and "HOT mode" in e for e in p.events.recent)
        return True

    assert run(body)


def test_interlock_trip_mid_video_is_reported_and_spoken():
    async def body(p: Parts):
        cap = p.capture()
        await cap.start_video(60)
        await p.settle(1.0)
        p.board.sim.gpio.break_readback()               # the LED taped over while filming
        for _ in range(200):        # the recorder, then the camera, stop on their threads
            await p.settle(0.2)
            if not cap.recording_video and not p.board.camera.streaming:
                break
        assert not cap.recording_video and not p.board.camera.streaming
        assert any(e.startswith("capture stopped: privacy LED read-back lost") for e in p.events.recent)
        # The spoken cue follows once the video is closed (the MP4 finished), a moment later.
        for _ in range(20):
            if "speak Camera stopped. The privacy light failed." in p.events.recent:
                break
            await p.settle(0.2)
        assert any(e == "speak Camera stopped. The privacy light failed." for e in p.events.recent)
        with pytest.raises(CaptureRefused, match="LED"):
            await cap.photo()
        assert not list((p.data_dir / "photos").iterdir())
        return True

    assert run(body)


# -- policy flag: llm ---------------------------------------------------------------------

def test_llm_flag_refuses_with_a_spoken_reason():
    async def body(p: Parts):
        conv = Conversation(None, p.speech, p.modes, p.events)
        p.set_conditions(temperature_c=75.0)
        with pytest.raises(LlmUnavailable, match="the glasses are too hot"):
            await conv.answer(match("why is the sky blue"))
        p.set_conditions(temperature_c=40.0)
        with pytest.raises(LlmUnavailable, match="not running; start with --models"):
            conv.check()                                # allowed, but no model worker here
        for mode in m.STATES:
            assert m.POLICY[mode].llm == (mode not in (m.SLEEP, m.CAPTURE, m.CRITICAL, m.HOT))
        return True

    assert run(body)


# -- policy flags: soc, idle timeout -------------------------------------------------------

def test_soc_flag_sets_the_level_and_halt_closes_files_first():
    async def body(p: Parts):
        order = []

        async def step(name, mode):
            order.append((name, mode, p.board.soc.halted))
            if name == "broken":
                raise DeviceTimeout("stuck")

        power = PowerManager(p.board.soc, p.modes, p.events, p.blocking, boot_s=5)
        for name in ("recording", "broken", "video"):
            power.add_power_down_step(name, lambda mode, n=name: step(n, mode))
        p.modes.fire("wake", "test")
        assert p.board.soc.level == m.POLICY[m.INTERACTIVE].soc == "load"
        p.modes.fire("capture", "test")
        assert p.board.soc.level == "light"
        p.modes.fire("capture_done", "test")
        assert p.board.soc.level == "idle"
        p.set_conditions(percent=3.0)                     # CRITICAL: close, then halt
        for _ in range(20):
            await p.settle(0.1)
            if p.board.soc.halted:
                break
        # Every step ran, in order, before the halt, even after one failed.
        assert [(n, mo) for n, mo, _ in order] == [("recording", m.CRITICAL), ("broken", m.CRITICAL),
                                                   ("video", m.CRITICAL)]
        assert not any(halted for _, _, halted in order) and p.board.soc.halted
        assert any("broken while powering down" in e for e in p.events.recent)
        p.set_conditions(percent=40.0, charging=True)    # wake: a boot at full load first
        assert p.modes.mode == m.CHARGING and p.board.soc.level == "load"
        await p.settle(6)
        assert p.board.soc.level == "idle"
        await power.close()
        return True

    assert run(body)


def test_idle_timeout_flag_ends_an_idle_turn_sooner_on_a_low_battery():
    async def body(p: Parts):
        limits = {}
        for percent, base in ((80.0, m.STANDBY), (12.0, m.LOW_BATTERY)):
            p.set_conditions(percent=percent)
            assert p.modes.mode == base
            p.modes.fire("wake", "test")
            start = p.clock.monotonic()
            while p.modes.mode == m.INTERACTIVE:
                await p.clock.asleep(1.0)
                p.scheduler.update()
            limits[base] = p.clock.monotonic() - start
            assert p.modes.mode == base
        assert 30 <= limits[m.STANDBY] <= 32 and 20 <= limits[m.LOW_BATTERY] <= 22
        p.modes.fire("wake", "test")                      # activity keeps a turn open
        for _ in range(45):
            await p.clock.asleep(1.0)
            p.scheduler.touch()
            p.scheduler.update()
        assert p.modes.mode == m.INTERACTIVE
        return True

    assert run(body)


# -- recorder, hub, router, blocking ---------------------------------------------------------

def test_recorder_writes_segments_from_the_hub_and_the_hub_reopens_a_failed_stream():
    async def body(p: Parts):
        hub = AudioHub(p.board.microphones, p.clock, p.events, p.blocking)
        rec = Recorder(hub, p.arbiter, p.modes, p.clock, p.events, p.blocking, p.data_dir,
                       sealer=Sealer.ephemeral())
        path = await rec.start()
        assert p.modes.mode == m.RECORDING and p.arbiter.owners("microphones") == ["meeting"]
        await p.settle(3.0)
        p.board.sim.set_fault("microphones", "gone")     # the card vanishes mid-meeting
        for _ in range(60):
            await p.settle(0.5)
            if any(e.startswith("fault microphones") for e in p.events.recent):
                break
        p.board.sim.set_fault("microphones", "clear")
        for _ in range(80):
            await p.settle(0.5)
            if "fault microphones cleared" in p.events.recent:
                break
        assert "fault microphones cleared" in p.events.recent and hub.failures >= 1
        chunks = hub.chunks
        await p.settle(2.0)
        assert hub.chunks > chunks                          # audio flows again
        assert await rec.stop("test") == path
        info = json.loads((path / "info.json").read_text())
        assert info["ended"] and info["segments"] == len(list(path.glob("seg-*.wav"))) >= 1
        assert p.modes.mode == m.STANDBY and not p.arbiter.owners("microphones")
        await hub.close()
        assert not p.board.microphones.running
        return True

    assert run(body)


def test_router_serves_voice_and_console_from_one_table():
    async def body(p: Parts):
        cap = p.capture()
        conv = Conversation(None, p.speech, p.modes, p.events)

        def fresh():
            return Conditions(worn=True, charging=True, percent=42.4, temperature_c=30.0)

        router = ActionRouter(capture=cap, recorder=None, speaker=p.board.speaker,
                              conversation=conv, clock=p.clock, conditions=fresh,
                              data_dir=p.data_dir)
        photo = await router.run("photo")
        assert photo.say == "Photo taken." and photo.lines[0].startswith("photo photos/")
        assert (p.data_dir / photo.lines[0].split()[1]).exists()
        assert (await router.run("battery")).say == "Battery is 42 percent and charging."
        await router.run("translate_ko")
        assert conv.translate_to == "ko"
        await router.run("cancel")
        assert conv.translate_to is None
        before = p.board.speaker.volume
        assert (await router.run("volume_down")).say.startswith("Volume ")
        assert p.board.speaker.volume == pytest.approx(round(max(0.1, before - 0.1), 2))
        with pytest.raises(UnknownAction, match="no action 'dance'"):
            await router.run("dance")
        return True

    assert run(body)


def test_blocking_calls_have_a_deadline():
    async def body(p: Parts):
        assert await p.blocking.run(sum, [1, 2, 3]) == 6
        t0 = time.monotonic()
        with pytest.raises(DeviceTimeout, match="sleep did not finish within 0.2 s"):
            await p.blocking.run(time.sleep, 2.0, timeout_s=0.2)
        assert time.monotonic() - t0 < 1.5 and p.blocking.timed_out == 1
        return True

    assert run(body)
