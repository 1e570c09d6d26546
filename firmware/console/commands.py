"""Console commands: an allowlist of named handlers, each returning reply lines.

A handler gets the session and its arguments, returns the lines to print before `OK`,
and raises CommandError for an `ERR` reply. Nothing here runs a shell or evaluates
input; an unknown word is refused.
"""

import json
import shlex
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from glasses_firmware.drivers.errors import GlassesError

from .. import __version__


class CommandError(GlassesError, ValueError):
    """The reply is `ERR <message>`; the message says what was wrong and what to try."""


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    handler: Callable[..., Awaitable[list[str]]]
    raw: bool = False    # the handler gets the rest of the line as one argument, unparsed
    timeout_s: float | None = None   # None: the console's COMMAND_TIMEOUT_S
    details: tuple[str, ...] = ()    # more lines for `help NAME`: a group's subcommands


REGISTRY: dict[str, Command] = {}


def command(name: str, usage: str, summary: str, raw: bool = False, timeout_s: float | None = None,
            details: tuple[str, ...] = ()):
    def register(fn):
        REGISTRY[name] = Command(name, usage, summary, fn, raw, timeout_s, tuple(details))
        return fn
    return register


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


@command("help", "help [COMMAND]", "list commands, or show one command's usage")
async def cmd_help(session, args):
    names = session.visible_commands()
    if args:
        cmd = REGISTRY.get(args[0])
        if cmd is None or cmd.name not in names:
            raise CommandError(f"no command '{args[0]}'; type help for the list")
        return [f"usage: {cmd.usage}", cmd.summary, *cmd.details]
    width = max(len(REGISTRY[n].usage) for n in names)
    return [f"{REGISTRY[n].usage:<{width}}  {REGISTRY[n].summary}" for n in names]


@command("version", "version [--json]", "firmware version and board")
async def cmd_version(session, args):
    args, js = take_flag(args, "--json")
    no_args(args, "version [--json]")
    fw = session.fw
    info = {"version": __version__, "board": fw.config.name, "module": fw.config.board.module}
    if js:
        return as_json(info)
    return [f"glasses {__version__} on {fw.config.name} ({fw.config.board.module})"]


@command("login", "login PIN", "unlock the console on boards that require a PIN")
async def cmd_login(session, args):
    if len(args) != 1:
        raise CommandError("usage: login PIN")
    reason = session.gate.login(args[0])
    if reason:
        raise CommandError(reason)
    return ["unlocked"]


@command("logout", "logout", "lock the console again (boards with a PIN)")
async def cmd_logout(session, args):
    no_args(args, "logout")
    session.gate.logout()
    return ["locked" if not session.gate.unlocked else "no PIN on this board"]


def status_dict(fw) -> dict:
    from .. import notify
    mon = fw.monitor
    snap = fw.sample()
    workers = fw.worker_states()
    g = snap.gauge
    return {
        "board": fw.config.name,
        "mode": fw.mode,
        "lifecycle": fw.lifecycle,
        "battery": {"percent": round(g.percent, 1) if g else None,
                    "voltage": round(g.voltage_v, 3) if g else None,
                    "charging": mon.charging},
        "worn": mon.worn,
        "temperature_c": None if mon.temperature_c is None else round(mon.temperature_c, 1),
        "storage": {"free_mb": mon.storage_free_mb(fw.data_dir)},
        "worker": {"state": workers["model"], "voice": workers["voice"],
                   "pid": _pid(fw.model_worker), "voice_pid": _pid(fw.voice_worker),
                   "up_s": _up(fw.model_worker), "voice_up_s": _up(fw.voice_worker)},
        "uptime_s": round(fw.clock.monotonic() - fw.started_at, 1),
        "faults": snap.faults,
        # Endpoints this machine lacks (drivers/absent.py): added, every field above unchanged.
        "missing": fw.board.missing,
        "watchdog": dict(notify.pings),     # systemd's: ping period (None: not armed), pings sent
        # The phone link (issue 14): added, every field above unchanged.
        "phone": fw.phone_link.status() if getattr(fw, "phone_link", None) else {"state": "none"},
        "call": fw.calls.status()["state"] if getattr(fw, "calls", None) else "none",
        "music": fw.media.status_line() if getattr(fw, "media", None) else {"status": "none"},
    }


def _pid(client) -> int | None:
    """The worker process's pid (None while it is down): fault campaigns aim by it."""
    return None if client is None else client.worker_pid


def _up(client) -> float | None:
    """Seconds since the worker last became ready (None unless it is ready)."""
    if client is None or client.state != "ready" or client.supervisor.ready_at is None:
        return None
    return round(time.monotonic() - client.supervisor.ready_at, 3)


@command("status", "status [--json]", "mode, battery, wear, temperature, storage, worker, uptime")
async def cmd_status(session, args):
    args, js = take_flag(args, "--json")
    no_args(args, "status [--json]")
    s = status_dict(session.fw)
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


@command("selftest", "selftest [--json]", "probe every device (one row each)")
async def cmd_selftest(session, args):
    from .. import selftest
    args, js = take_flag(args, "--json")
    no_args(args, "selftest [--json]")
    rows = await session.fw.blocking.run(selftest.run, session.fw.board, timeout_s=60)
    if js:
        return [selftest.to_json(rows)]
    lines = selftest.to_text(rows).splitlines()
    if selftest.failed(rows):
        bad = ", ".join(r.device for r in rows if r.required and not r.ok)
        lines.append(f"selftest: FAILED ({bad})")
    else:
        lines.append("selftest: passed")
    return lines


@command("sensors", "sensors [--json]", "IMU, battery gauge and temperatures, read now")
async def cmd_sensors(session, args):
    args, js = take_flag(args, "--json")
    no_args(args, "sensors [--json]")
    snap = session.fw.sample()
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


@command("mode", "mode [--json]", "the current operating mode and why")
async def cmd_mode(session, args):
    args, js = take_flag(args, "--json")
    no_args(args, "mode [--json]")
    fw = session.fw
    fw.sample()
    p = fw.modes.policy
    info = {"mode": fw.mode, "lifecycle": fw.lifecycle, "worn": fw.monitor.worn,
            "policy": {"photo": p.camera, "video": p.video, "listening": p.listening,
                       "llm": p.llm, "soc": p.soc},
            "voice": fw.assistant.state, "microphones": fw.board.microphones.running,
            "resources": fw.arbiter.snapshot(), "power_w": round(fw.energy.watts, 3)}
    if js:
        return as_json(info)
    allowed = ", ".join(k for k in ("photo", "video", "listening", "llm") if info["policy"][k])
    held = "; ".join(f"{r}: {', '.join(o)}" for r, o in info["resources"].items() if o) or "none"
    return [f"{fw.mode} (lifecycle {fw.lifecycle})", f"allows      {allowed or 'nothing'}",
            f"soc         {p.soc}", f"voice loop  {info['voice']}",
            f"microphones {'on' if info['microphones'] else 'off'}", f"resources   {held}",
            f"power       {info['power_w']:.2f} W"]


@command("log", "log [N]", "the last N log lines (default 20)")
async def cmd_log(session, args):
    if len(args) > 1 or (args and not is_count(args[0])):
        raise CommandError("usage: log [N] with N a whole number, e.g. log 50")
    n = min(int(args[0]) if args else 20, 500)
    return session.fw.log_tail.tail(n) or ["(log is empty)"]


@command("models", "models [--json]", "the models the firmware knows and their state")
async def cmd_models(session, args):
    args, js = take_flag(args, "--json")
    no_args(args, "models [--json]")
    models = await session.fw.blocking.run(session.fw.models_info, timeout_s=300)
    if js:
        return as_json(models)
    return [f"{m['role']:<8} {m['name']:<34} {m['state']}{' (active)' if m['active'] else ''}"
            for m in models] or \
        ["no models directory; run with --models DIR (build test models with "
         "`glasses models build-test`)"]


@command("events", "events on|off", "asynchronous EVT lines on this console")
async def cmd_events(session, args):
    if args not in (["on"], ["off"]):
        raise CommandError("usage: events on|off")
    session.set_events(args[0] == "on")
    return [f"events {args[0]}"]


@command("echo", "echo on|off", "echo typed characters back (for plain serial terminals)")
async def cmd_echo(session, args):
    if args not in (["on"], ["off"]):
        raise CommandError("usage: echo on|off")
    session.echo = args[0] == "on"
    return [f"echo {args[0]}"]
