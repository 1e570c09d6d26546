"""Bad input at scale (docs/contracts.md, console protocol): a bounded fuzz campaign, then each family of
hostile argument on its own, asserting a clear ERR and a firmware that still answers.

The full campaign (100,000 lines) is `python -m glasses_firmware.firmware.tools.fuzz 100000`; its numbers
are in docs/reliability.md. The PIN gate's lockout arithmetic is tested on the injected
clock in test_console_units.py; here it is checked end to end, through the pty.
"""

import pytest

from glasses_firmware.firmware.tools import fuzz
from tests.conftest import ROOT, RunningFirmware


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return fuzz.make_files(tmp_path_factory.mktemp("hostile"))


def refused(fw, line: str, *says: str) -> str:
    """`line` gets ERR naming the problem (every one of `says`), and the firmware still answers."""
    reply = fw.cmd(line)
    assert not reply.ok, f"{line!r} was accepted: {reply.lines}"
    assert "internal error" not in reply.error, reply.error
    for text in says:
        assert text in reply.error, f"{line!r}: {reply.error!r} does not say {text!r}"
    assert fw.cmd("version").ok and fw.proc.poll() is None
    return reply.error


@pytest.mark.slow
def test_a_bounded_campaign_finds_nothing(tmp_path):
    # Every command with every hostile argument (about 8,600 lines), then random lines, over
    # whose second half RSS must stay flat.
    res = fuzz.run_lines(lines=13_000, seed=7, seconds=100, progress=lambda *a: None,
                         probe_every=100, burst_every=250, workdir=str(tmp_path))
    print(fuzz.summary(res))
    assert res["sent"] >= res["hostile_lines"] + 3_000, fuzz.summary(res)
    assert fuzz.failures(res) == [], fuzz.summary(res)
    assert res["crashes"] == res["hangs"] == res["lost_lines"] == 0
    assert res["bursts"] >= 1 and res["exit_code"] == 0


@pytest.mark.parametrize("line, says", [
    ("sim battery nan", "outside 0..100"), ("sim battery -1", "outside 0..100"),
    ("sim battery 1e308", "outside 0..100"), ("sim temp inf", "outside -40..125"),
    ("sim advance -1", "between 0 and 604800"), ("sim advance nan", "between 0 and 604800"),
    ("capture burst 99999999999", "choose 1 to 20"), ("capture burst -3", "usage"),
    ("capture video 1e308", "choose 1 to 600"), ("capture video nan", "not a number of seconds"),
    ("capture interval -inf", "not a number of seconds"), ("capture interval 0", "at least 2 s"),
    ("log -5", "whole number"), ("log ²", "whole number"), ("capture burst ²", "usage"),
    ("pay log 0", "1 to 1000"), ("pay log 99999999999999999999", "1 to 1000"),
    ("pay nan", "not an amount"), ("pay -5 USD", "not an amount"), ("pay 1e308", "not an amount"),
])
def test_hostile_numbers(shared_firmware, line, says):
    refused(shared_firmware, line, says)


@pytest.mark.parametrize("line, says", [
    ("sim mic /etc/passwd", "not a PCM WAV file"),
    ("sim mic ../../../../../etc/passwd", "not a PCM WAV file"),
    ("sim scene /etc/shadow", "sim scene"),
    ("sim mic /dev/zero", "not a regular file"), ("sim scene /dev/zero", "not a regular file"),
    ("sim scene /proc/self/mem", "not a readable image"),
    ("notes show ../../etc/passwd", "notes list"), ("notes show /etc/passwd", "no recording"),
    ("sim mic " + "x" * 400, "File name too long"),
])
def test_paths_outside_the_data_dir_are_refused_or_read_only(shared_firmware, line, says):
    # Nothing on the console writes to a path it is given; `sim mic` and `sim scene` are the
    # test bench's own hooks (sim board only) and read host files, refusing what is not audio
    # or an image, special files included.
    refused(shared_firmware, line, says)


@pytest.mark.parametrize("name, says", [
    ("not_wav", "not a PCM WAV file"), ("zero_frame_wav", "no frames"),
    ("six_channel_96k_wav", "6 channels"), ("eight_bit_wav", "8-bit samples"),
    ("one_hz_wav", "1 Hz audio"), ("huge_rate_wav", "Hz audio"), ("zero_rate_wav", "0 Hz"),
    ("fifo", "not a regular file"), ("folder_bad_images", "not a regular file"),
    ("link_to_dev_zero", "not a regular file"), ("garbage_png", "not a PCM WAV file"),
])
def test_bad_wav_files(shared_firmware, files, name, says):
    error = refused(shared_firmware, f"sim mic {files[name]}", says)
    assert "give" in error          # ... and what to try


def test_a_truncated_wav_plays_what_is_there(shared_firmware, files):
    for name in ("truncated_wav", "lying_header_wav", "good_wav"):
        assert shared_firmware.cmd(f"sim mic {files[name]}").ok


@pytest.mark.parametrize("name, says", [
    ("garbage_png", "not a readable image"), ("garbage_jpg", "not a readable image"),
    ("truncated_png", "truncated"), ("empty_png", "not a readable image"),
    ("bomb_png", "decompression bomb"), ("big_png", "more than 64 MP"),
    ("fifo", "not a regular file"), ("link_to_dev_zero", "not a regular file"),
    ("empty_folder", "no image files"), ("folder_bad_images", "not a readable image"),
    ("not_wav", "not a readable image"),
])
def test_bad_images(shared_firmware, files, name, says):
    error = refused(shared_firmware, f"sim scene {files[name]}", says)
    assert "give" in error
    assert shared_firmware.cmd(f"sim scene {files['good_png']}").ok
    assert shared_firmware.cmd("sim scene pattern").ok


def test_hostile_words_for_every_command(shared_firmware):
    # One hostile line per registered command and sim subcommand: each gets a clear ERR.
    commands, subs = fuzz.registry()
    # (`ask` and `sim say` take any text: there it is spoken, see the test below.)
    heads = [c for c in commands if c not in ("sim", "ask")] + \
        [f"sim {s}" for s in subs if s != "say"]
    for head in heads:
        reply = shared_firmware.cmd(f"{head} nan -1 1e308 ../../etc/passwd")
        assert not reply.ok and "internal error" not in reply.error, (head, reply)
        assert any(w in reply.error for w in ("usage", "one of", "choose", "must", "give", "no ")), \
            (head, reply.error)
    assert shared_firmware.cmd("version").ok


def test_speech_text_that_looks_like_an_option_is_spoken(shared_firmware):
    for text in ("-1", "--help", "-w /tmp/x.wav"):
        assert shared_firmware.cmd(f"sim say {text}").ok


def test_pin_lockout_after_five_wrong_tries_through_the_console(tmp_path):
    from glasses_firmware.firmware.console.pin import hash_pin
    board = tmp_path / "pinned.toml"
    text = (ROOT / "boards" / "sim.toml").read_text()
    board.write_text(text.replace('tty = "pty"\n', f'tty = "pty"\npin_hash = "{hash_pin("2468")}"\n'))
    fw = RunningFirmware(tmp_path, board=str(board))
    try:
        for left in (4, 3, 2, 1):
            assert f"{left} tries left" in fw.cmd("login 0000").error
        assert "locked for 60 s after 5 failures" in fw.cmd("login nan").error
        # Locked: even the right PIN is refused, and nothing but help and version runs
        # (`sim advance` cannot be used to skip the lockout).
        assert "locked after 5 wrong PINs; try again in" in fw.cmd("login 2468").error
        assert "console locked" in fw.cmd("sim advance 120").error
        assert "console locked" in fw.cmd("status").error
        assert fw.cmd("version").ok
    finally:
        assert fw.stop() == 0
