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

import os
from pathlib import Path

# onnxruntime (1.32) and onnxruntime-genai (0.18) ship Microsoft's 1DS telemetry on Linux:
# seconds after the first session they resolve mobile.events.data.microsoft.com, and they
# keep an event store in ~/.cache/Microsoft/DeveloperTools/. `disable_telemetry_events()`
# does not stop the lookups (traced); this variable, read when the library starts, does.
# Every process of the firmware imports this package before either library (the workers
# too, and they inherit it), so it is set here, unconditionally: the glasses promise no
# traffic, and a user's environment must not turn it back on. tests/test_tracing.py.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "firmware" / "app.py").is_file():
    __path__.append(str(_checkout))  # noqa: F821 - __path__ is set for every package
