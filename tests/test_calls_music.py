"""Calls and music through the paired phone, on the sim board as a wearer would.

What runs: `glasses run --board sim`, its private dbus-daemon, BlueZ's API from
python-dbusmock (drivers/sim/bluez_mock.py) with the phone's MediaPlayer1/MediaTransport1,
oFono's hands-free API and BlueALSA's SCO PCMs from dbusmock's ofono template as
drivers/sim/telephony_mock.py extends it. The call's audio flows through real pipes handed
over D-Bus: the caller's voice (espeak-ng) to the glasses' speaker, the microphones to the
phone, which keeps what it heard in sim/phone/call-NN.wav. Knobs: `sim phone call|hangup|
music|off|on`; the wearer: the action button, `call ...`, `music ...`, `ask ...`.
"""

import time
from pathlib import Path

import numpy as np
import pytest

from glasses_firmware.drivers.wavio import read_wav
from glasses_firmware.firmware.voice.intents import match
from tests.conftest import RunningFirmware, wait_for


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    fw = RunningFirmware(tmp_path_factory.mktemp("calls"))
    assert fw.cmd("events on").ok
    wait_for(lambda: fw.cmd("call --json").json()["modems"] == 1, "the phone's HFP modem")
    yield fw
    fw.stop()




def call_state(fw) -> dict:
    return fw.cmd("call --json").json()


def phone_music(fw) -> str:
    return next((line for line in fw.cmd("sim phone").lines if line.startswith("music ")), "")


def rms(path: Path) -> float:
    samples, _ = read_wav(path)
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


def played_since(fw, before: set) -> list[Path]:
    return [Path(line.split()[0]) for line in fw.cmd("sim speaker").lines
            if line.endswith(" s") and line.split()[0] not in before]


def test_an_incoming_call_rings_is_answered_by_the_button_routes_the_audio_and_ends(fw):
    before = {line.split()[0] for line in fw.cmd("sim speaker").lines}
    assert fw.cmd("sim phone call Alice +15551234").ok
    seen = fw.events_until(lambda e: e == "call incoming from Alice (+15551234)")
    fw.events_until(lambda e: e == "speak Call from Alice.", seen=seen)
    ringing = call_state(fw)
    assert ringing["state"] == "ringing" and ringing["holding"] == ["speaker", "microphones"]
    assert ringing["wake_word_suspended"] is True
    held = fw.cmd("mode --json").json()["resources"]
    assert held["speaker"] == ["call"] and held["microphones"] == ["call"]

    assert fw.cmd("sim button action click").ok          # click answers
    seen = fw.events_until(lambda e: e == "call answered: talking with Alice", seen=seen)
    assert fw.cmd("sim say hello Alice, I can hear you fine").ok
    wait_for(lambda: call_state(fw)["audio"]["from_phone_bytes"] > 32000 * 2, "the caller's voice")
    time.sleep(2.5)                                        # the wearer's sentence is said
    active = call_state(fw)
    assert active["state"] == "active" and active["audio"]["to_phone_bytes"] > 32000 * 2

    assert fw.cmd("sim button action double").ok         # double-click hangs up
    fw.events_until(lambda e: e == "call ended: you hung up", seen=seen)
    idle = call_state(fw)
    assert idle["state"] == "idle" and idle["holding"] == [] and not idle["wake_word_suspended"]
    # The phone heard the wearer (the microphones went to the call) ...
    heard = wait_for(lambda: sorted((fw.data_dir / "sim" / "phone").glob("call-*.wav")), "call WAV")
    assert rms(heard[-1]) > 0.01
    # ... and the caller's voice came out of the glasses' speaker.
    def seconds(paths):
        return sum(len(samples) / rate for samples, rate in map(read_wav, paths))
    # (a speaker run's WAV is written when its stream closes, just after the call ends)
    played = wait_for(lambda: (p := played_since(fw, before)) and seconds(p) > 2.0 and p,
                      "the caller's voice in the speaker's files")
    assert max(rms(p) for p in played) > 0.01


def test_the_caller_hanging_up_and_a_rejected_call_end_cleanly(fw):
    assert fw.cmd("sim phone call Bob").ok
    seen = fw.events_until(lambda e: e.startswith("call incoming from Bob"))
    assert fw.cmd("call answer").lines == ["Talking with Bob."]
    assert fw.cmd("sim phone hangup").ok
    fw.events_until(lambda e: e == "call ended: the caller hung up", seen=seen)

    assert fw.cmd("sim phone call Carol").ok
    seen = fw.events_until(lambda e: e.startswith("call incoming from Carol"))
    assert fw.cmd("sim button action long").ok            # a long press declines
    fw.events_until(lambda e: e == "call ended: you declined it", seen=seen)
    refused = fw.cmd("call hangup")
    assert not refused.ok and "there is no call to hang up" in refused.error
    assert "no call" in fw.cmd("sim phone").lines


def test_the_phone_going_away_mid_call_is_a_clear_event_not_a_hang(fw):
    assert fw.cmd("sim phone call Dave").ok
    seen = fw.events_until(lambda e: e.startswith("call incoming from Dave"))
    assert fw.cmd("call answer").ok
    seen = fw.events_until(lambda e: e.startswith("call answered"), seen=seen)
    t0 = time.monotonic()
    assert fw.cmd("sim phone off").ok
    fw.events_until(lambda e: e == "call ended: the phone disconnected", seen=seen, timeout_s=10)
    assert time.monotonic() - t0 < 5.0
    gone = call_state(fw)
    assert gone["state"] == "idle" and gone["holding"] == [] and gone["modems"] == 0
    refused = fw.cmd("call answer")
    assert not refused.ok and "no call ringing" in refused.error
    assert fw.cmd("sim phone on").ok                      # back in range: calls work again
    wait_for(lambda: call_state(fw)["modems"] == 1, "the modem back")
    assert fw.cmd("sim phone call Erin").ok
    seen = fw.events_until(lambda e: e.startswith("call incoming from Erin"))
    assert fw.cmd("call reject").lines == ["Declined the call from Erin."]


def gadgetbridge_received(fw) -> int:
    """How many lines the phone's Gadgetbridge has had from the glasses."""
    line = next(line for line in fw.cmd("sim phone").lines if line.startswith("gadgetbridge "))
    return int(line.split(", ")[-1].split()[0])


def test_without_hands_free_gadgetbridge_rings_and_the_button_answers_on_the_phone(fw):
    incoming = 'sim phone line GB({t:"call",cmd:"incoming",name:"Zoe",number:"+4420"})'
    assert fw.cmd(incoming).ok                     # with HFP linked, oFono is the authority
    time.sleep(1.0)
    assert call_state(fw)["state"] == "idle"
    assert fw.cmd("sim phone hfp off").ok          # Android's "Phone calls" off for the glasses
    wait_for(lambda: call_state(fw)["modems"] == 0, "the HFP modem gone")
    before = gadgetbridge_received(fw)
    assert fw.cmd(incoming).ok
    seen = fw.events_until(lambda e: e == "call incoming from Zoe (+4420)")
    assert call_state(fw)["via"] == "gadgetbridge"
    assert fw.cmd("sim button action click").ok
    seen = fw.events_until(lambda e: e == "call answered: talking with Zoe", seen=seen)
    wait_for(lambda: gadgetbridge_received(fw) > before, "ACCEPT sent to Gadgetbridge")
    assert fw.cmd('sim phone line GB({t:"call",cmd:"end",name:"Zoe",number:"+4420"})').ok
    fw.events_until(lambda e: e == "call ended: the caller hung up", seen=seen)
    assert fw.cmd("sim phone hfp on").ok
    wait_for(lambda: call_state(fw)["modems"] == 1, "the HFP modem back")


def test_music_plays_ducks_under_an_answer_and_resumes(fw):
    assert fw.cmd('sim phone music play "Blue Monday" "New Order"').ok
    seen = fw.events_until(lambda e: e == "music playing: Blue Monday by New Order")
    assert fw.cmd("music now").lines == ["This is Blue Monday by New Order."]
    assert fw.cmd("status --json").json()["music"]["status"] == "playing"
    assert phone_music(fw).endswith("volume 100/127")

    assert fw.cmd("ask what time is it").ok              # the glasses speak: music ducks
    seen = fw.events_until(lambda e: e == "music ducked under speech", seen=seen)
    seen = fw.events_until(lambda e: e == "music back up after speech", seen=seen)
    assert "ducked under speech" in " ".join(seen) and phone_music(fw).endswith("volume 100/127")

    assert fw.cmd("music volume 50").lines == ["Music volume 50 percent."]
    assert phone_music(fw).endswith("volume 64/127")
    assert fw.cmd("ask volume up").ok                     # "volume up" while music plays
    wait_for(lambda: phone_music(fw).endswith("volume 80/127"), "the music louder")
    playing_w = fw.cmd("mode --json").json()["power_w"]     # the speaker plays the music
    assert fw.cmd("music pause").ok
    wait_for(lambda: phone_music(fw).startswith("music paused"), "paused on the phone")
    wait_for(lambda: fw.cmd("mode --json").json()["power_w"] < playing_w, "the speaker's watts off")
    assert fw.cmd('sim phone music queue "Ceremony" "New Order"').ok
    assert fw.cmd("music next").ok
    fw.events_until(lambda e: e == "music track Ceremony by New Order", seen=seen)
    wait_for(lambda: phone_music(fw).startswith("music playing: Ceremony"), "the next track")


def test_a_call_pauses_music_and_it_resumes_after(fw):
    assert fw.cmd('sim phone music play "Atmosphere" "Joy Division"').ok
    wait_for(lambda: phone_music(fw).startswith("music playing: Atmosphere"), "music playing")
    assert fw.cmd("sim phone call Frank").ok
    seen = fw.events_until(lambda e: e.startswith("call incoming from Frank"))
    wait_for(lambda: phone_music(fw).startswith("music paused"), "music paused by the call")
    assert fw.cmd("call answer").ok
    assert fw.cmd("call hangup").lines == ["Call ended."]
    fw.events_until(lambda e: e == "call ended: you hung up", seen=seen)
    wait_for(lambda: phone_music(fw).startswith("music playing: Atmosphere"), "music back")


def test_bad_input_is_refused_clearly(fw):
    for line, said in [("music volume loud", "PERCENT must be a number"),
                       ("music volume 300", "outside 0..100"),
                       ("call dial 123", "usage: call"),
                       ("sim phone call", "usage: sim phone")]:
        reply = fw.cmd(line)
        assert not reply.ok and said in reply.error, (line, reply.error)


def test_the_call_words_are_commands():
    for said, action in [("answer", "call_answer"), ("hang up", "call_hangup"),
                         ("reject the call", "call_reject"), ("what song is this", "music_now"),
                         ("next song", "music_next"), ("pause the music", "music_pause")]:
        assert match(said).action == action, said


@pytest.fixture
def voice_fw(tmp_path, test_models):
    fw = RunningFirmware(tmp_path, extra=("--models", str(test_models)))
    assert fw.cmd("events on").ok
    # Both workers: the model worker loading beside a call (a CPU-bound minute on a busy
    # 2-core machine) could make the voice worker miss the one "answer" said.
    fw.wait_workers_ready()
    wait_for(lambda: fw.cmd("call --json").json()["modems"] == 1, "the phone's HFP modem")
    yield fw
    fw.stop()


def test_by_voice_during_a_call_without_the_wake_word_and_the_assistant_keeps_quiet(voice_fw):
    fw = voice_fw
    before = fw.cmd("sim speaker").lines
    assert fw.cmd("sim phone call Grace").ok
    seen = fw.events_until(lambda e: e.startswith("call incoming from Grace"))
    # The wearer answers once "Call from Grace." has been said (its file lands when it has
    # played): said over it, the sim's echo of the ring turns "answer" into "answer the".
    wait_for(lambda: fw.cmd("sim speaker").lines != before, "the ring's announcement")
    assert fw.cmd("sim say answer").ok
    seen = fw.events_until(lambda e: e == "call answered: talking with Grace", seen=seen, timeout_s=20)
    assert fw.cmd("sim say hey jarvis, what time is it").ok  # to the caller, not the glasses
    time.sleep(3.0)
    assert fw.cmd("sim say hang up").ok
    seen = fw.events_until(lambda e: e == "call ended: you hung up", seen=seen, timeout_s=20)
    assert not any(e.startswith("assistant listening") for e in seen), seen


def test_what_is_heard_during_a_call_is_what_the_intents_say():
    from glasses_firmware.firmware.phone.call_voice import HEARD
    for action, phrases in HEARD.items():
        assert all(match(p).action == action for p in phrases), action


def test_the_call_table_and_its_diagram():
    from glasses_firmware.firmware.phone import calls
    machine = calls.CallMachine()
    assert not machine.fire("answered", "a late signal") and machine.state == calls.IDLE
    assert machine.fire("incoming", "from Ada") and machine.fire("answered", "picked up")
    assert machine.fire("ended", "the caller hung up") and machine.state == calls.IDLE
    text = calls.mermaid()
    for (src, event), dst in calls.TRANSITIONS.items():
        assert f"    {src} --> {dst} : {event}" in text
    doc = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
    assert text in doc.read_text()
