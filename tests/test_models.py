"""The model manifest, verification, and the `glasses models` / `bench` command lines."""

import argparse
import asyncio
import json
import shutil

import pytest

from glasses_firmware.drivers.errors import ConfigError
from glasses_firmware.firmware.tools.models_cli import add_subcommands
from glasses_firmware.firmware.worker import InferenceClient, SupervisorSettings
from glasses_firmware.models import build_test, manifest
from glasses_firmware.models.verify import ModelCorrupt, ModelMissing, verify_entry

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="session")
def built():
    build_test.build(build_test.DEFAULT_OUT, log=lambda *a: None)
    return build_test.DEFAULT_OUT


@pytest.fixture
def models_copy(built, tmp_path):
    """A private copy of the tiny models, free to damage."""
    dst = tmp_path / "models"
    shutil.copytree(built, dst, ignore=shutil.ignore_patterns(".hf-*", ".verified.json"))
    return dst


def glasses(*argv) -> int:
    parser = argparse.ArgumentParser(prog="glasses")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_packaged_manifest_names_every_role_and_pins_the_wheel_models():
    m = manifest.load()
    assert set(m.roles) == set(manifest.ROLES)
    for name, entry in m.models.items():
        assert entry.license and entry.quantization and entry.source, name
        if entry.wheel:  # shipped in an installed wheel: the pinned hashes must hold
            assert len(verify_entry(m, entry, use_cache=False)) == len(entry.files)


def test_build_test_writes_a_manifest_whose_hashes_verify(built):
    m = manifest.load(built)
    assert m.roles["llm"] == build_test.LLM_TINY
    for role in ("llm", "asr", "tts"):
        entry = m.for_role(role)
        assert entry.random_weights
        verify_entry(m, entry, use_cache=False)
    assert (built / ".gitignore").read_text().strip().endswith("*")
    # The test ASR has the real Whisper's layout (what `glasses models install` writes),
    # so the same runtime serves both; "random weights" is said in the entry.
    asr = m.for_role("asr")
    assert {f.path for f in asr.files} == set(build_test.ASR_FILES)
    assert "random" in asr.source and "random weights" in asr.license
    assert sum(f.size for f in asr.files) < 5e6


def test_corrupted_model_is_refused_naming_the_file_and_both_hashes(models_copy):
    m = manifest.load(models_copy)
    entry = m.for_role("llm")
    expected = next(f.sha256 for f in entry.files if f.path == "model.onnx.data")
    data = models_copy / entry.name / "model.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(ModelCorrupt) as e:
        verify_entry(m, entry)
    msg = str(e.value)
    assert str(data) in msg and expected in msg and "refusing" in msg
    actual = msg.split("has sha256 ")[1].split(",")[0]
    assert len(actual) == 64 and actual != expected
    assert glasses("models", "verify", "--models", str(models_copy)) == 1


def test_missing_model_names_the_command_that_fetches_it(models_copy):
    m = manifest.load(models_copy)
    entry = m.for_role("asr")
    (models_copy / entry.name / "decoder.onnx").unlink()
    with pytest.raises(ModelMissing, match=r"decoder\.onnx is missing; get it with "
                                           r"`glasses models build-test --out "):
        verify_entry(m, entry)
    prod = manifest.load(None)
    with pytest.raises(ConfigError, match=r"not installed; run `glasses models install`"):
        prod.for_role("llm")             # a default role, before the install has built it
    with pytest.raises(ConfigError, match="needs a models directory"):
        verify_entry(prod, prod.models["qwen2.5-0.5b-instruct-int4"])
    with pytest.raises(ModelMissing, match=r"glasses models fetch qwen2.5-0.5b-instruct-int4 --models"):
        verify_entry(manifest.load(models_copy / "empty"), prod.models["qwen2.5-0.5b-instruct-int4"])


def test_worker_reports_model_errors_to_the_caller(models_copy):
    m = manifest.load(models_copy)
    (models_copy / m.roles["asr"] / "encoder.onnx").unlink()
    voice = models_copy / m.roles["tts"] / "voice.onnx"
    voice.write_bytes(voice.read_bytes() + b"tampered")

    async def main():
        client = InferenceClient(models_copy, threads=1,
                                 settings=SupervisorSettings(heartbeat_interval_s=0.2))
        await client.start(timeout_s=60)
        try:
            with pytest.raises(ModelMissing, match="encoder.onnx is missing"):
                await client.transcribe([0.0] * 16000)
            with pytest.raises(ModelCorrupt, match="voice.onnx is"):
                await client.tts("hello")
            assert client.state == "ready"  # a bad model is the request's problem, not the worker's
        finally:
            await client.stop()
    asyncio.run(asyncio.wait_for(main(), 90))


def test_manifest_with_an_unknown_key_is_an_error_naming_file_and_key(tmp_path):
    (tmp_path / "manifest.toml").write_text(
        '[models.x]\nrole = "llm"\nsource = "s"\nfiles = []\nsha = "typo"\n')
    with pytest.raises(ConfigError, match=r"manifest.toml: \[models.x\]: unknown key\(s\) sha"):
        manifest.load(tmp_path)
    (tmp_path / "manifest.toml").write_text('[roles]\nllm = "nothing"\n')
    with pytest.raises(ConfigError, match="no \\[models.nothing\\]"):
        manifest.load(tmp_path)


def test_models_list_json(built, capsys):
    assert glasses("models", "list", "--models", str(built), "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    active = {r["role"]: r["name"] for r in rows if r["active"]}
    assert active["llm"] == build_test.LLM_TINY and active["vad"] == "silero-vad"


def test_fetch_refuses_unpinned_files_without_pin(tmp_path):
    with pytest.raises(ModelCorrupt, match="no pinned sha256"):
        glasses("models", "fetch", "piper-en_US-lessac-medium", "--models", str(tmp_path))
