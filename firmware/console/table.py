"""The console's command table, built when a console opens: each command bound to its ports.

The command modules are listed here in `help` order; each declares its commands (COMMANDS)
and the ports they take. PORTS below is the one place in the console that reads the
firmware: it makes each ports dataclass from the firmware's attributes. A module that
declares a new ports class adds its line here, or the table refuses to build.
"""

from typing import Callable

from . import calls, commands, features, notes, offload, payments, phone, sim, translate
from .commands import BoundCommand, Command, bind

MODULES = (commands, features, calls, notes, offload, payments, phone, sim, translate)

# Read when a console opens, except `lifecycle`: it moves from starting to running after.
PORTS: dict[type, Callable] = {
    commands.VersionPorts: lambda fw: commands.VersionPorts(
        version=fw.version, board_name=fw.config.name, module=fw.config.board.module),
    commands.StatusPorts: lambda fw: commands.StatusPorts(
        board_name=fw.config.name, board=fw.board, sample=fw.sample, monitor=fw.monitor,
        modes=fw.modes, lifecycle=lambda: fw.lifecycle, worker_states=fw.worker_states,
        model_worker=fw.model_worker, voice_worker=fw.voice_worker, clock=fw.clock,
        started_at=fw.started_at, data_dir=fw.data_dir, phone_link=fw.phone_link,
        calls=fw.calls, media=fw.media),
    commands.SelftestPorts: lambda fw: commands.SelftestPorts(board=fw.board, blocking=fw.blocking),
    commands.SensorsPorts: lambda fw: commands.SensorsPorts(sample=fw.sample),
    commands.ModePorts: lambda fw: commands.ModePorts(
        sample=fw.sample, modes=fw.modes, lifecycle=lambda: fw.lifecycle, monitor=fw.monitor,
        assistant=fw.assistant, microphones=fw.board.microphones, arbiter=fw.arbiter,
        energy=fw.energy),
    commands.LogPorts: lambda fw: commands.LogPorts(log_tail=fw.log_tail),
    commands.ModelsPorts: lambda fw: commands.ModelsPorts(models_info=fw.models_info,
                                                          blocking=fw.blocking),
    features.ActionPorts: lambda fw: features.ActionPorts(router=fw.router),
    features.AssistantPorts: lambda fw: features.AssistantPorts(assistant=fw.assistant),
    calls.CallPorts: lambda fw: calls.CallPorts(calls=fw.calls, router=fw.router),
    calls.MusicPorts: lambda fw: calls.MusicPorts(media=fw.media, router=fw.router),
    notes.NotesPorts: lambda fw: notes.NotesPorts(
        data_dir=fw.data_dir, sealer=fw.sealer, recorder=fw.recorder,
        transcriber=fw.transcriber, clock=fw.clock, blocking=fw.blocking),
    offload.OffloadPorts: lambda fw: offload.OffloadPorts(offload=fw.offload),
    payments.PayPorts: lambda fw: payments.PayPorts(router=fw.router, payments=fw.payments,
                                                    blocking=fw.blocking),
    phone.PhonePorts: lambda fw: phone.PhonePorts(
        board_name=fw.config.name, link=fw.phone_link,
        companion=fw.phone if fw.phone_link is not None else None),
    sim.SimPorts: lambda fw: sim.SimPorts(
        sim=fw.board.sim, board_name=fw.config.name, buttons=fw.config.buttons, clock=fw.clock,
        blocking=fw.blocking, sample=fw.sample),
    translate.TranslatePorts: lambda fw: translate.TranslatePorts(router=fw.router,
                                                                  translator=fw.translator),
}


def definitions() -> tuple[Command, ...]:
    """Every console command as declared, in `help` order (no ports: for tools and tests)."""
    return tuple(cmd for module in MODULES for cmd in module.COMMANDS)


def build_table(fw) -> dict[str, BoundCommand]:
    """name -> the command bound to its ports, made from the firmware `fw` now.

    Each ports class is made once and shared by the commands that take it. KeyError when a
    command's ports class has no line in PORTS; ValueError when two commands share a name.
    """
    made: dict[type, object] = {}
    table: dict[str, BoundCommand] = {}
    for cmd in definitions():
        if cmd.name in table:
            raise ValueError(f"two console commands named {cmd.name!r}")
        if cmd.ports is not None and cmd.ports not in made:
            if cmd.ports not in PORTS:
                raise KeyError(f"console command {cmd.name!r} takes {cmd.ports.__qualname__}, "
                               "which table.PORTS does not make; add its line there")
            made[cmd.ports] = PORTS[cmd.ports](fw)
        table[cmd.name] = bind(cmd, made.get(cmd.ports))
    return table
