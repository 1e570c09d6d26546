"""Regenerate the docs that are made from tables: `python -m glasses_firmware.firmware.tools.docgen [--check]`.

docs/modes.md whole, and the generated blocks of docs/assistant.md (the voice loop) and
docs/architecture.md (every state machine's diagram, DIAGRAMS). `--check` writes nothing
and exits 1 if any is stale, naming it; the test suite runs the same check.
"""

import sys
from pathlib import Path

from glasses_firmware.drivers import camera

from .. import statetable
from ..offload import router
from ..payments import flow
from ..phone import bluez, calls
from ..power import modes
from ..statetable import splice
from ..voice import loop
from ..worker import supervisor

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _camera() -> str:
    # drivers/ cannot import statetable, so the camera's table is drawn from here.
    return statetable.mermaid(camera.TRANSITIONS, camera.INITIAL)


# The state diagrams in docs/architecture.md: block name -> its Mermaid text. A new machine
# is one line here and its markers in the page's "State machines" section.
DIAGRAMS = {
    "modes": modes.mermaid,
    "voice-loop": loop.mermaid,
    "worker": supervisor.diagram,
    "calls": calls.mermaid,
    "camera": _camera,
    "payments": flow.mermaid,
    "offload-health": router.mermaid,
    "phone-link": bluez.mermaid,
}


def pages() -> dict[Path, str]:
    """Every generated page as it should read now."""
    assistant = DOCS / "assistant.md"
    architecture = DOCS / "architecture.md"
    arch = architecture.read_text()
    for name, diagram in DIAGRAMS.items():
        arch = splice(arch, name, f"```mermaid\n{diagram()}\n```")
    return {
        DOCS / "modes.md": modes.markdown(),
        assistant: splice(assistant.read_text(), "voice-loop", loop.markdown()),
        architecture: arch,
    }


def stale() -> list[Path]:
    return [path for path, text in pages().items() if path.read_text() != text]


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        old = stale()
        for path in old:
            print(f"{path} is stale: run python -m glasses_firmware.firmware.tools.docgen", file=sys.stderr)
        return 1 if old else 0
    for path, text in pages().items():
        if path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
