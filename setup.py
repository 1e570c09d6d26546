"""Packages found from the tree, installed under one import root.

Every top-level folder of the repository that is a Python package (has __init__.py),
except tests/, is a part of the firmware; it and every package below it install as
`glasses_firmware.<folder>...` (see glasses_firmware/__init__.py for how a checkout finds
them under the same names). Data files are every other file inside those packages except
what is built there (glasses_firmware/layout.py has the rule). Nothing here is a list
written by hand, so a new package or data file cannot be left out of the wheel;
tests/test_packaging.py checks the wheel against the files git tracks.
"""

import importlib.util
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_layout", HERE / "glasses_firmware" / "layout.py")
layout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layout)


def find() -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    packages, dirs, data = [layout.ROOT], {layout.ROOT: layout.ROOT}, {}
    files = layout.source_files(HERE)
    package_dirs = sorted({f.parent for f in files if f.name == "__init__.py"})
    for d in package_dirs:
        name = layout.ROOT if d.parts[0] == layout.ROOT else ".".join((layout.ROOT, *d.parts))
        if name != layout.ROOT:
            packages.append(name)
        dirs[name] = d.as_posix()
        # data: files of this package (in it or in folders below that are not packages)
        own = [f for f in files if f.suffix != ".py" and _owner(f, package_dirs) == d]
        if own:
            data[name] = [f.relative_to(d).as_posix() for f in own]
    return packages, dirs, data


def _owner(f: Path, package_dirs: list[Path]) -> Path | None:
    d = f.parent
    while d != Path("."):
        if d in package_dirs:
            return d
        d = d.parent
    return None


packages, package_dir, package_data = find()
setup(packages=packages, package_dir=package_dir, package_data=package_data, include_package_data=False)
