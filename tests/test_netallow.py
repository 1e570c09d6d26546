"""glasses-netallow: the sandbox's allow-list follows offload.toml (firmware/offload/netallow.py).

Setting the list on a running unit needs systemd; the boot test does that on the image
(`flash.sh boot-test`, "sandbox" phase). Here: what the list is, from the file as the
console writes it, and that a broken file or a name that does not resolve allows nothing.
"""

import socket
import subprocess
import sys

from glasses_firmware.firmware.offload import netallow, settings
from glasses_firmware.firmware.offload.settings import Server
from tests.conftest import ROOT


def fake_resolve(table):
    def resolve(host, port, proto=0):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, proto, "", (a, port)) for a in table[host]]
    return resolve


def test_addresses_are_allowed_as_they_are_and_names_with_their_resolver(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# local\nnameserver 192.168.1.1\nsearch lan\nnameserver fd00::1\n")
    servers = {"llm": Server("llm", "openai", "http://10.0.0.5:8080/v1"),
               "asr": Server("asr", "wyoming", "tcp://[fd00::7]:10300")}
    assert netallow.allowed(servers, fake_resolve({}), resolv) == \
        (["localhost", "10.0.0.5", "fd00::7"], [])          # no names: no resolver either
    servers["tts"] = Server("tts", "wyoming", "tcp://piper.lan:10200")
    assert netallow.allowed(servers, fake_resolve({"piper.lan": ["10.0.0.9", "10.0.0.5"]}), resolv) == \
        (["localhost", "10.0.0.5", "fd00::7", "10.0.0.9", "192.168.1.1", "fd00::1"], [])
    assert netallow.allowed({"tts": servers["tts"]}, fake_resolve({}), resolv) == \
        (["localhost", "192.168.1.1", "fd00::1"], ["piper.lan"])
    assert netallow.allowed({}) == (["localhost"], [])


def run(*args):
    return subprocess.run([sys.executable, "-m", "glasses_firmware.firmware.offload.netallow", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_the_command_reads_the_file_the_console_writes_and_a_broken_one_allows_loopback(tmp_path):
    assert run(str(tmp_path), "--dry-run").stdout == "glasses-netallow: glasses.service may reach localhost\n"
    settings.save(tmp_path, {"llm": Server("llm", "openai", "https://192.0.2.10:8080/v1", token="s3cret")})
    done = run(str(tmp_path), "--dry-run")
    assert done.returncode == 0
    assert done.stdout == "glasses-netallow: glasses.service may reach localhost 192.0.2.10\n"
    assert "s3cret" not in done.stdout + done.stderr
    (tmp_path / "offload.toml").write_text("[llm\nurl = ")
    done = run(str(tmp_path), "--dry-run")
    assert done.returncode == 0
    assert done.stdout == "glasses-netallow: glasses.service may reach localhost\n"
    assert "not valid TOML" in done.stderr and "allowing loopback only" in done.stderr


def test_systemctl_is_given_prefixes_not_the_unit_file_word_localhost():
    # systemd 252 refuses `set-property IPAddressAllow=localhost` ("Failed to parse IP
    # address prefix"), as the boot test found on the image.
    assert netallow.set_property("glasses.service", ["localhost", "192.0.2.10"]) == [
        "systemctl", "set-property", "--runtime", "glasses.service", "IPAddressAllow=",
        "IPAddressAllow=127.0.0.0/8 ::1/128 192.0.2.10"]
