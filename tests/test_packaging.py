"""The wheel as a user installs it: every shipped file in it, one import root, and the
firmware running from a clean venv outside the checkout (docs/flash.md, "The wheel")."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from glasses_firmware import layout
from glasses_firmware.image.wheels import build_firmware
from tests.conftest import ROOT, RunningFirmware

WHEELHOUSE = ROOT / ".venv" / "wheelhouse"     # the dependencies, downloaded by scripts/setup.sh


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_firmware(ROOT, tmp_path_factory.mktemp("wheel"))


def tracked() -> list[str]:
    """Where each file git tracks in the firmware's folders lands in the wheel."""
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    tops = layout.parts(ROOT)
    return [n if n.startswith(f"{layout.ROOT}/") else f"{layout.ROOT}/{n}" for n in out.split()
            if n.split("/")[0] in (*tops, layout.ROOT) and layout.kept(Path(n))]


def test_the_wheel_holds_every_tracked_file_under_one_root(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"glasses_firmware", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    shipped = {n for n in names if n.startswith("glasses_firmware/")}
    files = set(tracked())
    assert "glasses_firmware/firmware/offload/__init__.py" in files   # the package the hand list missed
    assert sorted(files - shipped) == [], "tracked files missing from the wheel"
    assert sorted(shipped - files) == [], "files in the wheel that git does not track (built or stale)"
    for must in ("boards/cm5-ref.toml", "models/manifest.toml", "firmware/tools/profiles/typical.toml"):
        assert f"glasses_firmware/{must}" in shipped


def test_a_package_added_to_the_tree_is_in_the_wheel(tmp_path):
    """No hand-written list to forget: a new folder with an __init__.py ships by itself."""
    repo = tmp_path / "repo"
    for rel in layout.source_files(ROOT):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    (repo / "firmware" / "newpart").mkdir()
    (repo / "firmware" / "newpart" / "__init__.py").write_text("X = 1\n")
    (repo / "firmware" / "newpart" / "table.toml").write_text("a = 1\n")
    (repo / "models" / "installed").mkdir()
    (repo / "models" / "installed" / "big.onnx").write_bytes(b"weights")
    names = zipfile.ZipFile(build_firmware(repo, tmp_path / "out")).namelist()
    assert "glasses_firmware/firmware/newpart/__init__.py" in names
    assert "glasses_firmware/firmware/newpart/table.toml" in names
    assert not [n for n in names if "installed" in n]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, dict]:
    """A fresh venv outside the checkout with the wheel and its dependencies, offline."""
    if not WHEELHOUSE.is_dir():
        pytest.fail(f"{WHEELHOUSE} is missing: scripts/setup.sh downloads the dependencies there")
    d = tmp_path_factory.mktemp("installed")
    venv = d / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    r = subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-index", "--find-links", str(WHEELHOUSE),
                        str(wheel)], capture_output=True, text=True, timeout=900, env=env, cwd=d)
    assert r.returncode == 0, r.stderr[-3000:]
    return venv, env


def test_installed_wheel_imports_from_site_packages_only(installed):
    venv, env = installed
    r = subprocess.run([str(venv / "bin/python"), "-c",
                        "import glasses_firmware.firmware.app as a, glasses_firmware.firmware.offload as o, "
                        "importlib.util as u; print(a.__file__); "
                        "print([n for n in ('firmware', 'drivers', 'models', 'image', 'boards') if u.find_spec(n)])"],
                       capture_output=True, text=True, env=env, cwd=venv.parent, timeout=120)
    assert r.returncode == 0, r.stderr
    path, leaked = r.stdout.splitlines()
    assert "site-packages/glasses_firmware/firmware/app.py" in path and str(ROOT) not in path
    assert leaked == "[]", f"top-level names installed besides glasses_firmware: {leaked}"


def test_installed_selftest_and_run(installed, tmp_path):
    venv, env = installed
    glasses = str(venv / "bin/glasses")
    r = subprocess.run([glasses, "selftest", "--board", "sim", "--json", "--data-dir", str(tmp_path / "st")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and {d["device"] for d in report["devices"]} >= {"imu", "camera", "microphones"}

    fw = RunningFirmware(tmp_path, glasses=[glasses], cwd=tmp_path, env=env)
    try:
        version = fw.cmd("version")
        assert version.ok, version.lines
        status = fw.cmd("status --json")
        assert status.ok and status.json()["mode"], status.lines
    finally:
        code = fw.stop()
    assert code == 0, (tmp_path / "stdout.txt").read_text()[-2000:]
