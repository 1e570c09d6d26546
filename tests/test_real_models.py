"""The glasses on the real models, as a user meets them: `glasses run --board sim` with the
installed defaults (Qwen2.5-Coder 0.5B int4, Whisper base int8, the Piper voice), questions
typed and spoken, commands said politely enough that the grammar lets them pass to the ASR."""

import time

import pytest

from glasses_firmware.models.manifest import default_models_dir
from tests.conftest import RunningFirmware

pytestmark = pytest.mark.skipif(default_models_dir() is None,
                                reason="real models not installed: run `glasses models install`")


@pytest.fixture(scope="module")
def real_fw(tmp_path_factory):
    fw = RunningFirmware(tmp_path_factory.mktemp("real"), extra=("--models", str(default_models_dir())))
    fw.wait_workers_ready()
    assert fw.cmd("events on").ok
    yield fw
    fw.stop()


def test_open_questions_get_short_correct_answers_in_english_and_chinese(real_fw):
    reply = real_fw.cmd("ask What is the capital of France?", timeout_s=60)
    assert reply.ok and "Paris" in " ".join(reply.lines)
    reply = real_fw.cmd("ask 中国的首都是哪里？", timeout_s=60)
    assert reply.ok and "北京" in " ".join(reply.lines)
    events = real_fw.events_until(lambda e: e.startswith("speak ") and "北京" in e)
    assert sum(e.startswith("assistant answered") for e in events) >= 1


def test_a_spoken_question_is_heard_and_answered(real_fw):
    fw = real_fw
    assert fw.cmd("sim button action click").ok
    events = fw.events_until(lambda e: e.startswith("assistant listening (button)"))
    assert fw.cmd("sim say what is the capital of france").ok
    events += fw.events_until(lambda e: e.startswith("assistant answered"), timeout_s=40)
    heard = next(e for e in events if e.startswith("assistant heard")).lower()
    # espeak-ng's "France" is sometimes heard as "friends": the question, not the exact word.
    assert "capital of" in heard
    if "france" in heard:
        assert any(e.startswith("speak ") and "Paris" in e for e in events)
    assert any(e.startswith("speak ") for e in events)


def test_a_polite_command_the_grammar_misses_still_acts_through_the_asr(real_fw):
    fw = real_fw
    photos = len(list((fw.data_dir / "photos").glob("*.jpg")))
    assert fw.cmd("sim say hey jarvis").ok
    events = fw.events_until(lambda e: e.startswith("assistant listening (wake word)"))
    assert fw.cmd("sim say could you take a picture for me").ok
    events += fw.events_until(lambda e: e == "speak Photo taken.", timeout_s=40)
    assert any(e == "assistant command photo" for e in events)
    assert len(list((fw.data_dir / "photos").glob("*.jpg"))) == photos + 1


def test_speech_nearby_that_is_not_a_command_acts_on_nothing(real_fw):
    fw = real_fw
    photos = len(list((fw.data_dir / "photos").glob("*.jpg")))
    assert fw.cmd("sim button action click").ok
    fw.events_until(lambda e: e.startswith("assistant listening (button)"))
    assert fw.cmd("sim say how do I take a good photo at night").ok
    events = fw.events_until(lambda e: e.startswith("assistant answered")
                          or e.startswith("assistant command"), timeout_s=40)
    assert not any(e.startswith("assistant command") for e in events)
    assert len(list((fw.data_dir / "photos").glob("*.jpg"))) == photos
