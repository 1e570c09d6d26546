"""`--models DIR`: model files for the image, hashed, and checked against DIR/manifest.toml.

A manifest written by `glasses models install` or `build-test` ([models.NAME] tables with
a role and `files = [{path, sha256}]`, paths inside `DIR/NAME/`) is checked file by file;
its wheel models are skipped (their files come with the wheels). Any other manifest is read
loosely: any table that names a file (`file`, `path` or `name`) and a `sha256`, or that has
a `files` table of name -> sha256 or a `files` list of such tables, is checked. A file
whose hash differs is refused, naming the file and both hashes.
"""

import hashlib
import tomllib
from pathlib import Path

from .tools import FlashError

MANIFEST = "manifest.toml"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected(node, found: dict[str, str]) -> None:
    if isinstance(node, list):
        for item in node:
            _expected(item, found)
        return
    if not isinstance(node, dict):
        return
    name = next((node[k] for k in ("file", "path", "name") if isinstance(node.get(k), str)), None)
    if name and isinstance(node.get("sha256"), str):
        found[name] = node["sha256"].lower()
    files = node.get("files")
    if isinstance(files, dict) and all(isinstance(v, str) for v in files.values()):
        found.update({k: v.lower() for k, v in files.items()})
    for key, value in node.items():
        if key != "files" or not isinstance(value, dict):
            _expected(value, found)


def _model_tables(data: dict) -> dict[str, str] | None:
    """Files of a glasses models manifest, relative to the models directory; None if it is not one."""
    tables = data.get("models")
    if not isinstance(tables, dict) or not tables or not all(
            isinstance(t, dict) and "role" in t and isinstance(t.get("files"), list) for t in tables.values()):
        return None
    found = {}
    for name, table in tables.items():
        if str(table.get("source", "")).startswith("wheel:"):
            continue
        for f in table["files"]:
            if isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str):
                found[f"{name}/{f['path']}"] = f["sha256"].lower()
    return found


def collect(models_dir: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under `models_dir`; FlashError on a bad hash."""
    if not models_dir.is_dir():
        raise FlashError(f"{models_dir}: models directory not found")
    files = sorted(p for p in models_dir.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(models_dir).parts))
    hashes = {p.relative_to(models_dir).as_posix(): sha256(p) for p in files}
    manifest = models_dir / MANIFEST
    if manifest.exists():
        try:
            data = tomllib.loads(manifest.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise FlashError(f"{manifest}: not valid TOML: {e}") from None
        want = _model_tables(data)
        if want is None:
            want = {}
            _expected(data, want)
        for name, digest in sorted(want.items()):
            if name not in hashes:
                raise FlashError(f"{manifest}: lists {name}, which is not in {models_dir}; "
                                 "make it again with `glasses models install --models "
                                 f"{models_dir}` (or `glasses models fetch`)")
            if hashes[name] != digest:
                raise FlashError(f"{models_dir / name}: sha256 {hashes[name]} does not match the "
                                 f"manifest's {digest}; refusing a changed or damaged model")
    return hashes
