"""Board definitions: TOML files beside this module, loaded and validated."""

import tomllib
from pathlib import Path

from glasses_firmware.drivers.errors import ConfigError

from .schema import Board, from_toml

BOARDS_DIR = Path(__file__).parent


def names() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.toml"))


def load(name_or_path: str) -> Board:
    """Load a shipped board by name (`cm5-ref`) or any board file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = BOARDS_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise ConfigError(f"unknown board '{name_or_path}'; choose one of: "
                              f"{', '.join(names())}, or give a path to a .toml board file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: board file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return from_toml(data, str(path))
