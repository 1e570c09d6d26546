"""Console commands take narrow ports, not the firmware: a command runs from its ports
alone, and the table built from a real sim firmware binds every command."""

import asyncio
import logging
import re
import tempfile
from pathlib import Path

from glasses_firmware import boards
from glasses_firmware.drivers.clock import SimClock
from glasses_firmware.firmware.app import Firmware
from glasses_firmware.firmware.blocking import Blocking
from glasses_firmware.firmware.console import calls, commands, sim
from glasses_firmware.firmware.console.commands import bind
from glasses_firmware.firmware.console.lines import Line
from glasses_firmware.firmware.console.session import PROMPT, Session
from glasses_firmware.firmware.console.table import MODULES, PORTS, build_table, definitions
from glasses_firmware.firmware.events import EventBus, LogTail
from glasses_firmware.firmware.virtualtime import VirtualTimeLoop
from tests.conftest import ROOT

SIM = boards.load("sim")
CONSOLE = ROOT / "firmware" / "console"


def by_name(*pairs) -> dict:
    """A command table from (name, ports) pairs, as build_table makes one."""
    declared = {c.name: c for c in definitions()}
    return {name: bind(declared[name], ports) for name, ports in pairs}


def session(table, out: list[bytes], board_name="bench") -> Session:
    return Session(table, out.append, events=EventBus(), clock=SimClock(realtime=False),
                   version="9.9.9", board_name=board_name)


def run(session_: Session, text: str) -> list[str]:
    return asyncio.run(asyncio.wait_for(session_.execute(Line(text, None)), 10))


def test_a_command_runs_from_its_ports_alone():
    tail = LogTail()
    tail.emit(logging.makeLogRecord({"name": "glasses", "levelno": logging.INFO,
                                     "levelname": "INFO", "msg": "hello from the log"}))
    s = session(by_name(("help", None),
                        ("version", commands.VersionPorts("9.9.9", "bench", "cm5")),
                        ("log", commands.LogPorts(tail)),
                        ("call", calls.CallPorts(calls=None, router=None))), [])
    assert run(s, "version") == ["glasses 9.9.9 on bench (cm5)", "OK"]
    assert run(s, "version --json") == ['{"board":"bench","module":"cm5","version":"9.9.9"}', "OK"]
    assert any("hello from the log" in line for line in run(s, "log 5"))
    # A board without Bluetooth: the port is None, and the command says so.
    assert run(s, "call") == ["ERR this board has no phone link (no [bluetooth] table in its "
                              "board file)"]
    assert [line.split()[0] for line in run(s, "help")] == ["help", "version", "log", "call", "OK"]
    assert run(s, "status")[0].startswith("ERR unknown command 'status'")


def test_a_session_greets_and_replies_by_the_protocol():
    out: list[bytes] = []
    s = session(by_name(("version", commands.VersionPorts("9.9.9", "bench", "cm5"))), out)

    async def main():
        task = asyncio.create_task(s.serve())
        s.feed(b"version\n")
        for _ in range(200):
            if b"".join(out).count(PROMPT.encode()) == 2:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(asyncio.wait_for(main(), 10))
    assert b"".join(out).decode() == ("glasses 9.9.9 console on bench; type help\n" + PROMPT +
                                      "\nglasses 9.9.9 on bench (cm5)\nOK\n" + PROMPT)


def test_sim_is_hidden_and_refused_without_the_sim_hardware():
    ports = sim.SimPorts(sim=None, board_name="cm5-ref", buttons={}, clock=SimClock(),
                         blocking=Blocking(), sample=lambda: None)
    s = session(by_name(("help", None), ("sim", ports)), [], board_name="cm5-ref")
    assert [line.split()[0] for line in run(s, "help")] == ["help", "OK"]
    assert run(s, "help sim") == ["ERR no command 'sim'; type help for the list"]
    assert run(s, "sim wear on") == ["ERR sim commands work only on the sim board; this is cm5-ref"]


def test_no_handler_reaches_the_firmware():
    """Only table.py (PORTS) and transports.open_console read the firmware object."""
    offenders = []
    for path in sorted(CONSOLE.glob("*.py")):
        text = path.read_text()
        if re.search(r"session\.fw\b|getattr\(fw\b|\bREGISTRY\b", text):
            offenders.append(path.name)
        if path.name not in ("table.py", "transports.py") and re.search(r"\bfw\b", text):
            offenders.append(path.name)
    assert offenders == []
    transports = (CONSOLE / "transports.py").read_text()
    assert re.findall(r"def \w+\(fw\b", transports) == ["def open_console(fw"]


def test_every_module_declares_its_ports_and_the_table_makes_each():
    declared = definitions()
    assert [c.name for c in declared] == [c.name for m in MODULES for c in m.COMMANDS]
    assert len({c.name for c in declared}) == len(declared)
    assert {c.ports for c in declared if c.ports is not None} == set(PORTS)


def test_the_table_builds_from_a_real_sim_firmware_with_every_command_bound():
    clock = SimClock(realtime=False)

    async def main(data_dir):
        fw = Firmware(SIM, data_dir, clock)
        try:
            table = build_table(fw)
            assert list(table) == [c.name for c in definitions()]
            for cmd in definitions():
                bound = table[cmd.name]
                assert bound.command is cmd and bound.listed
                assert bound.ports is None if cmd.ports is None else isinstance(bound.ports, cmd.ports)
            s = Session(table, lambda data: None, events=fw.events, clock=fw.clock,
                        version=fw.version, board_name=fw.config.name)
            reply = await asyncio.wait_for(s.execute(Line("help", None)), 30)
            assert [line.split()[0] for line in reply[:-1]] == list(table)
            reply = await asyncio.wait_for(s.execute(Line("help sim", None)), 30)
            assert reply == ["usage: sim SUBCOMMAND ...", table["sim"].command.summary,
                             *sim.USAGE, "OK"]
            assert (await asyncio.wait_for(s.execute(Line("sim wear off", None)), 30))[-1] == "OK"
            status = await asyncio.wait_for(s.execute(Line("status --json", None)), 30)
            assert '"worn":false' in status[0] and '"lifecycle":"starting"' in status[0]
            fw.lifecycle = "running"            # the table reads it when asked, not when built
            status = await asyncio.wait_for(s.execute(Line("status", None)), 30)
            assert any(line.startswith("mode ") and line.endswith(" (running)") for line in status)
        finally:
            await fw.shutdown()

    with tempfile.TemporaryDirectory(prefix="glasses-test-") as tmp:
        with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(clock)) as runner:
            runner.run(main(Path(tmp)))
