"""Selftest: probe every device with a deadline and report one row each."""

import json
import threading
from dataclasses import asdict, dataclass

from glasses_firmware.drivers.errors import DeviceMissing, GlassesError


@dataclass(frozen=True)
class Row:
    device: str
    ok: bool
    detail: str
    required: bool
    missing: bool = False      # this machine lacks what the device needs (detail says what)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def probe(name: str, fn, required: bool, timeout_s: float) -> Row:
    """Run one probe in a helper thread so a hung device cannot hang selftest."""
    result: list = []

    def target():
        try:
            result.append((True, fn(), False))
        except (GlassesError, OSError, RuntimeError, ValueError) as e:
            result.append((False, _one_line(e), isinstance(e, DeviceMissing)))

    t = threading.Thread(target=target, name=f"probe-{name}", daemon=True)
    t.start()
    t.join(timeout_s)
    if not result:
        return Row(name, False, f"no answer within {timeout_s:g} s", required)
    ok, detail, missing = result[0]
    return Row(name, ok, detail, required, missing)


def run(board, timeout_s: float = 5.0) -> list[Row]:
    return [probe(name, fn, required, timeout_s) for name, (fn, required) in board.probes().items()]


def failed(rows: list[Row]) -> bool:
    """True when a required device failed (selftest exits 1)."""
    return any(r.required and not r.ok for r in rows)


def to_json(rows: list[Row]) -> str:
    return json.dumps({"ok": not failed(rows), "devices": [asdict(r) for r in rows]})


def to_text(rows: list[Row]) -> str:
    width = max(len(r.device) for r in rows)
    lines = []
    for r in rows:
        status = "ok" if r.ok else "MISS" if r.missing else ("FAIL" if r.required else "warn")
        lines.append(f"{r.device:<{width}}  {status:<4}  {r.detail}")
    return "\n".join(lines)
