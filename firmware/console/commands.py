"""Console commands: an allowlist of named handlers, each returning reply lines.

A command module declares its commands as data (`Command`s in a tuple named COMMANDS) and,
next to them, the ports each one uses: a frozen dataclass (`VersionPorts` below). A handler
is `async def cmd_x(session, ports, args)`: the session for what is the session's (the PIN
gate, events, echo, the listed commands, writing lines), its ports for everything else,
never the firmware. It returns the lines to print before `OK` and raises CommandError for
an `ERR` reply. table.py builds each command's ports from the firmware when the console
opens. Nothing here runs a shell or evaluates input; an unknown word is refused.
"""

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from glasses_firmware.drivers.errors import GlassesError

from ..ports import Blocking, Clock

if TYPE_CHECKING:     # annotations only: the console does not import the services it is handed
    from glasses_firmware.drivers.bringup import Board

    from ..arbiter import Arbiter
    from ..events import LogTail
    from ..phone.bluez import PhoneLink
    from ..phone.calls import Calls
    from ..phone.media import Media
    from ..power.energy import EnergyMeter
    from ..power.modes import ModeMachine
    from ..power.monitor import Monitor, Snapshot
    from ..voice.assistant import Assistant


class CommandError(GlassesError, ValueError):
    """The reply is `ERR <message>`; the message says what was wrong and what to try."""


Handler = Callable[[Any, Any, list[str]], Awaitable[list[str]]]   # (session, ports, args)


@dataclass(frozen=True)
class Command:
    """One console command as declared: its words, its handler and the ports it takes."""

    name: str
    usage: str
    summary: str
    handler: Handler
    ports: type | None = None   # the frozen dataclass of ports the handler gets; None: none
    raw: bool = False    # the handler gets the rest of the line as one argument, unparsed
    timeout_s: float | None = None   # None: the console's COMMAND_TIMEOUT_S
    details: tuple[str, ...] = ()    # more lines for `help NAME`: a group's subcommands
    listed: Callable[[Any], bool] | None = None   # given the ports: shown in `help`? None: always


@dataclass(frozen=True)
class BoundCommand:
    """A command with its ports, as the console's table holds it (table.py builds it)."""

    command: Command
    ports: Any
    listed: bool = True

    def run(self, session, args: list[str]) -> Awaitable[list[str]]:
        return self.command.handler(session, self.ports, args)


def bind(command: Command, ports) -> BoundCommand:
    """`command` given its ports (None when it takes none); the ports decide `listed`."""
    if (ports is None) != (command.ports is None) or \
            (ports is not None and not isinstance(ports, command.ports)):
        raise TypeError(f"command {command.name} takes {command.ports}, given {type(ports)}")
    listed = command.listed is None or command.listed(ports)
    return BoundCommand(command, ports, listed)


def split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as e:
        raise CommandError(f"cannot parse the line ({e}); check the quotes") from None


def is_count(text: str) -> bool:
    """ASCII digits only: str.isdigit() is also true for '²', which int() refuses."""
    return text.isascii() and text.isdigit()


def take_flag(args: list[str], flag: str) -> tuple[list[str], bool]:
    return [a for a in args if a != flag], flag in args


def no_args(args: list[str], usage: str) -> None:
    if args:
        raise CommandError(f"unexpected '{' '.join(args)}'; usage: {usage}")


def as_json(obj) -> list[str]:
    return [json.dumps(obj, separators=(",", ":"), sort_keys=True)]


# The core commands. `help`, `login`, `logout`, `events` and `echo` are the session's own.

async def cmd_help(session, ports, args):
    shown = session.visible_commands()
    if args:
        cmd = next((c.command for c in shown if c.command.name == args[0]), None)
        if cmd is None:
            raise CommandError(f"no command '{args[0]}'; type help for the list")
        return [f"usage: {cmd.usage}", cmd.summary, *cmd.details]
    width = max(len(c.command.usage) for c in shown)
    return [f"{c.command.usage:<{width}}  {c.command.summary}" for c in shown]


@dataclass(frozen=True)
class VersionPorts:
    """What `version` says (the console's greeting says the same)."""

    version: str
    board_name: str
    module: str


async def cmd_version(session, ports: VersionPorts, args):
    args, js = take_flag(args, "--json")
    no_args(args, "version [--json]")
    info = {"version": ports.version, "board": ports.board_name, "module": ports.module}
    if js:
        return as_json(info)
    return [f"glasses {ports.version} on {ports.board_name} ({ports.module})"]


async def cmd_login(session, ports, args):
    if len(args) != 1:
        raise CommandError("usage: login PIN")
    reason = session.gate.login(args[0])
    if reason:
        raise CommandError(reason)
    return ["unlocked"]


async def cmd_logout(session, ports, args):
    no_args(args, "logout")
    session.gate.logout()
    return ["locked" if not session.gate.unlocked else "no PIN on this board"]


@dataclass(frozen=True)
class StatusPorts:
    """What `status` reads; the phone's services are None on a board without Bluetooth."""

    board_name: str
    board: "Board"                        # its missing endpoints
    sample: Callable[[], "Snapshot"]      # read the sensors now (the mode scheduler sees it too)
    monitor: "Monitor"
    modes: "ModeMachine"
    lifecycle: Callable[[], str]          # starting, running, stopping: it moves after start
    worker_states: Callable[[], dict[str, str]]
    model_worker: Any                     # the inference clients behind offload; None: no models
    voice_worker: Any
    clock: Clock
    started_at: float                     # clock.monotonic() when the firmware started
    data_dir: Path
    phone_link: "PhoneLink | None"
    calls: "Calls | None"
    media: "Media | None"


def status_dict(ports: StatusPorts) -> dict:
    from .. import notify
    mon = ports.monitor
    snap = ports.sample()
    workers = ports.worker_states()
    g = snap.gauge
    return {
        "board": ports.board_name,
        "mode": ports.modes.mode,
        "lifecycle": ports.lifecycle(),
        "battery": {"percent": round(g.percent, 1) if g else None,
                    "voltage": round(g.voltage_v, 3) if g else None,
                    "charging": mon.charging},
        "worn": mon.worn,
        "temperature_c": None if mon.temperature_c is None else round(mon.temperature_c, 1),
        "storage": {"free_mb": mon.storage_free_mb(ports.data_dir)},
        "worker": {"state": workers["model"], "voice": workers["voice"],
                   "pid": _pid(ports.model_worker), "voice_pid": _pid(ports.voice_worker),
                   "up_s": _up(ports.model_worker), "voice_up_s": _up(ports.voice_worker)},
        "uptime_s": round(ports.clock.monotonic() - ports.started_at, 1),
        "faults": snap.faults,
        # Endpoints this machine lacks (drivers/absent.py): added, every field above unchanged.
        "missing": ports.board.missing,
        "watchdog": dict(notify.pings),     # systemd's: ping period (None: not armed), pings sent
        # The phone link (issue 14): added, every field above unchanged.
        "phone": ports.phone_link.status() if ports.phone_link else {"state": "none"},
        "call": ports.calls.status()["state"] if ports.calls else "none",
        "music": ports.media.status_line() if ports.media else {"status": "none"},
    }


def _pid(client) -> int | None:
    """The worker process's pid (None while it is down): fault campaigns aim by it."""
    return None if client is None else client.worker_pid


def _up(client) -> float | None:
    """Seconds since the worker last became ready (None unless it is ready)."""
    if client is None or client.state != "ready" or client.supervisor.ready_at is None:
        return None
    return round(time.monotonic() - client.supervisor.ready_at, 3)


async def cmd_status(session, ports: StatusPorts, args):
    args, js = take_flag(args, "--json")
    no_args(args, "status [--json]")
    s = status_dict(ports)
    s["console"] = {"dropped_lines": session.dropped_lines}
    if js:
        return as_json(s)
    b = s["battery"]
    battery = "unknown" if b["percent"] is None else \
        f"{b['percent']:.0f} % {b['voltage']:.2f} V{' charging' if b['charging'] else ''}"
    temp = "unknown" if s["temperature_c"] is None else f"{s['temperature_c']:.1f} C"
    lines = [f"board        {s['board']}", f"mode         {s['mode']} ({s['lifecycle']})",
             f"battery      {battery}", f"worn         {'yes' if s['worn'] else 'no'}",
             f"temperature  {temp}", f"storage      {s['storage']['free_mb']:.0f} MB free",
             f"worker       {s['worker']['state']}", f"uptime       {s['uptime_s']:.0f} s"]
    lines += [f"fault        {name}: {why}" for name, why in s["faults"].items()]
    lines += [f"missing      {name}: {why}" for name, why in s["missing"].items()]
    return lines


@dataclass(frozen=True)
class SelftestPorts:
    """`selftest` probes the board's devices off the loop."""

    board: "Board"
    blocking: Blocking


async def cmd_selftest(session, ports: SelftestPorts, args):
    from .. import selftest
    args, js = take_flag(args, "--json")
    no_args(args, "selftest [--json]")
    rows = await ports.blocking.run(selftest.run, ports.board, timeout_s=60)
    if js:
        return [selftest.to_json(rows)]
    lines = selftest.to_text(rows).splitlines()
    if selftest.failed(rows):
        bad = ", ".join(r.device for r in rows if r.required and not r.ok)
        lines.append(f"selftest: FAILED ({bad})")
    else:
        lines.append("selftest: passed")
    return lines


@dataclass(frozen=True)
class SensorsPorts:
    """`sensors` reads them now, through the same sampling the mode scheduler gets."""

    sample: Callable[[], "Snapshot"]


async def cmd_sensors(session, ports: SensorsPorts, args):
    args, js = take_flag(args, "--json")
    no_args(args, "sensors [--json]")
    snap = ports.sample()
    out = {"faults": snap.faults, "soc_temperature_c": snap.soc_temp_c}
    if snap.imu:
        out["imu"] = {"accel_ms2": [round(v, 3) for v in snap.imu.accel_ms2],
                      "gyro_dps": [round(v, 2) for v in snap.imu.gyro_dps],
                      "temperature_c": round(snap.imu.temperature_c, 2)}
    if snap.gauge:
        out["battery"] = {"percent": round(snap.gauge.percent, 2),
                          "voltage": round(snap.gauge.voltage_v, 4),
                          "rate_pct_per_h": round(snap.gauge.rate_pct_per_h, 2),
                          "alert_low": snap.gauge.alert_low}
    if js:
        return as_json(out)
    lines = []
    if "imu" in out:
        i = out["imu"]
        lines += [f"imu.accel_ms2      {i['accel_ms2']}", f"imu.gyro_dps       {i['gyro_dps']}",
                  f"imu.temperature_c  {i['temperature_c']}"]
    if "battery" in out:
        b = out["battery"]
        lines += [f"battery.percent    {b['percent']}", f"battery.voltage    {b['voltage']}",
                  f"battery.rate       {b['rate_pct_per_h']} %/h", f"battery.alert_low  {b['alert_low']}"]
    if snap.soc_temp_c is not None:
        lines.append(f"soc.temperature_c  {snap.soc_temp_c}")
    lines += [f"fault              {n}: {why}" for n, why in snap.faults.items()]
    return lines


@dataclass(frozen=True)
class ModePorts:
    """What `mode` reads: the mode, what it allows, and who holds what."""

    sample: Callable[[], "Snapshot"]
    modes: "ModeMachine"
    lifecycle: Callable[[], str]
    monitor: "Monitor"
    assistant: "Assistant"                # the voice loop's state
    microphones: Any                      # drivers.audio.Microphones: running or not
    arbiter: "Arbiter"
    energy: "EnergyMeter"


async def cmd_mode(session, ports: ModePorts, args):
    args, js = take_flag(args, "--json")
    no_args(args, "mode [--json]")
    ports.sample()
    p = ports.modes.policy
    mode, lifecycle = ports.modes.mode, ports.lifecycle()
    info = {"mode": mode, "lifecycle": lifecycle, "worn": ports.monitor.worn,
            "policy": {"photo": p.camera, "video": p.video, "listening": p.listening,
                       "llm": p.llm, "soc": p.soc},
            "voice": ports.assistant.state, "microphones": ports.microphones.running,
            "resources": ports.arbiter.snapshot(), "power_w": round(ports.energy.watts, 3)}
    if js:
        return as_json(info)
    allowed = ", ".join(k for k in ("photo", "video", "listening", "llm") if info["policy"][k])
    held = "; ".join(f"{r}: {', '.join(o)}" for r, o in info["resources"].items() if o) or "none"
    return [f"{mode} (lifecycle {lifecycle})", f"allows      {allowed or 'nothing'}",
            f"soc         {p.soc}", f"voice loop  {info['voice']}",
            f"microphones {'on' if info['microphones'] else 'off'}", f"resources   {held}",
            f"power       {info['power_w']:.2f} W"]


@dataclass(frozen=True)
class LogPorts:
    log_tail: "LogTail"


async def cmd_log(session, ports: LogPorts, args):
    if len(args) > 1 or (args and not is_count(args[0])):
        raise CommandError("usage: log [N] with N a whole number, e.g. log 50")
    n = min(int(args[0]) if args else 20, 500)
    return ports.log_tail.tail(n) or ["(log is empty)"]


@dataclass(frozen=True)
class ModelsPorts:
    models_info: Callable[[], list[dict]]   # blocking: it hashes the model files
    blocking: Blocking


async def cmd_models(session, ports: ModelsPorts, args):
    args, js = take_flag(args, "--json")
    no_args(args, "models [--json]")
    models = await ports.blocking.run(ports.models_info, timeout_s=300)
    if js:
        return as_json(models)
    return [f"{m['role']:<8} {m['name']:<34} {m['state']}{' (active)' if m['active'] else ''}"
            for m in models] or \
        ["no models directory; run with --models DIR (build test models with "
         "`glasses models build-test`)"]


async def cmd_events(session, ports, args):
    if args not in (["on"], ["off"]):
        raise CommandError("usage: events on|off")
    session.set_events(args[0] == "on")
    return [f"events {args[0]}"]


async def cmd_echo(session, ports, args):
    if args not in (["on"], ["off"]):
        raise CommandError("usage: echo on|off")
    session.echo = args[0] == "on"
    return [f"echo {args[0]}"]


COMMANDS = (
    Command("help", "help [COMMAND]", "list commands, or show one command's usage", cmd_help),
    Command("version", "version [--json]", "firmware version and board", cmd_version,
            VersionPorts),
    Command("login", "login PIN", "unlock the console on boards that require a PIN", cmd_login),
    Command("logout", "logout", "lock the console again (boards with a PIN)", cmd_logout),
    Command("status", "status [--json]", "mode, battery, wear, temperature, storage, worker, uptime",
            cmd_status, StatusPorts),
    Command("selftest", "selftest [--json]", "probe every device (one row each)", cmd_selftest,
            SelftestPorts),
    Command("sensors", "sensors [--json]", "IMU, battery gauge and temperatures, read now",
            cmd_sensors, SensorsPorts),
    Command("mode", "mode [--json]", "the current operating mode and why", cmd_mode, ModePorts),
    Command("log", "log [N]", "the last N log lines (default 20)", cmd_log, LogPorts),
    Command("models", "models [--json]", "the models the firmware knows and their state",
            cmd_models, ModelsPorts),
    Command("events", "events on|off", "asynchronous EVT lines on this console", cmd_events),
    Command("echo", "echo on|off", "echo typed characters back (for plain serial terminals)",
            cmd_echo),
)
