"""The one import root of the glasses firmware.

The repository keeps the design card's top-level folders (firmware/, drivers/, boards/,
models/, image/) beside this one; the wheel installs them under it (setup.py maps each
folder to `glasses_firmware.<folder>`), so site-packages holds a single name and
`glasses_firmware.firmware.app` is the same module in a checkout and on the glasses.

In a checkout the folders are siblings of this package, not children: adding the
repository root to `__path__` makes Python find them where they are. The check for
pyproject.toml keeps an installed copy from ever reaching into site-packages' other
top-level packages (another distribution's `models`, say).
"""

from pathlib import Path

_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "firmware" / "app.py").is_file():
    __path__.append(str(_checkout))  # noqa: F821 - __path__ is set for every package
