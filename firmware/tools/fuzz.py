"""Console fuzzing at scale: random and hostile lines against a sim firmware.

`run_lines` starts `glasses run --board sim` on a temp data dir, makes hostile files
(FIFO, folder, non-WAV, 0-frame / 6-channel 96 kHz / 8-bit / truncated / 1 Hz WAVs,
garbage and truncated images, a 20000x20000 PNG header), sends every registered command
with hostile arguments, then random lines, one at a time (paced: nothing is queued, so
nothing is dropped; bursts are counted against `console.dropped_lines`). After every
reply it checks the process is alive; a `version` probe with a deadline runs every
`probe_every` lines (no reply in time = a hang); RSS and open fds are sampled with it.
A reply `ERR internal error` is a defect too: bad input must get a clear ERR.
"""

import json
import os
import random
import re
import signal
import struct
import sys
import tempfile
import time
import wave
import zlib
from pathlib import Path

from glasses_firmware.drivers.devicekey import KEY_DIR

from .simdriver import SimFirmware

PROMPT = "glasses> "
REPLY_DEADLINE_S = 75.0        # the firmware's own command timeout is 60 s
PROBE_DEADLINE_S = 10.0
# Cheap, stateless: these may come in a burst (queue accounting); the rest is paced.
BURST_MAX = 40

NUMBERS = ["-1", "-0", "0", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e308", "-1e308",
           "1e-320", "99999999999999999999999999", "4294967297", "0x10", "1_000", "²", "١٢",
           "3.5", "", "''", "--", "-h", "--json", "%s%n", "$(reboot)", "`id`", ";ls", "\t"]
WORDS = ["on", "off", "photo", "burst", "video", "interval", "stop", "pause", "resume", "start",
         "list", "show", "search", "latest", "status", "log", "cancel", "confirm", "wallet",
         "product", "approve", "decline", "silent", "en", "zh", "ko", "xx", "imu", "camera",
         "microphones", "fuel_gauge", "nack", "timeout", "garbage", "gone", "clear", "action",
         "power", "click", "double", "press", "release", "ok", "broken", "pattern", "--lang",
         "--translate", "USD", "EUR"]
# Commands whose cost is seconds (speech synthesis, long presses, model lists): rarer.
SLOW = ("sim say", "selftest", "models", "sim button")
HOUSEKEEPING = ("capture stop", "capture interval stop", "record stop", "translate off",
                "pay cancel", "sim fault camera clear", "sim fault microphones clear",
                "sim fault imu clear", "sim fault fuel_gauge clear", "sim wear on",
                "capture resume", "sim battery 80", "sim temp 30", "sim scene pattern", "events off")


class Hang(Exception):
    pass


class Console:
    """A raw client on the sim pty (pyserial puts it in raw mode): bytes in, replies out."""

    def __init__(self, tty: str):
        import serial
        self.serial = serial.Serial(tty, 115200, timeout=0.05)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.serial.write(data)

    def reply(self, deadline_s: float) -> tuple[list[str], str | None]:
        """Body lines and the ERR text (None for OK) of the next reply; Hang past the deadline."""
        end = time.monotonic() + deadline_s
        lines = []
        while True:
            while b"\n" not in self.buf:
                if time.monotonic() > end:
                    raise Hang(f"no reply within {deadline_s:g} s")
                self.buf += self.serial.read(self.serial.in_waiting or 1)
            raw, _, self.buf = self.buf.partition(b"\n")
            text = raw.decode("utf-8", "replace").rstrip("\r")
            while text.startswith(PROMPT):
                text = text[len(PROMPT):]
            if text == "OK":
                return lines, None
            if text.startswith("ERR "):
                return lines, text[4:]
            if text and not text.startswith("EVT "):
                lines.append(text)

    def command(self, line: bytes, deadline_s: float = REPLY_DEADLINE_S):
        self.send(line + b"\n")
        return self.reply(deadline_s)

    def close(self) -> None:
        self.serial.close()


def make_files(d: Path) -> dict[str, Path]:
    """Hostile input files, made here (nothing downloaded): name -> path."""
    d.mkdir(parents=True, exist_ok=True)
    f = {}

    def wav(name, channels=1, rate=16000, width=2, frames=1600, patch=None):
        p = d / f"{name}.wav"
        with wave.open(str(p), "wb") as w:
            w.setnchannels(channels), w.setsampwidth(width), w.setframerate(rate)
            w.writeframes(bytes(frames * channels * width))
        if patch:
            p.write_bytes(patch(p.read_bytes()))
        f[name] = p

    wav("good_wav")
    wav("zero_frame_wav", frames=0)
    wav("six_channel_96k_wav", channels=6, rate=96000)
    wav("eight_bit_wav", width=1)
    wav("one_hz_wav", rate=1, frames=2000)
    wav("huge_rate_wav", rate=2**31 - 1)
    wav("truncated_wav", patch=lambda b: b[:60])
    wav("lying_header_wav", patch=lambda b: b[:40] + struct.pack("<I", 0xFFFFFFF0) + b[44:])
    wav("zero_rate_wav", patch=lambda b: b[:24] + struct.pack("<I", 0) + b[28:])
    (d / "not_wav.wav").write_bytes(b"this is not audio\n" * 10)
    f["not_wav"] = d / "not_wav.wav"
    (d / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(500))
    f["garbage_png"] = d / "garbage.png"
    (d / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + random.Random(2).randbytes(500))
    f["garbage_jpg"] = d / "garbage.jpg"
    good = _png(64, 48, zlib.compress(b"".join(b"\x00" + bytes(64 * 3) for _ in range(48))))
    (d / "good.png").write_bytes(good)
    f["good_png"] = d / "good.png"
    (d / "truncated.png").write_bytes(good[:len(good) // 2])
    f["truncated_png"] = d / "truncated.png"
    (d / "bomb.png").write_bytes(_png(20000, 20000, zlib.compress(b"\x00" * 1000)))
    f["bomb_png"] = d / "bomb.png"
    (d / "big.png").write_bytes(_png(9000, 9000, zlib.compress(b"\x00" * 1000)))
    f["big_png"] = d / "big.png"
    (d / "empty.png").write_bytes(b"")
    f["empty_png"] = d / "empty.png"
    fifo = d / "fifo.png"
    if not fifo.exists():
        os.mkfifo(fifo)
    f["fifo"] = fifo
    folder = d / "folder"
    folder.mkdir(exist_ok=True)
    (folder / "bad.jpg").write_bytes(b"\xff\xd8 nope")
    f["folder_bad_images"] = folder
    empty = d / "empty_folder"
    empty.mkdir(exist_ok=True)
    f["empty_folder"] = empty
    link = d / "zero_link.wav"
    if not link.is_symlink():
        link.symlink_to("/dev/zero")
    f["link_to_dev_zero"] = link
    return f


def _png(w: int, h: int, idat: bytes) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", idat) + chunk(b"IEND", b"")


OUTSIDE = ["/etc/passwd", "/etc/shadow", "/dev/zero", "/dev/urandom", "/proc/self/mem",
           "/proc/self/environ", "/", "../../../../etc/passwd", "../", "~/.ssh/id_rsa",
           "data/../../x.wav", "/nonexistent/x.wav", "x" * 300]


def registry():
    """Usage strings of the console commands and sim subcommands, by name."""
    from glasses_firmware.firmware.console.sim import SUBCOMMANDS, USAGE
    from glasses_firmware.firmware.console.table import definitions
    sim_usage = {u.split()[1]: u for u in USAGE}
    return ({c.name: c.usage for c in definitions()},
            {n: sim_usage.get(n, f"sim {n}") for n in SUBCOMMANDS})


def hostile_lines(files: dict[str, Path]) -> list[str]:
    """Every command and sim subcommand, each of its words followed by every family of
    hostile argument (numbers, paths outside the data dir, hostile files, over-long)."""
    commands, subs = registry()
    paths = [str(p) for p in files.values()] + OUTSIDE
    heads = {c: u for c, u in commands.items() if c != "sim"}
    heads.update({f"sim {s}": u for s, u in subs.items()})
    out = []
    for head, usage in heads.items():
        words = [""] + sorted(set(re.findall(r"(?<![A-Z])[a-z][a-z_-]+", usage)) - set(head.split()))
        for word in words:
            for arg in NUMBERS + paths + ["x" * 900]:
                out.append(f"{head} {word} {_quote(arg)}".replace("  ", " "))
    return [line for line in out if "long" not in line.split()]


def _quote(arg: str) -> str:
    return "''" if arg == "" else arg if re.fullmatch(r"[^\s'\"\\]+", arg) else f"'{arg}'"


def _slow(line: str) -> bool:
    return line.startswith(SLOW)


def random_line(rng: random.Random, commands: list[str], subs: list[str], files) -> bytes:
    kind = rng.random()
    if kind < 0.25:   # raw bytes: control chars, invalid UTF-8, NULs, over-long
        n = rng.choice([1, 5, 30, 200, 1023, 1024, 1025, 3000, 70000])
        return bytes(b for b in rng.randbytes(n) if b != 0x0A)
    if kind < 0.3:
        return rng.choice([b"", b"\r", b" ", b"\t\t", b"\x00", b"\x1b[A", b"\xc3\x28",
                           b"\xef\xbb\xbfversion", b"version\x7f", "version\u0085".encode(),
                           "\u202eversion".encode(), b"help " + b"a" * 1020])
    words = [rng.choice(commands)]
    if words[0] == "sim" or rng.random() < 0.1:
        words = ["sim", rng.choice(subs)]
    pool = [NUMBERS, WORDS, [str(p) for p in files.values()] + OUTSIDE,
            [rng.choice(commands)], ["'unclosed", '"', "a\\", "x" * rng.randint(1, 900)]]
    for _ in range(rng.randint(0, 4)):
        words.append(_quote(rng.choice(rng.choice(pool))))
    line = " ".join(words)
    if "long" in line or "echo on" in line:  # 2 s presses; echo changes the framing
        line = line.replace("long", "click").replace("echo on", "echo off")
    if _slow(line) and rng.random() < 0.9:
        line = "version"
    return line.encode("utf-8", "surrogatepass")


def rss_kb(pid: int) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    return 0


def _slope(xs, ys) -> float:
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def run_lines(lines: int = 100_000, seed: int = 1, seconds: float = 3600.0, progress=print,
              probe_every: int = 100, burst_every: int = 500, models: str = "none",
              workdir: str | None = None) -> dict:
    """Fuzz a sim firmware's console with `lines` lines (hostile set first); stop early past
    `seconds`. Returns counts, failures (crash, hang, internal error, lost line) and RSS."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="glasses-fuzz-", dir=workdir) as tmp:
        tmp = Path(tmp)
        files = make_files(tmp / "files")
        # The device key beside the data dir is the firmware's own, made at its first boot
        # (docs/encryption.md), not a write a console line asked for.
        before = sorted(p.name for p in tmp.iterdir()) + ["firmware.log", "glasses.tty", KEY_DIR]
        res = {"seed": seed, "lines_planned": lines, "sent": 0, "ok": 0, "err": 0,
               "crashes": 0, "hangs": 0, "internal_errors": [], "lost_lines": 0,
               "dropped_lines": 0, "bursts": 0, "probes": 0, "rss": [], "fds": [],
               "outside_writes": [], "slowest": (0.0, "")}
        fw = SimFirmware(tmp / "data", tmp / "glasses.tty", tmp / "firmware.log", models=models,
                         connect=False)      # the fuzzer's own raw client, below
        try:
            con = Console(str(fw.tty))
            con.command(b"")
            _campaign(con, fw.proc, rng, files, lines, seconds, probe_every, burst_every, res,
                      progress)
            con.close()
            extra = sorted(set(p.name for p in tmp.iterdir()) - set(before) - {"data"})
            res["outside_writes"] = extra
        finally:
            if fw.proc.poll() is None:
                code = fw.stop(timeout_s=20)
                res["exit_code"] = ("killed (did not stop within 20 s of SIGTERM)"
                                    if code == -signal.SIGKILL else code)
            else:
                res["exit_code"] = fw.proc.returncode
                fw.log.close()
            res["log_tail"] = fw.output()[-3000:]
    _rss_stats(res)
    return res


def _campaign(con, proc, rng, files, lines, seconds, probe_every, burst_every, res, progress):
    commands, subs = (sorted(names) for names in registry())
    fixed = hostile_lines(files)
    res["hostile_lines"] = len(fixed)
    started = time.monotonic()
    history: list[bytes] = []
    for i in range(lines):
        if time.monotonic() - started > seconds:
            progress(f"fuzz: time is up after {i} lines")
            break
        line = fixed[i].encode() if i < len(fixed) else random_line(rng, commands, subs, files)
        history = (history + [line])[-20:]
        try:
            if i >= len(fixed) and burst_every and i % burst_every == 0:
                _burst(con, rng, res)
            t0 = time.monotonic()
            _body, err = con.command(line)
            took = time.monotonic() - t0
            res["sent"] += 1
            res["ok" if err is None else "err"] += 1
            if took > res["slowest"][0]:
                res["slowest"] = (round(took, 3), line[:80].decode("utf-8", "replace"))
            if err is not None and "internal error" in err:
                res["internal_errors"].append((line[:120].decode("utf-8", "replace"), err[:200]))
            if i % probe_every == 0:
                _probe(con, proc, res, i)
                for h in HOUSEKEEPING if i % (probe_every * 10) == 0 else ():
                    con.command(h.encode())
            if i and i % 10_000 == 0:
                progress(f"fuzz: {i} lines, {res['err']} ERR, rss {res['rss'][-1][1] / 1024:.1f} MB, "
                         f"{time.monotonic() - started:.0f} s")
        except Hang as e:
            res["hangs"] += 1
            res["failure"] = f"hang: {e} after {history[-3:]}"
            return
        if proc.poll() is not None:
            res["crashes"] += 1
            res["failure"] = f"crash (exit {proc.returncode}) after {history[-3:]}"
            return
    _probe(con, proc, res, res["sent"])
    res["seconds"] = round(time.monotonic() - started, 1)


def _probe(con, proc, res, i):
    _body, err = con.command(b"version", PROBE_DEADLINE_S)
    if err is not None:
        raise Hang(f"version answered ERR {err}")
    body, err = con.command(b"status --json", PROBE_DEADLINE_S)
    status = json.loads(body[0]) if err is None and body else {}
    res["dropped_lines"] = status.get("console", {}).get("dropped_lines", res["dropped_lines"])
    res["probes"] += 1
    res["rss"].append((i, rss_kb(proc.pid)))
    res["fds"].append((i, len(os.listdir(f"/proc/{proc.pid}/fd"))))


def _burst(con, rng, res):
    """Lines written at once: each is answered or counted as dropped, never lost silently."""
    n = rng.randint(2, BURST_MAX)
    before = res["dropped_lines"]
    con.send(b"".join(rng.choice([b"bogus", b"\xff\xfe", b"log x", b"sim battery nan"]) + b"\n"
                      for _ in range(n)))
    answered = 0
    while True:
        try:
            con.reply(2.0)
            answered += 1
        except Hang:
            break
    body, err = con.command(b"status --json", PROBE_DEADLINE_S)
    dropped = json.loads(body[0])["console"]["dropped_lines"] if err is None else before
    res["dropped_lines"] = dropped
    res["bursts"] += 1
    res["lost_lines"] += n - answered - (dropped - before)


def _rss_stats(res):
    rss = res["rss"]
    if not rss:
        return
    kb = [r for _, r in rss]
    # Growth is judged after every command has been used once (the hostile-argument lines
    # come first and warm every feature's buffers: camera frames, queued sim sound), over the
    # second half of what follows; a run too short for that falls back to its second half.
    after = [s for s in rss if s[0] >= res.get("hostile_lines", 0)]
    half = after[len(after) // 2:] if len(after) >= 8 else rss[len(rss) // 2:]
    res["rss_mb"] = {"first": round(kb[0] / 1024, 1), "last": round(kb[-1] / 1024, 1),
                     "max": round(max(kb) / 1024, 1),
                     # growth per 10,000 lines once warm (above)
                     "slope_mb_per_10k_lines": round(_slope([x for x, _ in half],
                                                            [y / 1024 for _, y in half]) * 1e4, 3),
                     "window_lines": half[-1][0] - half[0][0],
                     "window_growth_mb": round((half[-1][1] - half[0][1]) / 1024, 1)}
    fds = [n for _, n in res["fds"]]
    res["fds_first_last_max"] = (fds[0], fds[-1], max(fds))


SLOPE_WINDOW_LINES = 20_000
MAX_SLOPE_MB_PER_10K = 2.0
MAX_SHORT_GROWTH_MB = 8.0


def failures(res: dict) -> list[str]:
    """What went wrong, as sentences; empty when the run was clean."""
    out = []
    if res.get("failure"):
        out.append(res["failure"])
    if res["internal_errors"]:
        out.append(f"{len(res['internal_errors'])} internal errors, first {res['internal_errors'][0]}")
    if res["lost_lines"]:
        out.append(f"{res['lost_lines']} lines neither answered nor counted as dropped")
    if res["outside_writes"]:
        out.append(f"files appeared outside the data dir: {res['outside_writes']}")
    # A slope needs a long window: over a few thousand lines the allocator's noise (a MB or
    # so) reads as tens of MB per 10k. Short runs (the test suite's) bound the growth instead;
    # the 100,000-line soak judges the slope.
    r = res.get("rss_mb", {})
    if r.get("window_lines", 0) >= SLOPE_WINDOW_LINES:
        if r.get("slope_mb_per_10k_lines", 0) > MAX_SLOPE_MB_PER_10K:
            out.append(f"RSS grows: {r}")
    elif r.get("window_growth_mb", 0) > MAX_SHORT_GROWTH_MB:
        out.append(f"RSS grows: {r}")
    return out


def summary(res: dict) -> str:
    r = res.get("rss_mb", {})
    fails = failures(res)
    return "\n".join([
        f"fuzz seed {res['seed']}: {res['sent']} lines ({res.get('hostile_lines', 0)} hostile-argument "
        f"lines first) in {res.get('seconds', '?')} s; {res['ok']} OK, {res['err']} ERR",
        f"crashes {res['crashes']}, hangs {res['hangs']}, internal errors "
        f"{len(res['internal_errors'])}, lines lost {res['lost_lines']} "
        f"({res['bursts']} bursts, {res['dropped_lines']} lines dropped and counted)",
        f"RSS MB first {r.get('first')} last {r.get('last')} max {r.get('max')}, slope "
        f"{r.get('slope_mb_per_10k_lines')} MB per 10k lines (second half); fds first/last/max "
        f"{res.get('fds_first_last_max')}; slowest reply {res['slowest'][0]} s ({res['slowest'][1]!r})",
        f"exit code after SIGTERM {res.get('exit_code')}",
        "result: " + ("PASS" if not fails else "FAIL: " + "; ".join(fails))])


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    result = run_lines(n, seed=int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    print(summary(result))
    sys.exit(1 if failures(result) else 0)
