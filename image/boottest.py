"""`flash.sh boot-test`: boot the built image on an emulated arm64 machine and use it as a user would.

QEMU's virt machine (Debian's qemu-system-aarch64, TCG: no KVM needed) with a Cortex-A76,
4 cores and 4 GB, like a CM5. The kernel, initrd and cmdline.txt are read out of the
image's FAT partition (mtools, no root), and `serial0` in cmdline.txt becomes ttyAMA0, as
the Pi's firmware does. The image's root filesystem is the disk, behind a qcow2 overlay so
the image itself stays as built. The PL011 UART (the board's /dev/ttyAMA0, the glasses'
console) is a pty on the host; the boot log (kernel, and the journal forwarded) goes to a
second serial port, into a file.

Each phase has a deadline and prints its time: first boot (system packages and every
wheel installed offline from the image), glasses.service started (Type=notify: after
READY=1) with watchdog pings, then over the UART with the project's host tools: version,
status, selftest --json (what the virt machine lacks reported missing), `glasses diag`,
the assistant answering on the image's own models, a clean power-off, and a second boot
that skips the first-boot work. A failure prints the last lines of the boot log and the
failing unit's lines.
"""

import json
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from glasses_firmware import boards
from . import disk, rootfs, verify
from .fatfs import FatPartition
from .tools import FlashError, require, say

REPO = Path(__file__).resolve().parent.parent
QEMU = ["-M", "virt", "-cpu", "cortex-a76", "-smp", "4", "-m", "4G", "-nic", "none",
        "-display", "none", "-monitor", "none"]
LOG_CONSOLE = "ttyS0"          # the PCI 16550 carrying the boot log (8250_pci is built in)
QUESTION = "what is the capital of France?"
OFFLOAD_PROBE = "192.0.2.10"    # TEST-NET-1: never routed; -nic none has no route anyway


@dataclass
class Deadlines:
    """Seconds each phase may take under emulation on a 2-core machine (TCG is ~10x slower)."""
    firstboot: float = 50 * 60
    service: float = 15 * 60
    console: float = 5 * 60
    model: float = 40 * 60
    answer: float = 20 * 60
    poweroff: float = 5 * 60
    second_boot: float = 10 * 60


@dataclass
class Report:
    phases: dict[str, float] = field(default_factory=dict)
    transcript: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)
    sandbox: dict = field(default_factory=dict)


class BootFailed(FlashError):
    pass


class Machine:
    """One QEMU run of the image: its UART pty, its boot log, its QMP socket."""

    def __init__(self, work: Path, overlay: Path, kernel: Path, initrd: Path, cmdline: str, run: int):
        self.log_path = work / f"boot-{run}.log"
        self.log_path.unlink(missing_ok=True)
        self.qmp_path = work / "qmp.sock"
        self.qmp_path.unlink(missing_ok=True)
        qemu = require("qemu-system-aarch64")["qemu-system-aarch64"]
        cmd = [qemu, *QEMU, "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
               "-drive", f"file={overlay},if=none,id=disk,format=qcow2",
               "-device", "virtio-blk-pci,drive=disk",
               "-serial", "pty",
               "-chardev", f"file,id=bootlog,path={self.log_path}", "-device", "pci-serial,chardev=bootlog",
               "-qmp", f"unix:{self.qmp_path},server,nowait"]
        self.stderr = open(work / f"qemu-{run}.err", "w+")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr)
        self.started = time.monotonic()
        self.pty = self._pty()

    def _pty(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.stderr.seek(0)
            m = re.search(r"char device redirected to (/dev/pts/\d+) \(label serial0\)", self.stderr.read())
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                self.stderr.seek(0)
                raise BootFailed(f"qemu-system-aarch64 exited: {self.stderr.read()[-2000:]}")
            time.sleep(0.1)
        raise BootFailed("qemu-system-aarch64 did not say where the UART is")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, deadline_s: float, what: str, fail: str | None = None,
                 since: int = 0) -> re.Match:
        """The first match of `pattern` in the boot log after character `since`."""
        end = time.monotonic() + deadline_s
        while True:
            text = self.log()[since:]
            m = re.search(pattern, text)
            if m:
                return m
            if fail and (bad := re.search(fail, text)):
                raise BootFailed(f"{what}: {bad.group(0).strip()}")
            if self.proc.poll() is not None:
                raise BootFailed(f"{what}: QEMU exited (status {self.proc.returncode})")
            if time.monotonic() > end:
                raise BootFailed(f"{what}: not within {deadline_s:.0f} s")
            time.sleep(1)

    def qmp(self, command: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(self.qmp_path))
            s.recv(4096)
            for c in ("qmp_capabilities", command):
                s.sendall(json.dumps({"execute": c}).encode() + b"\n")
                s.recv(4096)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.stderr.close()


def _phase(report: Report, name: str, started: float) -> float:
    took = round(time.monotonic() - started, 1)
    report.phases[name] = took
    say(f"boot-test: {name}: {took:.0f} s")
    return took


def _client(pty: str, deadline_s: float):
    """The project's console client on the UART, once the firmware answers `version`."""
    from glasses_firmware.firmware.console.host import ConsoleClient
    end = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < end:
        try:
            client = ConsoleClient(pty, timeout_s=20)
            reply = client.command("version", 20)
            if reply.ok and reply.lines and reply.lines[0].startswith("glasses "):
                return client, reply
            last = f"{reply.error or reply.lines}"
            client.close()
        except Exception as e:            # noqa: BLE001 - said in the failure, tried again
            last = str(e)
        time.sleep(3)
    raise BootFailed(f"the console on the UART did not answer `version` within {deadline_s:.0f} s ({last})")


def _said(report: Report, line: str, reply) -> None:
    report.transcript.append(f"> {line}")
    report.transcript += [f"  {x}" for x in reply.lines] + ([f"  ERR {reply.error}"] if reply.error else [])


def _boot_files(img: Path, work: Path) -> tuple[Path, Path, str]:
    table = disk.read_table(img)
    boot, _ = disk.rpi_partitions(img, table)
    fat = FatPartition(img, boot.offset)
    kernel, initrd = work / "kernel8.img", work / "initramfs8"
    kernel.write_bytes(fat.read("kernel8.img"))
    initrd.write_bytes(fat.read("initramfs8"))
    return kernel, initrd, qemu_cmdline(fat.read("cmdline.txt").decode())


def qemu_cmdline(cmdline_txt: str) -> str:
    """The image's cmdline.txt as the kernel gets it on the virt machine."""
    lines = [line for line in cmdline_txt.splitlines() if line.strip()]
    if len(lines) != 1:
        raise FlashError(f"cmdline.txt has {len(lines)} lines; the kernel reads one")
    # What the Pi's firmware does to cmdline.txt: serial0 is the console UART's real name.
    tokens = [t.replace("console=serial0", "console=ttyAMA0") for t in lines[0].split()]
    # The boot log's console last: /dev/console, where systemd writes, is the last one.
    return " ".join(tokens + [f"console={LOG_CONSOLE},115200", "systemd.show_status=0",
                              "systemd.journald.forward_to_console=1"])


def _unit_lines(log: str, unit: str, n: int = 30) -> list[str]:
    ident = {"glasses-firstboot.service": ("firstboot.sh", "glasses-firstboot"),
             "glasses.service": ("glasses[", "python[", "glasses.service")}.get(unit, (unit,))
    return [line for line in log.splitlines() if any(i in line for i in ident)][-n:]


def build_image(board: str, work: Path) -> Path:
    """The base (built or reused) and the image built on it, with the installed models."""
    from . import base
    from .build import BuildOptions, build
    from glasses_firmware.models.manifest import default_models_dir
    base_img = base.ensure()
    out = work / f"glasses-{board}.img"
    build(BuildOptions(board=board, base=base_img, out=out, models=default_models_dir()))
    return out


@dataclass
class _Run:
    """What the phases of one boot test share. `machine` is the QEMU run up now; `failing`
    is the unit whose journal lines a failure prints."""
    work: Path
    img: Path
    board: boards.Board
    deadlines: Deadlines
    report: Report
    overlay: Path
    kernel: Path
    initrd: Path
    cmdline: str
    machine: Machine | None = None
    failing: str = "glasses-firstboot.service"

    def boot(self, run: int) -> None:
        self.machine = Machine(self.work, self.overlay, self.kernel, self.initrd, self.cmdline, run)


def boot_test(board_name: str, img: Path | None, work: Path | None = None,
              deadlines: Deadlines = Deadlines()) -> Report:
    """Boot `img` (None: build one) under QEMU and use it over the UART; BootFailed on the first failing phase."""
    require("qemu-system-aarch64", "qemu-img")
    board = boards.load(board_name)
    work = (work or REPO / "build" / "boot-test").absolute()
    work.mkdir(parents=True, exist_ok=True)
    report = Report()
    started = time.monotonic()
    if img is None:
        img = build_image(board.name, work)
        _phase(report, "base and image build", started)
    if not img.is_file():
        raise FlashError(f"{img}: no such image; build one with `flash.sh build` or leave IMG out")
    run = _first_machine(img, work, board, deadlines, report)
    try:
        _boot_to_service(run)
        _console_answers(run)
        _diag_over_uart(run)
        client, _ = _client(run.machine.pty, deadlines.console)
        _ask(client, run)
        _check_watchdog(client, run.machine, report)
        _sandbox(client, run)
        client.close()
        first_log = _power_off(run)
        _second_boot(run)
        (work / "boot-1.log").write_text(first_log)
    except BaseException as e:
        _say_failure(run, e)
        run.machine.stop()
        raise
    _write_report(report, work, started)
    return report


def _first_machine(img: Path, work: Path, board, deadlines: Deadlines, report: Report) -> _Run:
    """Kernel, initrd and cmdline out of the image, a qcow2 overlay over it, and QEMU started on it."""
    kernel, initrd, cmdline = _boot_files(img, work)
    overlay = work / "overlay.qcow2"
    overlay.unlink(missing_ok=True)
    subprocess.run([require("qemu-img")["qemu-img"], "create", "-q", "-f", "qcow2", "-b", str(img.absolute()),
                    "-F", "raw", str(overlay)], check=True)
    say(f"boot-test: booting {img.name} on qemu virt (cortex-a76 x4, 4 GB); "
        f"cmdline: {cmdline}")
    run = _Run(work, img, board, deadlines, report, overlay, kernel, initrd, cmdline)
    run.boot(1)
    say(f"boot-test: UART (ttyAMA0) on {run.machine.pty}, boot log in {run.machine.log_path}")
    return run


def _boot_to_service(run: _Run) -> None:
    """The first boot in the boot log: systemd, the first-boot install, glasses.service READY=1."""
    machine, deadlines, report = run.machine, run.deadlines, run.report
    t = time.monotonic()
    machine.wait_log(r"Reached target .*[Bb]asic [Ss]ystem|Started .*systemd-journald", 15 * 60, "kernel and systemd")
    _phase(report, "kernel to systemd", t)
    t = time.monotonic()
    machine.wait_log(r"glasses-firstboot: installed", deadlines.firstboot, "first boot",
                     fail=r"Failed to start glasses-firstboot\.service.*|glasses-firstboot\.service: Main process exited.*")
    _phase(report, "first boot (system packages, venv, wheels, offline)", t)
    run.failing = "glasses.service"
    t = time.monotonic()
    machine.wait_log(r"Started glasses\.service", deadlines.service, "glasses.service READY=1",
                     fail=r"glasses\.service: Failed with result.*|Failed to start glasses\.service.*")
    _phase(report, "glasses.service started (READY=1)", t)


def _console_answers(run: _Run) -> None:
    """`version` on the UART, then status and selftest."""
    t = time.monotonic()
    client, version = _client(run.machine.pty, run.deadlines.console)
    _said(run.report, "version", version)
    _phase(run.report, "console answers on the UART", t)
    _check_running(client, run.report, run.board)
    client.close()


def _diag_over_uart(run: _Run) -> None:
    """The host's `glasses diag` against the UART writes its report."""
    pty = run.machine.pty
    t = time.monotonic()
    diag = run.work / "diag.json"
    proc = subprocess.run([sys.executable, "-m", "glasses_firmware", "diag", "--port", pty,
                           "--out", str(diag)], capture_output=True, text=True, timeout=600)
    if not diag.is_file():
        raise BootFailed(f"glasses diag wrote no report: {proc.stdout[-800:]} {proc.stderr[-800:]}")
    run.report.transcript.append(f"$ glasses diag --port {pty} --out diag.json  (exit {proc.returncode})")
    _phase(run.report, "glasses diag over the UART", t)


def _ask(client, run: _Run) -> None:
    """The models ready, then the assistant answering QUESTION with Paris."""
    t = time.monotonic()
    _wait_model(client, run.deadlines.model)
    _phase(run.report, "models loaded on aarch64", t)
    t = time.monotonic()
    answer = client.command(f"ask {QUESTION}", run.deadlines.answer)
    _said(run.report, f"ask {QUESTION}", answer)
    if not answer.ok or "paris" not in " ".join(answer.lines).lower():
        raise BootFailed(f"the assistant did not answer Paris: {answer.error or answer.lines}")
    _phase(run.report, "ask answered", t)


def _sandbox(client, run: _Run) -> None:
    t = time.monotonic()
    _check_sandbox(client, run.machine, run.report, run.deadlines.console, run.img, run.board)
    _phase(run.report, "sandbox: score and offload allow-list", t)


def _power_off(run: _Run) -> str:
    """A clean power-off over QMP; returns the first boot's log."""
    machine, deadlines = run.machine, run.deadlines
    t = time.monotonic()
    machine.qmp("system_powerdown")
    try:
        machine.proc.wait(timeout=deadlines.poweroff)
    except subprocess.TimeoutExpired:
        raise BootFailed(f"no clean power-off within {deadlines.poweroff:.0f} s") from None
    _phase(run.report, "power-off", t)
    if re.search(r"glasses\.service: (State 'stop-sigterm' timed out|Killing process)", machine.log()):
        run.report.found.append("glasses.service did not stop on SIGTERM in time")
    first_log = machine.log()
    machine.stop()
    return first_log


def _second_boot(run: _Run) -> None:
    """The overlay booted again: the console answers, the first-boot install does not run again."""
    run.failing = "glasses.service"
    t = time.monotonic()
    run.boot(2)
    machine = run.machine
    client, _ = _client(machine.pty, run.deadlines.second_boot)
    _phase(run.report, "second boot to the console", t)
    if "glasses-firstboot: installed" in machine.log():
        raise BootFailed("the second boot ran the first-boot install again")
    client.close()
    machine.qmp("system_powerdown")
    machine.proc.wait(timeout=run.deadlines.poweroff)
    machine.stop()


def _say_failure(run: _Run, e: BaseException) -> None:
    log = run.machine.log()
    lines = log.splitlines()[-40:]
    say("boot-test: FAILED: " + str(e))
    say("boot-test: last lines of the boot log:\n  " + "\n  ".join(lines))
    say(f"boot-test: {run.failing} in the journal:\n  " + "\n  ".join(_unit_lines(log, run.failing)))


def _write_report(report: Report, work: Path, started: float) -> None:
    total = round(time.monotonic() - started, 1)
    report.phases["total"] = total
    (work / "report.json").write_text(json.dumps({"phases": report.phases, "transcript": report.transcript,
                                                  "found": report.found,
                                                  "sandbox": report.sandbox}, indent=2) + "\n")
    say(f"boot-test: passed in {total:.0f} s; report in {work / 'report.json'}")


def _check_running(client, report: Report, board) -> None:
    """status and selftest over the UART: running, degraded where the virt machine lacks parts."""
    status = client.command("status", 60)
    _said(report, "status", status)
    if not status.ok:
        raise BootFailed(f"status failed: {status.error}")
    selftest = client.command("selftest --json", 120)
    _said(report, "selftest --json", selftest)
    rows = selftest.json()["devices"]
    unexplained = [r["device"] for r in rows if not r["ok"] and not r.get("missing") and r["required"]]
    if unexplained:
        raise BootFailed(f"selftest: required devices failing without a reason: {unexplained}")
    status2 = client.command("status --json", 60).json()
    if status2["lifecycle"] != "running":
        raise BootFailed(f"the firmware is {status2['lifecycle']}, not running")


def _wait_model(client, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    last = {}
    while time.monotonic() < end:
        last = client.command("status --json", 60).json()["worker"]
        if last.get("state") == "ready":
            return
        time.sleep(10)
    raise BootFailed(f"the language model did not become ready within {deadline_s:.0f} s: {last}")


def _check_watchdog(client, machine: Machine, report: Report) -> None:
    wd = client.command("status --json", 60).json().get("watchdog", {})
    report.transcript.append(f"  (watchdog: {wd})")
    if not wd.get("period_s") or wd.get("sent", 0) < 2:
        raise BootFailed(f"no watchdog pings from the firmware: {wd}")
    if re.search(r"glasses\.service: Watchdog timeout", machine.log()):
        raise BootFailed("systemd's watchdog fired on glasses.service")
    restarts = re.findall(r"glasses\.service: Scheduled restart job", machine.log())
    if restarts:
        raise BootFailed(f"glasses.service restarted {len(restarts)} time(s): a crash loop")


def _check_sandbox(client, machine: Machine, report: Report, deadline_s: float, img: Path, board) -> None:
    """systemd-analyze's score for glasses.service, and glasses-netallow widening the
    allow-list to an offload server set on the console, then back to loopback."""
    score, rating = verify.exposure(verify.Image(img, board).root.read(rootfs.UNIT).decode())
    report.transcript.append(f"$ systemd-analyze security --offline=true glasses.service  -> {score} {rating}")
    report.sandbox = {"exposure": score, "rating": rating}
    if score > verify.MAX_EXPOSURE:
        raise BootFailed(f"glasses.service's exposure is {score} {rating}, over {verify.MAX_EXPOSURE}")
    for line, allowed in ((f"offload set llm openai http://{OFFLOAD_PROBE}:8080/v1", f"localhost {OFFLOAD_PROBE}"),
                          ("offload off all", "localhost")):
        since = len(machine.log())
        reply = client.command(line, 60)
        _said(report, line, reply)
        if not reply.ok:
            raise BootFailed(f"{line}: {reply.error}")
        machine.wait_log(rf"glasses-netallow: glasses\.service may reach {re.escape(allowed)}[\r\n]", deadline_s,
                         f"glasses-netallow after `{line}`", fail=r"glasses-netallow: systemctl.*", since=since)
        report.transcript.append(f"  (journal: glasses-netallow: glasses.service may reach {allowed})")
