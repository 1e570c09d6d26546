"""Which files of the repository make up the installed firmware: one rule for setup.py,
`flash.sh build` (image/wheels.py) and tests/test_packaging.py.

Every top-level folder with an __init__.py is a part of the firmware, except tests/; inside
the parts, everything is shipped except what is built there (the installed models, model
build folders, caches) and dot-files.
"""

from pathlib import Path

ROOT = "glasses_firmware"
NOT_SHIPPED = frozenset({"tests", ROOT})
BUILT = frozenset({"installed", "test-build", "real-build", "__pycache__", "build", "dist"})
TOP_FILES = ("pyproject.toml", "setup.py", "README.md")


def kept(rel: Path) -> bool:
    """True for a path (relative to the repository) that may go into the wheel."""
    return not any(p in BUILT or p.startswith(".") or p.endswith((".pyc", ".egg-info"))
                   for p in rel.parts)


def parts(repo: Path) -> list[str]:
    return sorted(p.parent.name for p in repo.glob("*/__init__.py") if p.parent.name not in NOT_SHIPPED)


def source_files(repo: Path) -> list[Path]:
    """Every file the wheel is built from, relative to the repository."""
    out = [Path(n) for n in TOP_FILES if (repo / n).is_file()]
    for top in (ROOT, *parts(repo)):
        out += sorted(f.relative_to(repo) for f in (repo / top).rglob("*")
                      if f.is_file() and kept(f.relative_to(repo)))
    return out
