"""Console commands for offload (docs/offload.md): which server answers which model role.

`offload [--json]` shows each role's server (token as `****`) and whether it answers;
`offload set ROLE PROTOCOL URL [--model NAME] [--deadline S] [--ca FILE]` sets one,
`offload token ROLE [--file PATH]` its bearer token (the next console line, or a file: the
token is never typed as an argument, so it is never in a command line that gets echoed or
logged), `offload off ROLE|all` goes back to the glasses.
"""

import asyncio
import dataclasses
from typing import TYPE_CHECKING

from glasses_firmware.drivers.errors import ConfigError

from ..offload import settings
from .commands import Command, CommandError, as_json, take_flag

if TYPE_CHECKING:
    from ..offload.control import Offload

USAGE = ("offload [--json] | offload set llm|asr|tts openai|wyoming URL [--model NAME] "
         "[--deadline S] [--ca FILE] | offload token ROLE [--file PATH] | offload off ROLE|all")
TOKEN_WAIT_S = 30.0


@dataclasses.dataclass(frozen=True)
class OffloadPorts:
    offload: "Offload"      # the settings and the wrappers around the workers (offload/control.py)


async def cmd_offload(session, ports: OffloadPorts, args):
    control = ports.offload
    args, js = take_flag(args, "--json")
    match args:
        case []:
            status = control.status()
            return as_json(status) if js else _lines(status)
        case ["set", role, protocol, url, *options]:
            opts = _options(options)
            old = control.servers.get(role)
            try:
                server = settings.Server(
                    role=role, protocol=protocol, url=url,
                    model=opts.get("--model", old.model if old else ""),
                    token=old.token if old else "",
                    ca_file=opts.get("--ca", old.ca_file if old else ""),
                    deadline_s=_seconds(opts.get("--deadline"), role))
            except ConfigError as e:
                raise CommandError(f"{e}; usage: {USAGE}") from None
            control.set(server)
            return [f"offload {role}: {server.protocol} {server.url}"
                    f"{' model ' + server.model if server.model else ''}, "
                    f"deadline {server.deadline_s:g} s; answered on the glasses if it fails"]
        case ["token", role, *options]:
            old = control.servers.get(role)
            if old is None:
                raise CommandError(f"no offload server for {role}; `offload set {role} ...` first")
            opts = _options(options)
            if "--file" in opts:
                token = settings.read_token_file(opts["--file"])
            else:
                token = await _next_line(session)
            control.set(dataclasses.replace(old, token=token))
            return [f"offload {role}: token set ({settings.MASK})"]
        case ["off", role] if role in (*settings.ROLES, "all"):
            if not control.clear(role):
                return [f"offload {role}: already on the glasses"]
            return [f"offload {role}: off; answered on the glasses"]
    raise CommandError(f"usage: {USAGE}")


COMMANDS = (
    Command("offload", "offload [--json]|set|token|off ...",
            "servers that answer the LLM, ASR or TTS instead of the glasses", cmd_offload,
            OffloadPorts),
)


def _lines(status: dict) -> list[str]:
    """`offload` as text: one line per role (the token only as ****)."""
    lines = [f"offload setting unusable: {status['error']}"] if status["error"] else []
    for role in settings.ROLES:
        st = status["roles"].get(role)
        if st is None:
            lines.append(f"{role:<4} on the glasses")
            continue
        s = st["server"]
        extra = "".join(f" {k} {s[k]}" for k in ("model", "token") if s[k])
        why = f" ({st['reason']}; retry in {st['retry_s']:g} s)" if st["state"] == "down" else ""
        lines.append(f"{role:<4} {s['protocol']} {s['url']}{extra}, deadline {s['deadline_s']:g} s: "
                     f"{st['state']}{why}, served {st['served']}, on the glasses {st['fallbacks']}")
    return lines


def _options(options: list[str]) -> dict[str, str]:
    if len(options) % 2 or any(o not in ("--model", "--deadline", "--ca", "--file")
                               for o in options[::2]):
        raise CommandError(f"cannot read the options '{' '.join(options)[:80]}'; usage: {USAGE}")
    return dict(zip(options[::2], options[1::2]))


def _seconds(text: str | None, role: str) -> float:
    if text is None:
        return settings.DEFAULT_DEADLINE_S[role] if role in settings.DEFAULT_DEADLINE_S else 4.0
    try:
        return float(text)
    except ValueError:
        raise CommandError(f"--deadline '{text[:20]}' is not a number of seconds, e.g. 4") from None


async def _next_line(session) -> str:
    """The next line typed on this console, taken before the session runs it as a command."""
    session.send_lines(["type the token on the next line (it is not shown again):"])
    # Typed characters are not echoed back meanwhile (`echo on` terminals), as a password.
    echo, session.echo = session.echo, False
    try:
        # The session's own next framed input line (session.py): it never reaches the
        # command parser, so no error message can quote it.
        line = await asyncio.wait_for(session.next_line(), TOKEN_WAIT_S)
    except asyncio.TimeoutError:
        raise CommandError(f"no token within {TOKEN_WAIT_S:g} s; try `offload token ROLE "
                           "--file PATH`") from None
    finally:
        session.echo = echo
    if line.error or not line.text.strip():
        raise CommandError("the token line was empty or not text; nothing changed")
    return line.text.strip()
