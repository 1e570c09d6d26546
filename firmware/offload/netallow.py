"""The addresses glasses.service may reach: loopback, and the offload servers the user set.

On the image, glasses.service is sandboxed with `IPAddressDeny=any` and
`IPAddressAllow=localhost` (image/rootfs.py), so the kernel drops any packet the firmware
sends elsewhere, whatever library tried. Setting an offload server must widen that to the
server and nothing more. The firmware cannot do it (it has no privilege, by design);
glasses-netallow.service does, as root: it runs before the firmware on every boot and
again whenever `<data>/offload.toml` changes (glasses-netallow.path), and sets the
running unit's allow list with `systemctl set-property --runtime`.

A server named by its IP address is allowed as that address. A server named by a host
name is allowed as the addresses the name resolves to now, plus the resolver's, because
the firmware looks the name up itself; prefer an address (docs/privacy.md).

    python -m glasses_firmware.firmware.offload.netallow DATA_DIR [--unit glasses.service] [--dry-run]
"""

import argparse
import ipaddress
import socket
import subprocess
import sys
from pathlib import Path

from glasses_firmware.drivers.errors import ConfigError

from . import settings

UNIT = "glasses.service"
RESOLV_CONF = Path("/etc/resolv.conf")


def nameservers(resolv_conf: Path = RESOLV_CONF) -> list[str]:
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return []
    return [f[1] for line in lines if len(f := line.split()) >= 2 and f[0] == "nameserver"]


def allowed(servers, resolve=socket.getaddrinfo,
            resolv_conf: Path = RESOLV_CONF) -> tuple[list[str], list[str]]:
    """(`localhost` and each server's addresses, in order, without repeats; the host names
    that did not resolve). Those are left out: the firmware cannot reach them either, and
    answers on the glasses."""
    out, names, unresolved = ["localhost"], False, []
    for server in servers.values():
        try:
            out.append(str(ipaddress.ip_address(server.host)))
            continue
        except ValueError:
            names = True
        try:
            infos = resolve(server.host, server.port, proto=socket.IPPROTO_TCP)
        except OSError:
            unresolved.append(server.host)
            continue
        out += [info[4][0] for info in infos]
    if names:
        out += nameservers(resolv_conf)
    return list(dict.fromkeys(out)), unresolved


# `localhost` is a word only unit files know; set-property wants the prefixes it stands for.
LOOPBACK = ("127.0.0.0/8", "::1/128")


def set_property(unit: str, addresses: list[str]) -> list[str]:
    """The systemctl command that makes `addresses` the running unit's IPAddressAllow= (the
    empty assignment first clears the list the unit file gave)."""
    prefixes = [p for a in addresses for p in (LOOPBACK if a == "localhost" else (a,))]
    return ["systemctl", "set-property", "--runtime", unit, "IPAddressAllow=",
            "IPAddressAllow=" + " ".join(prefixes)]


def apply(unit: str, addresses: list[str]) -> None:
    cmd = set_property(unit, addresses)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise ConfigError(f"systemctl set-property failed: {done.stderr.strip() or done.returncode}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="glasses-netallow", description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--unit", default=UNIT)
    ap.add_argument("--dry-run", action="store_true", help="print the list, change nothing")
    args = ap.parse_args(argv)
    try:
        servers = settings.load(args.data_dir)
    except ConfigError as e:
        # A broken file offloads nothing (the firmware says so too): loopback only.
        print(f"glasses-netallow: {e}; allowing loopback only", file=sys.stderr)
        servers = {}
    addresses, unresolved = allowed(servers)
    for host in unresolved:
        print(f"glasses-netallow: {host} does not resolve; not allowed", file=sys.stderr)
    if not args.dry_run:
        try:
            apply(args.unit, addresses)
        except (ConfigError, OSError, subprocess.TimeoutExpired) as e:
            print(f"glasses-netallow: {e}", file=sys.stderr)
            return 1
    print(f"glasses-netallow: {args.unit} may reach {' '.join(addresses)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
