"""Regenerate the docs that are made from tables: `python -m glasses_firmware.firmware.tools.docgen [--check]`.

docs/modes.md whole, and the generated blocks of docs/assistant.md (the voice loop) and
docs/architecture.md (both diagrams). `--check` writes nothing and exits 1 if any is stale,
naming it; the test suite runs the same check.
"""

import sys
from pathlib import Path

from ..power import modes
from ..statetable import splice
from ..voice import loop

DOCS = Path(__file__).resolve().parents[2] / "docs"


def pages() -> dict[Path, str]:
    """Every generated page as it should read now."""
    assistant = DOCS / "assistant.md"
    architecture = DOCS / "architecture.md"
    arch = splice(architecture.read_text(), "modes", f"```mermaid\n{modes.mermaid()}\n```")
    arch = splice(arch, "voice-loop", f"```mermaid\n{loop.mermaid()}\n```")
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
