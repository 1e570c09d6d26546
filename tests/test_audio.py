"""Audio HAL: ring buffer, resampler, and Microphones/Speaker running on the sim card."""

import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from glasses_firmware.drivers.audio import Microphones, level_dbfs
from glasses_firmware.drivers.speaker import Speaker
from glasses_firmware.drivers.clock import SimClock
from glasses_firmware.drivers.errors import BusError, ConfigError, DeviceError, DeviceTimeout, GlassesError
from glasses_firmware.drivers.resample import Resampler, resample
from glasses_firmware.drivers.ringbuffer import RingBuffer
from glasses_firmware.drivers.sim.audio import (SimAudioSource, list_played, read_wav, sim_input_stream_factory,
                               sim_output_stream_factory)


def tone(freq_hz, rate_hz, duration_s, amplitude=0.5):
    t = np.arange(round(rate_hz * duration_s)) / rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def peak_hz(x, rate_hz):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * rate_hz / len(x)


def amplitude(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))) * np.sqrt(2))


def write_wav(path, samples, rate_hz, width=2):
    pcm = np.round(np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate_hz)
        w.writeframes(pcm.tobytes() if width == 2 else bytes(len(pcm)))
    return path


def wait_until(predicate, timeout_s=2.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


class Amp:
    """Records on/off like a gpiozero DigitalOutputDevice on GPIO16 would switch."""

    def __init__(self):
        self.calls = []

    def on(self):
        self.calls.append("on")

    def off(self):
        self.calls.append("off")


@pytest.fixture
def clock():
    return SimClock(realtime=True)


@pytest.fixture
def source(clock):
    return SimAudioSource(clock)


@pytest.fixture
def mics(source, clock):
    m = Microphones(sim_input_stream_factory(source, clock), block_frames=480, clock=clock)
    yield m
    m.close()


@pytest.fixture
def speaker_dir(tmp_path):
    return tmp_path / "sim" / "speaker"


@pytest.fixture
def amp():
    return Amp()


@pytest.fixture
def speaker(speaker_dir, clock, amp):
    s = Speaker(sim_output_stream_factory(speaker_dir, clock), amp_enable=amp,
                block_frames=480, clock=clock)
    yield s
    s.close()


# --- ring buffer -------------------------------------------------------------------

def test_ring_overflow_drops_oldest_and_counts():
    ring = RingBuffer(8, 1, np.int32)
    ring.write(np.arange(6))
    ring.write(np.arange(6, 12))  # 12 frames into 8: 0..3 are lost
    assert ring.overruns == 1 and ring.dropped_frames == 4
    assert ring.available == 8
    assert ring.read(100)[:, 0].tolist() == list(range(4, 12))
    ring.write(np.arange(100, 120))  # one write bigger than the ring keeps its tail
    assert ring.read(8)[:, 0].tolist() == list(range(112, 120))
    assert ring.overruns == 2


def test_ring_wraps_and_latest_does_not_consume():
    ring = RingBuffer(5, 2)
    for i in range(4):
        ring.write(np.full((3, 2), i, np.float32))
        got = ring.read(3)
        assert got.shape == (3, 2) and (got == i).all()
    ring.write(np.array([[1, 2], [3, 4]], np.float32))
    assert ring.latest(1).tolist() == [[3, 4]]
    assert ring.available == 2 and ring.read(5).shape == (2, 2)
    assert ring.read(5).shape == (0, 2)


# --- resampler ---------------------------------------------------------------------

@pytest.mark.parametrize("in_hz,out_hz,channels", [(48000, 16000, 1), (22050, 48000, 2),
                                                   (16000, 48000, 1), (44100, 16000, 2)])
def test_resampler_streaming_equals_one_shot(in_hz, out_hz, channels):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20000, channels)).astype(np.float32)
    whole = Resampler(in_hz, out_hz, channels).process(x)
    r = Resampler(in_hz, out_hz, channels)
    cuts = np.sort(rng.integers(0, len(x), 40))
    parts = [r.process(part) for part in np.split(x, cuts)]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)


def test_resampler_keeps_tone_frequency_and_amplitude():
    y = resample(tone(1000, 48000, 0.5), 48000, 16000)
    assert len(y) == 8000
    assert peak_hz(y, 16000) == pytest.approx(1000, abs=4)
    assert amplitude(y[200:-200]) == pytest.approx(0.5, rel=0.01)


@pytest.mark.parametrize("freq_hz", [8500, 10000, 12000, 20000])
def test_resampler_rejects_above_output_nyquist(freq_hz):
    y = resample(tone(freq_hz, 48000, 0.5, amplitude=1.0), 48000, 16000)
    assert 20 * np.log10(amplitude(y[200:-200])) < -40


def test_resampler_cost():
    """Not an assertion: prints what 1 s of 48 kHz stereo -> 16 kHz mono costs."""
    x = np.random.default_rng(0).standard_normal((48000, 2)).astype(np.float32)
    mix = np.full(2, 0.5, np.float32)
    costs = {}
    for block in (48000, 960):
        best = float("inf")
        for _ in range(5):
            r = Resampler(48000, 16000, 1)
            t0 = time.perf_counter()
            for i in range(0, len(x), block):
                r.process(x[i : i + block] @ mix)
            best = min(best, time.perf_counter() - t0)
        costs[block] = best * 1e3
    print(f"\nresampler 48k stereo -> 16k mono per second of audio: "
          f"{costs[48000]:.2f} ms in one call, {costs[960]:.2f} ms in 20 ms blocks")


# --- microphones -------------------------------------------------------------------

def test_wav_through_microphones_comes_out_as_16k_speech(mics, source, tmp_path):
    path = write_wav(tmp_path / "a440.wav", tone(440, 22050, 0.4), 22050)
    mics.start()
    source.play_wav(path)
    speech = mics.read_speech(4000, timeout_s=2.0)  # 250 ms
    assert speech.dtype == np.float32 and speech.shape == (4000,)
    assert peak_hz(speech, 16000) == pytest.approx(440, abs=8)
    assert amplitude(speech[-2000:]) == pytest.approx(0.5, rel=0.05)
    more = mics.read_speech(1000, timeout_s=2.0)  # continues where the last read ended
    assert more.shape == (1000,)


def test_microphones_hear_only_the_noise_floor_otherwise(mics):
    mics.start()
    frames = mics.read(2400, timeout_s=2.0)
    assert frames.shape == (2400, 2) and frames.dtype == np.float32
    assert -95 < level_dbfs(frames) < -85
    assert -95 < mics.level_dbfs() < -85
    assert mics.probe().startswith("48000 Hz x2, level -9")


def test_probe_leaves_the_stream_as_it_found_it(mics):
    assert not mics.running
    detail = mics.probe(timeout_s=1.0)
    assert not mics.running and "dBFS" in detail  # selftest must not leave mics powered
    mics.start()
    mics.probe(timeout_s=1.0)
    assert mics.running


def test_gone_device_is_a_bus_error_and_recovers(mics, source):
    source.fault = "gone"
    with pytest.raises(BusError, match="microphones: open stream failed"):
        mics.start()
    assert not mics.running
    source.fault = None
    mics.start()
    assert mics.read(480, timeout_s=1.0).shape == (480, 2)


def test_stalled_card_times_out_then_recovers(mics, source):
    mics.start()
    mics.read(480, timeout_s=1.0)
    source.fault = "timeout"
    time.sleep(0.03)  # let in-flight blocks land
    mics.read(mics._ring.available, timeout_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match="microphones: only 0 of 4800 frames"):
        mics.read(4800, timeout_s=0.1)
    assert time.monotonic() - t0 < 0.5
    with pytest.raises(GlassesError):
        mics.probe(timeout_s=0.1)
    source.fault = None
    assert mics.read(480, timeout_s=1.0).shape == (480, 2)


def test_garbage_fails_probe(mics, source):
    source.fault = "garbage"
    with pytest.raises(DeviceError, match="implausible level"):
        mics.probe()
    source.fault = None
    time.sleep(0.15)  # the 100 ms level window must clear the noise
    assert "dBFS" in mics.probe()


def test_unserviced_microphones_count_overruns(source, clock):
    m = Microphones(sim_input_stream_factory(source, clock), block_frames=480,
                    buffer_s=0.02, clock=clock)
    m.start()
    wait_until(lambda: m.overruns >= 2)
    m.close()
    m.close()
    with pytest.raises(DeviceError, match="closed"):
        m.start()


def test_native_errors_are_translated_in_one_place():
    class PortAudioError(Exception):
        pass

    def factory(**kw):
        raise PortAudioError("Error opening InputStream: Invalid device [PaErrorCode -9996]")

    with pytest.raises(BusError, match="Invalid device") as info:
        Microphones(factory).start()
    assert isinstance(info.value, OSError)
    with pytest.raises(ConfigError):
        Microphones(factory, sample_format="int24")


def test_source_names_bad_files(source, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    with pytest.raises(ConfigError, match="notes.txt"):
        source.play_wav(bad)
    eight_bit = write_wav(tmp_path / "u8.wav", np.zeros(100), 8000, width=1)
    with pytest.raises(ConfigError, match="u8.wav: 8-bit"):
        source.play_wav(eight_bit)


# --- speaker -----------------------------------------------------------------------

def test_play_writes_a_wav_at_device_rate_with_volume(speaker, speaker_dir, amp):
    speaker.volume = 0.5
    pb = speaker.play(tone(1000, 22050, 0.1, amplitude=0.8), 22050)
    assert pb.wait(2.0) and not pb.cancelled and pb.error is None
    wait_until(lambda: not speaker.streaming and list_played(speaker_dir))
    [path] = list_played(speaker_dir)
    assert path.name == "0001.wav"
    audio, rate_hz = read_wav(path)
    assert rate_hz == 48000 and audio.shape[1] == 2
    loud = np.flatnonzero(np.abs(audio[:, 0]) > 0.05)
    assert (loud[-1] - loud[0]) / rate_hz == pytest.approx(0.1, abs=0.002)
    assert 0.1 <= len(audio) / rate_hz < 0.25  # plus at most a few blocks of silence
    assert amplitude(audio[loud[0] + 500 : loud[-1] - 500, 0]) == pytest.approx(0.4, rel=0.02)
    assert amp.calls == ["on", "off"]


def test_playbacks_play_in_order_in_one_run(speaker, speaker_dir):
    first = speaker.play(tone(500, 48000, 0.05), 48000)
    second = speaker.play(tone(2000, 48000, 0.05), 48000)
    assert speaker.is_playing
    assert second.wait(2.0) and first.done
    wait_until(lambda: not speaker.streaming and list_played(speaker_dir))
    audio, _ = read_wav(list_played(speaker_dir)[0])
    loud = np.flatnonzero(np.abs(audio[:, 0]) > 0.05)
    start = loud[0]
    assert peak_hz(audio[start : start + 2400, 0], 48000) == pytest.approx(500, abs=25)
    assert peak_hz(audio[start + 2400 : start + 4800, 0], 48000) == pytest.approx(2000, abs=25)


def test_stop_cuts_a_long_playback_short(speaker, speaker_dir, amp):
    long = speaker.play(tone(440, 48000, 3.0), 48000)
    queued = speaker.play(tone(440, 48000, 1.0), 48000)
    time.sleep(0.05)
    speaker.stop()
    assert long.done and long.cancelled and queued.cancelled
    assert not speaker.is_playing and not speaker.streaming
    assert amp.calls == ["on", "off"]
    audio, rate_hz = read_wav(list_played(speaker_dir)[0])
    assert len(audio) / rate_hz < 0.5


def test_wav_numbers_continue_and_clipping_never_wraps(speaker, speaker_dir):
    speaker_dir.mkdir(parents=True)
    (speaker_dir / "0007.wav").write_bytes(b"")
    speaker.volume = 1.0
    pb = speaker.play(np.full((2400, 2), 3.0, np.float32), 48000)
    assert pb.wait(2.0)
    wait_until(lambda: len(list_played(speaker_dir)) == 2)
    audio, _ = read_wav(speaker_dir / "0008.wav")
    assert audio.max() == pytest.approx(1.0, abs=1e-4) and audio.min() >= 0


def test_volume_range_probe_and_close(speaker, amp):
    with pytest.raises(ValueError):
        speaker.volume = 1.5
    with pytest.raises(ValueError):
        speaker.volume = float("nan")
    assert speaker.probe().startswith("48000 Hz x2, volume 0.80")
    speaker.close()
    speaker.close()
    with pytest.raises(DeviceError, match="closed"):
        speaker.play(np.zeros(10, np.float32), 48000)


def test_speaker_open_failure_fails_the_playback_and_switches_amp_off(amp):
    def factory(**kw):
        raise OSError(19, "No such device")

    s = Speaker(factory, amp_enable=amp)
    with pytest.raises(BusError, match="speaker: open stream failed"):
        s.play(np.zeros(100, np.float32), 48000)
    assert amp.calls == ["on", "off"] and not s.is_playing


def test_gpiozero_output_as_amp_enable(speaker_dir, clock):
    from gpiozero import DigitalOutputDevice
    from gpiozero.pins.mock import MockFactory

    pin_factory = MockFactory()
    amp = DigitalOutputDevice(16, pin_factory=pin_factory)
    seen = []
    s = Speaker(sim_output_stream_factory(speaker_dir, clock), amp_enable=amp,
                block_frames=480, clock=clock)
    try:
        pb = s.play(tone(440, 48000, 0.05), 48000)
        seen.append(pin_factory.pin(16).state)
        assert pb.wait(2.0)
        wait_until(lambda: not s.streaming)
        seen.append(pin_factory.pin(16).state)
    finally:
        s.close()
        amp.close()
    assert seen == [1, 0]


def test_threads_do_not_leak(speaker, mics):
    before = threading.active_count()
    mics.start()
    speaker.play(tone(440, 48000, 0.02), 48000).wait(2.0)
    mics.stop()
    wait_until(lambda: not speaker.streaming)
    wait_until(lambda: threading.active_count() <= before)


def test_long_playback_survives_and_dead_output_fails_without_hanging(speaker_dir, clock, amp):
    s = Speaker(sim_output_stream_factory(speaker_dir, clock), amp_enable=amp,
                block_frames=480, clock=clock, stall_timeout_s=0.08)
    pb = s.play(tone(440, 48000, 0.3), 48000)  # several stall windows, steady progress
    assert pb.wait(2.0) and pb.error is None and not pb.cancelled
    s.close()

    class DeadStream:  # opens fine, then the card never asks for data
        def start(self):
            pass

        def stop(self):
            pass

        def close(self):
            pass

    amp.calls.clear()
    s = Speaker(lambda **kw: DeadStream(), amp_enable=amp, clock=clock, stall_timeout_s=0.08)
    pb = s.play(tone(440, 48000, 0.05), 48000)
    assert pb.wait(2.0)
    assert isinstance(pb.error, DeviceTimeout) and "stalled" in str(pb.error)
    wait_until(lambda: not s.streaming)
    assert amp.calls == ["on", "off"]
    s.close()


def test_driver_does_not_import_sounddevice():
    import subprocess
    import sys

    code = "import sys, drivers.audio, drivers.sim.audio; print('sounddevice' in sys.modules)"
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True, cwd=repo)
    assert out.stdout.strip() == "False"
