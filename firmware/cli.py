"""The `glasses` command line. Only this module parses arguments."""

import argparse
import sys
from pathlib import Path

from glasses_firmware.drivers.errors import GlassesError

from . import __version__


def _data_dir(args, config) -> Path:
    return Path(args.data_dir or config.board.data_dir).expanduser()


def _clock(args, config):
    from glasses_firmware.drivers.clock import Clock, SimClock
    if config.sim is None:
        return Clock()
    return SimClock(realtime=getattr(args, "speed", "1") != "max")


def _run_models(spec: str | None) -> Path | None:
    """--models DIR, none, or (not given) the installed default models if there are any."""
    from glasses_firmware.models.manifest import default_models_dir
    if spec == "none":
        return None
    if spec is not None:
        return Path(spec).expanduser()
    found = default_models_dir()
    if found is None:
        print("glasses: no models installed (run `glasses models install`, or give --models DIR); "
              "running without the assistant's models", file=sys.stderr)
    return found


def cmd_run(args) -> int:
    from glasses_firmware import boards
    from .app import run_firmware
    config = boards.load(args.board)
    return run_firmware(config, _data_dir(args, config), _clock(args, config),
                        console=args.console, speed=args.speed, models_dir=_run_models(args.models))


def cmd_selftest(args) -> int:
    from glasses_firmware import boards
    from glasses_firmware.drivers.bringup import Board

    from . import selftest
    config = boards.load(args.board)
    board = Board(config, _data_dir(args, config), _clock(args, config))
    try:
        for spec in args.sim_fault:
            device, _, kind = spec.partition("=")
            if board.sim is None:
                raise GlassesError(f"--sim-fault needs a simulated board; {config.name} is real")
            board.sim.set_fault(device, kind or "nack")
        rows = selftest.run(board)
    finally:
        board.close()
    print(selftest.to_json(rows) if args.json else selftest.to_text(rows))
    return 1 if selftest.failed(rows) else 0


def cmd_console(args) -> int:
    from .console.host import interactive
    return interactive(args.port, args.baud)


def cmd_diag(args) -> int:
    from .console.host import diag
    return diag(args.port, args.baud, as_json=args.json, out=args.out)


def cmd_pin_hash(args) -> int:
    import getpass

    from .console.pin import hash_pin
    pin = getpass.getpass("console PIN (4-12 digits): ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    print(hash_pin(pin))
    return 0


def cmd_simulate_day(args) -> int:
    import json

    from glasses_firmware import boards
    from .tools.simday import run_day
    config = boards.load(args.board)
    if config.sim is None:
        raise GlassesError(f"simulate-day runs on a simulated board; {config.name} is real")
    report = run_day(config, args.profile, args.plan, args.plot, quiet=args.json)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['profile']} day ({report['day_hours']:g} h) on {report['board']}: "
              f"projected {report['hours']:.1f} h with the scheduler, "
              f"{report['baseline_hours']:.1f} h always-on ({report['ratio']:.1f}x); "
              f"simulated in {report['wall_s']:.1f} s")
        for key in ("energy_wh_by_mode", "energy_wh_by_feature"):
            print(f"  {key}: " + ", ".join(f"{k} {v:.2f}" for k, v in report[key].items()))
        if args.plot:
            print(f"  plot: {args.plot}")
    return 0


def cmd_export(args) -> int:
    """Clear copies of the sealed recordings and notes (docs/encryption.md); 1 if any failed."""
    from .meeting import export
    config = None
    if args.board:
        from glasses_firmware import boards
        config = boards.load(args.board)
    if not (args.data_dir or config):
        raise GlassesError("export: give --data-dir DIR (or --board NAME for its data dir)")
    data_dir = _data_dir(args, config) if config else Path(args.data_dir).expanduser()
    sealer = export.key_for(data_dir, args.key, config)
    report = export.export(data_dir, Path(args.out).expanduser(), sealer, args.ids,
                           say=lambda line: print(line, flush=True))
    for line in report.errors:
        print(f"glasses: export: {line}", file=sys.stderr)
    return 1 if report.errors else 0


def cmd_soak(args) -> int:
    """The reliability campaigns (docs/reliability.md), each bounded in count and time."""
    import json
    results, failed = {}, False
    if not (args.kills or args.cuts or args.lines):
        raise GlassesError("soak: choose at least one of --kills N, --cuts N, --lines N")
    if args.kills:
        from glasses_firmware.models.manifest import default_models_dir
        from .tools import soak
        models = args.models or default_models_dir()
        if models is None:
            raise GlassesError("soak --kills needs models: --models DIR (the test models: "
                               "`glasses models build-test`), or `glasses models install`")
        results["kills"] = r = soak.run_kills(Path(models), kills=args.kills, seconds=args.seconds,
                                              seed=args.seed)
        print(soak.summary(r))
        failed |= bool(r.get("failures"))
    if args.cuts:
        from .tools import powercut
        results["cuts"] = r = powercut.run_cuts(cuts=args.cuts, seconds=args.seconds,
                                                seed=args.seed,
                                                models_dir=Path(args.models) if args.models else None)
        print(powercut.summary(r))
        failed |= bool(r.get("failures"))
    if args.lines:
        from .tools import fuzz
        results["lines"] = r = fuzz.run_lines(lines=args.lines, seed=args.seed, seconds=args.seconds)
        print(fuzz.summary(r))
        failed |= bool(r.get("failures"))
    if args.json:
        print(json.dumps(results, default=str))
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="glasses", description="Open AI-glasses firmware")
    p.add_argument("--version", action="version", version=f"glasses {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the firmware until SIGINT/SIGTERM")
    run.add_argument("--board", required=True, help="board name (cm5-ref, cm4-ref, sim) or .toml path")
    run.add_argument("--data-dir", help="data directory (default: the board file's data_dir)")
    run.add_argument("--console", default="auto",
                     help="PATH (a pty symlinked there on the sim; the serial port on boards), "
                          "stdio, none, or auto (the board file's console tty)")
    run.add_argument("--models", help="models directory (default: the installed models, "
                                      "models/installed); none: run without models")
    run.add_argument("--speed", choices=("1", "max"), default="1",
                     help="sim only: 1 = real time, max = jump ahead whenever idle")
    run.set_defaults(func=cmd_run)

    st = sub.add_parser("selftest", help="probe every device; exit 1 if a required one fails")
    st.add_argument("--board", required=True)
    st.add_argument("--data-dir")
    st.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    st.add_argument("--sim-fault", action="append", default=[], metavar="DEVICE=KIND",
                    help="sim only: inject a fault first (nack, timeout, garbage, gone)")
    st.set_defaults(func=cmd_selftest)

    con = sub.add_parser("console", help="interactive console over a serial port (host side)")
    con.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB0 or the sim's pty link")
    con.add_argument("--baud", type=int, default=115200)
    con.set_defaults(func=cmd_console)

    dg = sub.add_parser("diag", help="run version, status, selftest and sensors over a serial port")
    dg.add_argument("--port", required=True)
    dg.add_argument("--baud", type=int, default=115200)
    dg.add_argument("--json", action="store_true", help="the report as JSON")
    dg.add_argument("--out", help="also write the report to this file")
    dg.set_defaults(func=cmd_diag)

    sd = sub.add_parser("simulate-day", help="a scripted day on the sim board: projected battery life")
    sd.add_argument("--board", default="sim")
    sd.add_argument("--profile", default="typical", help="profile name or .toml path")
    sd.add_argument("--plan", default="scheduler", choices=("scheduler", "always-on"),
                    help="the power plan reported first (the other is the baseline)")
    sd.add_argument("--plot", help="write the battery plot (PNG) here")
    sd.add_argument("--json", action="store_true", help="one JSON object")
    sd.set_defaults(func=cmd_simulate_day)

    from .tools.models_cli import add_subcommands
    add_subcommands(sub)

    so = sub.add_parser("soak", help="reliability campaigns on the sim board: worker kills, "
                                     "power cuts, console fuzzing (docs/reliability.md)")
    so.add_argument("--kills", type=int, default=0, help="kill -9 the workers N times")
    so.add_argument("--cuts", type=int, default=0, help="kill -9 the firmware N times, then check every file")
    so.add_argument("--lines", type=int, default=0, help="send N random and hostile console lines")
    so.add_argument("--models", help="models for the workers (default: the installed models)")
    so.add_argument("--seconds", type=float, default=1800.0,
                    help="stop each campaign after this long, even with work left (default 1800)")
    so.add_argument("--seed", type=int, default=1, help="random seed (a failure can be replayed)")
    so.add_argument("--json", action="store_true", help="also print the results as JSON")
    so.set_defaults(func=cmd_soak)

    ex = sub.add_parser("export", help="write clear copies of the sealed recordings, "
                                       "transcripts and notes to another folder")
    ex.add_argument("--data-dir", help="the data directory (or a copy of it)")
    ex.add_argument("--key", help="the device key file (default: the board's, or the one "
                                  "beside the data dir)")
    ex.add_argument("--board", help="read the key (and data dir) the way this board does")
    ex.add_argument("--out", required=True, help="where the copies go (never overwritten)")
    ex.add_argument("ids", nargs="*", help="recording ids (default: all)")
    ex.set_defaults(func=cmd_export)

    ph = sub.add_parser("pin-hash", help="make the console.pin_hash value for a board file")
    ph.set_defaults(func=cmd_pin_hash)
    return p


def run_cli(parser: argparse.ArgumentParser, argv=None) -> int:
    """Parse, run the chosen command; a GlassesError is one line on stderr and exit 2."""
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GlassesError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def main(argv=None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
