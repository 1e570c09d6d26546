"""Console pieces without a process: line framing (property-based) and the PIN gate."""

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glasses_firmware.drivers.clock import SimClock
from glasses_firmware.drivers.errors import ConfigError
from glasses_firmware.firmware.console.lines import MAX_LINE_BYTES, LineReader
from glasses_firmware.firmware.console.pin import LOCKOUT_S, PinGate, hash_pin, verify_pin


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=3000), max_size=12))
def test_reader_never_raises_and_frames_every_newline(chunks):
    reader = LineReader()
    lines = []
    for chunk in chunks:
        lines += reader.feed(chunk)
    assert len(lines) == b"".join(chunks).count(b"\n")
    for line in lines:
        assert (line.text is None) != (line.error is None)
        if line.text is not None:
            assert len(line.text.encode()) <= MAX_LINE_BYTES
            assert all(c == "\t" or unicodedata.category(c) != "Cc" for c in line.text)
    assert len(reader._buf) <= MAX_LINE_BYTES + 1   # bounded, whatever came in


@given(text=st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc")), max_size=300),
       split=st.integers(0, 300))
def test_reader_passes_printable_text_split_anywhere(text, split):
    data = text.encode() + b"\r\n"
    k = min(split, len(data))
    reader = LineReader()
    lines = reader.feed(data[:k]) + reader.feed(data[k:])
    if len(text.encode()) <= MAX_LINE_BYTES:
        assert [(line.text, line.error) for line in lines] == [(text.strip(), None)]
    else:
        assert lines[0].error.startswith("line longer")


def test_overlong_line_is_one_error_then_next_line_is_fine():
    reader = LineReader()
    out = reader.feed(b"a" * 5000) + reader.feed(b"b" * 5000 + b"\nstatus\n")
    assert [line.error is not None for line in out] == [True, False]
    assert out[1].text == "status"


def test_pin_hash_roundtrip_and_bad_hash():
    h = hash_pin("2468", salt=b"s" * 16)
    assert h.startswith("scrypt$") and "2468" not in h
    assert verify_pin("2468", h) and not verify_pin("2469", h)
    with pytest.raises(ConfigError, match="4 to 12 digits"):
        hash_pin("12")
    with pytest.raises(ConfigError, match="glasses pin-hash"):
        verify_pin("1234", "plain-text-pin")


def test_pin_lockout_runs_on_the_injected_clock():
    clock = SimClock(realtime=False)
    gate = PinGate(hash_pin("2468"), clock)
    assert gate.allows("help") and gate.allows("version") and gate.allows("login")
    assert not gate.allows("status") and not gate.allows("sim")
    for i in range(4):
        assert "wrong PIN" in gate.login("0000")
    assert "locked for 60 s" in gate.login("1111")
    assert "locked" in gate.login("2468")          # even the right PIN, during lockout
    clock.advance(LOCKOUT_S - 1)
    assert "try again in 1 s" in gate.login("2468")
    clock.advance(1.5)
    assert gate.login("2468") is None
    assert gate.allows("status")
    gate.logout()
    assert not gate.allows("status")


def test_no_pin_means_open():
    gate = PinGate("", SimClock(realtime=False))
    assert gate.allows("status") and gate.login("anything") is None
