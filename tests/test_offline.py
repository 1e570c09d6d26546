"""The offline guarantee (docs/privacy.md): no network traffic unless an offload server is set.

Two checks on the firmware with its model workers running (the offline test models):
it works in a network namespace with no usable interface (`unshare -n`, or `-rn` in a
user namespace), and none of its processes holds an INET or INET6 socket. The unix
sockets it does hold are multiprocessing's socketpairs to its workers (unnamed, never
bound to a path); sd_notify opens one only while sending, and only with NOTIFY_SOCKET.
"""

import os
import subprocess
from pathlib import Path

import pytest

from tests import conftest
from tests.conftest import RunningFirmware

# /proc/PID/net tables by socket family; a socket's inode is in exactly one of them.
TABLES = {"tcp": "INET", "udp": "INET", "raw": "INET", "tcp6": "INET6", "udp6": "INET6",
          "raw6": "INET6", "unix": "UNIX", "netlink": "NETLINK", "packet": "PACKET"}
INODE_COLUMN = {"unix": 6, "netlink": 8, "packet": 8}   # the rest: column 9 (0-based)


def family_table(pid: int) -> dict[int, tuple[str, str]]:
    """inode -> (family, detail) for every socket in `pid`'s network namespace."""
    out = {}
    for name, family in TABLES.items():
        path = Path(f"/proc/{pid}/net/{name}")
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            cols = row.split()
            col = INODE_COLUMN.get(name, 9)
            if len(cols) > col and cols[col].isdigit():
                if name == "unix":
                    detail = f"unix bound to {cols[7]}" if len(cols) > 7 else "unix unnamed"
                else:
                    detail = f"{name} {cols[1]} -> {cols[2]}"
                out[int(cols[col])] = (family, detail)
    return out


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant (the model workers)."""
    pids, i = [pid], 0
    while i < len(pids):
        for task in Path(f"/proc/{pids[i]}/task").glob("*/children"):
            pids += [int(c) for c in task.read_text().split()]
        i += 1
    return pids


def sockets(pid: int) -> list[tuple[int, str, str]]:
    """(pid, family, detail) for every socket the process tree of `pid` holds open."""
    table = family_table(pid)
    found = []
    for p in process_tree(pid):
        for fd in Path(f"/proc/{p}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:         # closed while we looked
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                family, detail = table.get(inode, ("UNKNOWN", f"inode {inode}"))
                found.append((p, family, detail))
    return found


def _check_offline(fw) -> list[tuple[int, str, str]]:
    socks = sockets(fw.proc.pid)
    for pid in process_tree(fw.proc.pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        print(pid, cmdline.decode(errors="replace")[-100:])
    for s in socks:
        print("  ", *s)
    # The one exception below: the sim board's dbus-daemon (drivers/sim/bluetooth.py), the
    # stand-in for a board's system bus, known by its config in the data directory. Its
    # socket is bound there (or in /tmp when that path is too long for dbus), and it holds
    # the kernel's audit netlink socket (listed in no /proc/net table; no network).
    bus_conf = str(fw.data_dir / "sim" / "bluetooth" / "bus.conf").encode()
    bus = {pid for pid in process_tree(fw.proc.pid)
           if (cmd := Path(f"/proc/{pid}/cmdline").read_bytes()).startswith(b"dbus-daemon\0")
           and bus_conf in cmd}
    assert [s for s in socks if s[1] in ("INET", "INET6")] == [], socks
    assert [s for s in socks if s[1] != "UNIX" and not (s[0] in bus and s[1] == "UNKNOWN")] == [], socks
    # Unix ones are unnamed socketpairs to the workers: a bound path would be a door in.
    assert [s for s in socks if s[1] == "UNIX" and s[2] != "unix unnamed"
            and s[0] not in bus] == [], socks
    return socks


def _use(fw):
    """Work that wakes every worker: the assistant, the camera, the self-test."""
    reply = fw.cmd("ask what time is it", timeout_s=120)
    assert reply.ok and reply.lines, reply
    assert fw.cmd("capture photo", timeout_s=60).ok
    assert fw.cmd("selftest", timeout_s=120).ok


def _unshare_prefix() -> list[str] | None:
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        try:
            if subprocess.run(prefix + ["true"], capture_output=True, timeout=10).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


def test_no_inet_socket_in_the_firmware_or_its_workers(tmp_path, test_models):
    fw = RunningFirmware(tmp_path, extra=("--models", str(test_models)))
    try:
        _use(fw)
        socks = _check_offline(fw)
        workers = process_tree(fw.proc.pid)[1:]
        assert workers, "the model workers did not start; the check saw only the firmware"
        # Every unix socket is one end of a pipe to a worker (multiprocessing socketpair).
        assert {p for p, _, _ in socks} <= set(process_tree(fw.proc.pid))
    finally:
        assert fw.stop() == 0


def test_the_firmware_runs_with_no_network_at_all(tmp_path, test_models):
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("neither `unshare -n` (root) nor `unshare -rn` (user namespaces) works here")
    fw = RunningFirmware(tmp_path, extra=("--models", str(test_models)), glasses=prefix + conftest.GLASSES)
    try:
        pid = fw.proc.pid    # unshare execs the firmware: the same process
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        interfaces = [row.split(":")[0].strip()
                      for row in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]]
        assert interfaces == ["lo"]     # and lo is down: nothing can be reached, not even itself
        _use(fw)
        _check_offline(fw)
    finally:
        assert fw.stop() == 0
