"""The model manifest: which model plays each role, its files, hashes and provenance.

The packaged `models/manifest.toml` is read first; a models directory's own
`manifest.toml` (written by `glasses models install` or `build-test`, or `fetch` after a
build step) overrides its roles and adds or replaces models. Files of a `wheel:` model
live in the installed wheel; all others live in `<models dir>/<model name>/`.

`glasses models install` writes the real models into DEFAULT_DIR; `default_models_dir()`
is how the rest of the firmware finds it when no `--models` is given.
"""

import importlib.util
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from glasses_firmware.drivers.errors import ConfigError

PACKAGE_MANIFEST = Path(__file__).with_name("manifest.toml")
PACKAGE_CATALOG = Path(__file__).with_name("packages.toml")   # models/packages.py
# Where `glasses models install` puts the real models (next to this file, git-ignored).
DEFAULT_DIR = Path(__file__).with_name("installed")
ROLES = ("vad", "wake", "grammar", "asr", "llm", "tts", "ocr", "speaker")
_MODEL_KEYS = {"role", "source", "license", "languages", "quantization", "files", "build",
               "notes", "random_weights", "inputs"}
_FILE_KEYS = {"path", "sha256", "size", "url"}
# Wheel name -> its top-level import package, where the wheel keeps its model files.
_WHEEL_PACKAGES = {"silero-vad": "silero_vad", "pyopen-wakeword": "pyopen_wakeword",
                   "pocketsphinx": "pocketsphinx", "rapidocr-onnxruntime": "rapidocr_onnxruntime"}


class ModelNotInstalled(ConfigError):
    """A role names a model that `glasses models install` builds, and it has not been built."""


@dataclass(frozen=True)
class ModelFile:
    path: str          # relative to the model's directory (or the wheel's site-packages)
    sha256: str        # "" = not pinned yet
    size: int | None = None
    url: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    role: str
    source: str
    license: str
    languages: tuple[str, ...]
    quantization: str
    files: tuple[ModelFile, ...]
    build: str | None = None
    random_weights: bool = False
    manifest: str = ""   # which manifest file defined it
    notes: str = ""
    inputs: tuple[str, ...] = ()   # what an installed model was built from (a change rebuilds it)

    @property
    def wheel(self) -> str | None:
        return self.source[len("wheel:"):] if self.source.startswith("wheel:") else None


@dataclass(frozen=True)
class Manifest:
    roles: dict[str, str]
    models: dict[str, ModelEntry]
    models_dir: Path | None

    def for_role(self, role: str) -> ModelEntry:
        if role not in ROLES:
            raise ConfigError(f"unknown model role {role!r}; roles are {', '.join(ROLES)}")
        name = self.roles.get(role)
        if name is None:
            raise ConfigError(f"no model is assigned to role {role!r} in the manifest")
        if name not in self.models:
            raise ModelNotInstalled(f"the {role} model {name!r} is not installed; run "
                                    "`glasses models install` (or give --models DIR)")
        return self.models[name]

    def directory(self, entry: ModelEntry) -> Path:
        """Where the entry's files live."""
        if entry.wheel:
            return wheel_root(entry.wheel)
        if self.models_dir is None:
            raise ConfigError(f"model {entry.name} needs a models directory (--models DIR)")
        return self.models_dir / entry.name

    def path(self, entry: ModelEntry, rel: str) -> Path:
        return self.directory(entry) / rel


def _installable() -> set[str]:
    """The names `glasses models install` builds: a role may name one before it is built.

    Read straight from the catalog's TOML: packages.py (which checks the catalog) builds
    on this module, not the other way round. A catalog that does not parse names none.
    """
    try:
        data = tomllib.loads(PACKAGE_CATALOG.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return set()
    return {d["name"] for d in data.values() if isinstance(d, dict) and "name" in d}


def default_models_dir() -> Path | None:
    """DEFAULT_DIR if `glasses models install` has written its manifest there, else None."""
    return DEFAULT_DIR if (DEFAULT_DIR / "manifest.toml").is_file() else None


def wheel_root(wheel: str) -> Path:
    """The site-packages directory holding `wheel`'s package; error naming the install."""
    package = _WHEEL_PACKAGES.get(wheel, wheel.replace("-", "_"))
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the {wheel} wheel is not installed; install it with "
                          f"`pip install {wheel}`" + (" --no-deps" if wheel == "silero-vad" else ""))
    return Path(list(spec.submodule_search_locations)[0]).parent


def load(models_dir=None) -> Manifest:
    """The packaged manifest overlaid with `<models_dir>/manifest.toml` if there is one."""
    roles: dict[str, str] = {}
    models: dict[str, ModelEntry] = {}
    sources = [PACKAGE_MANIFEST]
    if models_dir is not None and (Path(models_dir) / "manifest.toml").exists():
        sources.append(Path(models_dir) / "manifest.toml")
    for src in sources:
        r, m = _parse(src)
        roles.update(r)
        models.update(m)
    for role, name in roles.items():
        if role not in ROLES:
            raise ConfigError(f"{sources[-1]}: [roles] has unknown role {role!r}")
        if name not in models and name not in _installable():
            raise ConfigError(f"[roles] {role} = {name!r} but no [models.{name}] is defined")
    return Manifest(roles, models, Path(models_dir) if models_dir is not None else None)


def _parse(path: Path) -> tuple[dict, dict]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the model manifest: {e}") from None
    unknown = set(data) - {"roles", "models"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    models = {}
    for name, d in data.get("models", {}).items():
        where = f"{path}: [models.{name}]"
        bad = set(d) - _MODEL_KEYS
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(bad))}")
        for key in ("role", "source", "files"):
            if key not in d:
                raise ConfigError(f"{where}: missing key {key!r}")
        files = []
        for f in d["files"]:
            bad = set(f) - _FILE_KEYS
            if bad or "path" not in f or "sha256" not in f:
                raise ConfigError(f"{where}: each file needs path and sha256 "
                                  f"(and may have size, url); got {sorted(f)}")
            files.append(ModelFile(f["path"], f["sha256"].lower(), f.get("size"), f.get("url")))
        models[name] = ModelEntry(name, d["role"], d["source"], d.get("license", "unknown"),
                                  tuple(d.get("languages", ())), d.get("quantization", "unknown"),
                                  tuple(files), d.get("build"), bool(d.get("random_weights")),
                                  str(path), d.get("notes", ""), tuple(d.get("inputs", ())))
    return dict(data.get("roles", {})), models


def _q(text: str) -> str:
    # JSON and TOML basic strings escape alike; ensure_ascii=False keeps JSON from writing
    # surrogate pairs, which TOML rejects. Names and licenses may hold quotes.
    return json.dumps(text, ensure_ascii=False)


def dump(roles: dict[str, str], entries: list[ModelEntry]) -> str:
    """TOML text for a models-directory manifest (what install and build-test write)."""
    lines = ["# Written by glasses models; hashes computed when the files were made.", "",
             "[roles]"]
    lines += [f"{role} = {_q(name)}" for role, name in roles.items()]
    for e in entries:
        lines += ["", f"[models.{_q(e.name)}]", f"role = {_q(e.role)}", f"source = {_q(e.source)}",
                  f"license = {_q(e.license)}",
                  "languages = [" + ", ".join(_q(x) for x in e.languages) + "]",
                  f"quantization = {_q(e.quantization)}",
                  f"random_weights = {'true' if e.random_weights else 'false'}"]
        if e.notes:
            lines.append(f"notes = {_q(e.notes)}")
        if e.inputs:
            lines += ["inputs = ["] + [f"  {_q(x)}," for x in e.inputs] + ["]"]
        lines.append("files = [")
        lines += [f"  {{ path = {_q(f.path)}, size = {f.size}, sha256 = {_q(f.sha256)} }},"
                  for f in e.files]
        lines.append("]")
    return "\n".join(lines) + "\n"
