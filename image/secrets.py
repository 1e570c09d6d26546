"""`--secrets FILE`: the console PIN (stored only as its scrypt hash) and cloud-init user-data.

    pin = "1234"                      # 4-12 digits; only the hash reaches the image
    hostname = "glasses"              # optional
    [wifi]                            # optional
    ssid = "Home"
    password = "correct horse"
    country = "GB"
    [ssh]                             # optional: an admin login with these keys only
    user = "admin"
    authorized_keys = ["ssh-ed25519 AAAA... me@laptop"]

Unknown keys are refused, so a typo cannot silently drop a setting. The PIN's salt
is derived from the file's other settings and the board, so a rebuild with the same
file gives the same image; the PIN itself is never part of the salt.
"""

import hashlib
import json
import tomllib
from dataclasses import dataclass

from glasses_firmware.firmware.console.pin import hash_pin

from .tools import FlashError

KEYS = {"pin": str, "hostname": str, "wifi": dict, "ssh": dict}
WIFI_KEYS = {"ssid": str, "password": str, "country": str}
SSH_KEYS = {"user": str, "authorized_keys": list}


@dataclass(frozen=True)
class Secrets:
    pin_hash: str = ""
    user_data: str = ""              # cloud-init #cloud-config, empty if nothing to configure
    network_config: str = ""         # cloud-init network config v2 (Wi-Fi), or empty
    meta_data: str = ""


def _check_keys(table: dict, allowed: dict, where: str, path) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise FlashError(f"{path}: unknown key '{where}{key}'; expected one of: "
                             f"{', '.join(allowed)}")
        if not isinstance(value, allowed[key]):
            raise FlashError(f"{path}: '{where}{key}' must be a {allowed[key].__name__}")


def _yaml_str(s: str) -> str:
    return json.dumps(s)             # a JSON string is a valid YAML double-quoted scalar


def load(path, board_name: str) -> Secrets:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise FlashError(f"{path}: secrets file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise FlashError(f"{path}: not valid TOML: {e}") from None
    _check_keys(data, KEYS, "", path)
    wifi, ssh = data.get("wifi", {}), data.get("ssh", {})
    _check_keys(wifi, WIFI_KEYS, "wifi.", path)
    _check_keys(ssh, SSH_KEYS, "ssh.", path)

    pin_hash = ""
    if "pin" in data:
        rest = json.dumps({k: v for k, v in data.items() if k != "pin"}, sort_keys=True)
        salt = hashlib.sha256(f"glasses console pin\0{board_name}\0{rest}".encode()).digest()[:16]
        try:
            pin_hash = hash_pin(data["pin"], salt=salt)
        except ValueError as e:
            raise FlashError(f"{path}: 'pin': {e}") from None

    hostname = data.get("hostname", "")
    user_lines = []
    if hostname:
        user_lines += [f"hostname: {_yaml_str(hostname)}", "manage_etc_hosts: true"]
    if ssh:
        if "user" not in ssh or not ssh.get("authorized_keys"):
            raise FlashError(f"{path}: [ssh] needs 'user' and at least one 'authorized_keys' entry")
        user_lines += ["ssh_pwauth: false", "users:", f"  - name: {_yaml_str(ssh['user'])}",
                       "    groups: [sudo]", "    shell: /bin/bash", "    lock_passwd: true",
                       "    sudo: \"ALL=(ALL) NOPASSWD:ALL\"", "    ssh_authorized_keys:"]
        user_lines += [f"      - {_yaml_str(str(k))}" for k in ssh["authorized_keys"]]
        user_lines += ["runcmd:", "  - [systemctl, enable, --now, ssh]"]
    network = ""
    if wifi:
        if "ssid" not in wifi:
            raise FlashError(f"{path}: [wifi] needs 'ssid'")
        ap = f"        {_yaml_str(wifi['ssid'])}:\n"
        ap += f"          password: {_yaml_str(wifi['password'])}\n" if "password" in wifi else "          {}\n"
        network = ("network:\n  version: 2\n  wifis:\n    wlan0:\n      dhcp4: true\n      optional: true\n"
                   + (f"      regulatory-domain: {_yaml_str(wifi['country'])}\n" if "country" in wifi else "")
                   + "      access-points:\n" + ap)
    user_data = ("#cloud-config\n" + "".join(line + "\n" for line in user_lines)) if user_lines else ""
    meta = ""
    if user_data or network:
        instance = hashlib.sha256((user_data + network).encode()).hexdigest()[:16]
        meta = f"instance-id: glasses-{instance}\n"
        user_data = user_data or "#cloud-config\n"
    return Secrets(pin_hash, user_data, network, meta)
