"""Network system calls of a process tree, as strace sees them.

`traced(cmd, log)` puts a command under `strace -f` for the calls that make or use a
socket; `destinations(log)` reads back every INET/INET6 address a process connected or
sent to, DNS included (a lookup is a connect or sendto to port 53, whatever library made
it). Watching the calls, not a network namespace, is what catches a lookup that fails
quietly where there is no network: the call is made either way.
"""

import ipaddress
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

# execve: to show which programs the trace followed (the workers, espeak-ng, ffmpeg).
CALLS = "execve,socket,connect,sendto,sendmsg,sendmmsg"

# {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.1")}
# {sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", ...
_INET = re.compile(r'sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
_INET6 = re.compile(r'sa_family=AF_INET6, sin6_port=htons\((\d+)\), .*?inet_pton\(AF_INET6, "([^"]+)"')
_CALL = re.compile(r"^(\d+)\s+(?:\d+:\d+:\d+\.\d+\s+)?(\w+)\(")


@dataclass(frozen=True)
class Destination:
    pid: int
    call: str
    address: str
    port: int

    @property
    def loopback(self) -> bool:
        ip = ipaddress.ip_address(self.address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return ip.is_loopback

    def __str__(self) -> str:
        return f"pid {self.pid} {self.call} {self.address} port {self.port}"


# onnxruntime sends no telemetry where one of these is set (a build pipeline, by its
# reading; the names are in its library's strings). The tests clear them, so that what is
# traced is what a user's machine does, not what the CI machine's markers switch off.
CI_MARKERS = ("TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL",
              "CODEBUILD_BUILD_ID", "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR",
              "BITBUCKET_BUILD_NUMBER", "ORT_RUNNING_UNIT_TESTS")


def as_on_a_user_machine(env: dict) -> dict:
    """`env` without the markers that make onnxruntime's telemetry keep quiet by itself."""
    return {k: v for k, v in env.items() if k not in CI_MARKERS}


def strace() -> str | None:
    return shutil.which("strace")


def traced(cmd: list[str], log: Path) -> list[str]:
    """`cmd` under strace, every thread and child, the socket calls written to `log`."""
    # --seccomp-bpf stops the tracee only on the traced calls, not on every call of every
    # thread: without it the firmware runs several times slower and its audio falls behind.
    return [strace(), "-f", "--seccomp-bpf", "-qq", "-tt", "-e", f"trace={CALLS}", "-e", "signal=none",
            "-o", str(log), *cmd]


def destinations(log: Path) -> list[Destination]:
    """Every INET/INET6 address in a connect or send call of the trace."""
    found = []
    for line in Path(log).read_text(errors="replace").splitlines():
        call = _CALL.match(line)
        if call is None or call.group(2) in ("socket", "execve"):
            continue
        for pattern in (_INET, _INET6):
            for port, address in pattern.findall(line):
                found.append(Destination(int(call.group(1)), call.group(2), address, int(port)))
    return found


def inet_sockets(log: Path) -> list[str]:
    """The trace lines that made an INET or INET6 socket."""
    return [line for line in Path(log).read_text(errors="replace").splitlines()
            if re.search(r"\bsocket\(AF_INET6?,", line)]


def programs(log: Path) -> list[str]:
    """The argv of every program the trace saw started, in order."""
    out = []
    for line in Path(log).read_text(errors="replace").splitlines():
        call = _CALL.match(line)
        if call and call.group(2) == "execve" and "= -1" not in line:
            argv = re.search(r"\[(.*?)\]", line)
            out.append(" ".join(re.findall(r'"([^"]*)"', argv.group(1))) if argv else line)
    return out
