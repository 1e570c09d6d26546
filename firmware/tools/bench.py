"""`glasses bench`: speed of every role through the worker, and of genai called directly.

Numbers come from the models in the directory given; random-weight models measure speed
only. `direct_*` runs onnxruntime-genai in this process on the same model, after the
worker's runs, with the same threads, so the ratio shows what the worker costs.
`ceiling_tok_s` = read bandwidth (all cores, measured now) / weight bytes read per token.

VAD and wake word are streamed as the firmware does it: 5 s of audio sent as consecutive
32 ms (VAD) and 80 ms (wake) requests; `direct_ms_per_s` runs the same model on the same
chunks in this process on one thread, so the difference is the worker's per-request cost.
"""

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

from glasses_firmware.drivers.errors import GlassesError
from glasses_firmware.drivers.waits import joined

from .bench_direct import VAD_CHUNK, WAKE_CHUNK, direct_vad_ms_per_s, direct_wake_ms_per_s

ROUNDS = 3           # best of: this machine's bandwidth swings from run to run
SYSTEM = ("You are the assistant inside a pair of AI glasses. Answer in one or two short "
          "sentences, in the language of the question. The wearer can see the answer "
          "as captions and hears it spoken. ") * 3
LONG_PROMPT = "Summarise the meeting notes that follow. " + "The team met and spoke. " * 36
AUDIO_S = 5


def read_bandwidth_gbs(threads: int, size_mb: int = 512) -> float:
    """Best-of-5 read bandwidth in GB/s, summing a buffer split across `threads` threads."""
    a = np.ones(size_mb * (1 << 20) // 8, np.float64)
    parts = np.array_split(a, threads)
    best = 0.0
    for _ in range(5):
        ts = [threading.Thread(target=np.max, args=(p,)) for p in parts]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        if not all(joined(t, 60.0) for t in ts):
            raise RuntimeError("bandwidth threads did not finish within 60 s")
        best = max(best, a.nbytes / (time.perf_counter() - t0) / 1e9)
    return best


def weight_bytes_per_token(model_dir: Path) -> int:
    """Bytes of initializers every decode step reads (embedding lookups read one row only)."""
    import onnx
    m = onnx.load(str(model_dir / "model.onnx"), load_external_data=False)
    sizes = {}
    for init in m.graph.initializer:
        ext = {e.key: e.value for e in init.external_data}
        sizes[init.name] = int(ext["length"]) if "length" in ext else len(init.raw_data)
    users: dict[str, set] = {}
    for node in m.graph.node:
        for name in node.input:
            users.setdefault(name, set()).add(node.op_type)
    gather_only = {n for n, ops in users.items() if ops <= {"Gather", "GatherBlockQuantized"}}
    return sum(s for n, s in sizes.items() if n not in gather_only)


async def _time_stream(stream) -> tuple[float, float, int]:
    """(time to first piece, decode tok/s after it, pieces)."""
    t0 = time.perf_counter()
    first = last = None
    n = 0
    async for _ in stream:
        last = time.perf_counter()
        first = first or last
        n += 1
    ttft = (first - t0) if first else float("nan")
    rate = (n - 1) / (last - first) if n > 1 and last > first else float("nan")
    return ttft, rate, n


class DirectGenai:
    """onnxruntime-genai called directly, in this process, on the worker's model."""

    def __init__(self, model_dir: Path, threads: int, session_options=None):
        import onnxruntime_genai as og
        self.og = og
        cfg = og.Config(str(model_dir))
        cfg.clear_providers()
        cfg.overlay(json.dumps({"model": {"decoder": {"session_options": {
            "intra_op_num_threads": threads, "inter_op_num_threads": 1,
            **{str(k): str(v) for k, v in (session_options or {}).items()}}}}}))
        self.model = og.Model(cfg)
        self.tok = og.Tokenizer(self.model)

    def prompt_text(self, system: str, user: str = "Hello there") -> str:
        """The chat-formatted prompt, as the worker builds it (llama.cpp gets the same text)."""
        return self.tok.apply_chat_template(json.dumps([
            {"role": "system", "content": system}, {"role": "user", "content": user}]),
            add_generation_prompt=True)

    def run(self, tokens: int, system: str) -> tuple[float, float]:
        """(time to first token s, decode tok/s after it) for one greedy answer, no cache."""
        og = self.og
        ids = self.tok.encode(self.prompt_text(system))
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(ids) + tokens + 8, do_sample=False)
        t0 = time.perf_counter()
        gen = og.Generator(self.model, params)
        gen.append_tokens(ids)
        gen.generate_next_token()
        first = time.perf_counter()
        n = 0
        while n < tokens - 1 and not gen.is_done():
            gen.generate_next_token()
            gen.get_next_tokens()
            n += 1
        return first - t0, n / (time.perf_counter() - first)


ASR_SENTENCES = ("turn on the lights in the kitchen",
                 "remind me to call my sister tomorrow morning after the meeting with the bank")


async def _asr(client, m, threads: int) -> dict:
    """End of speech to text: the whole utterance is sent as the endpointer would send it."""
    from glasses_firmware.drivers.resample import resample

    from ..voice.cues import synthesize
    from ..worker.asr import Asr
    from glasses_firmware.models.verify import verify_entry
    await client.transcribe(np.zeros(16000, np.float32) + 1e-3)          # load the model
    direct = Asr(verify_entry(m, m.for_role("asr")), threads)
    rows = []
    for text in ASR_SENTENCES:
        audio, rate = synthesize(text, "en", 165)
        x = resample(audio[:, 0] if audio.ndim == 2 else audio, rate, 16000).astype(np.float32)
        worker_s, direct_s, first_s = [], [], []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            stream = client.transcribe_stream(x)
            first = None
            async for _ in stream:
                first = first or time.perf_counter() - t0
            worker_s.append(time.perf_counter() - t0)
            first_s.append(first if first is not None else float("nan"))
            t0 = time.perf_counter()
            direct.transcribe(x)
            direct_s.append(time.perf_counter() - t0)
        seconds = len(x) / 16000
        rows.append({"audio_s": round(seconds, 2), "latency_s": min(worker_s),
                     "first_partial_s": min(first_s), "direct_latency_s": min(direct_s),
                     "rtf": min(worker_s) / seconds, "text": stream.result["text"]})
    return {"model": m.roles.get("asr"), "utterances": rows,
            "latency_s": max(r["latency_s"] for r in rows),
            "rtf": min(r["rtf"] for r in rows),
            "ratio_direct": sum(r["direct_latency_s"] for r in rows) / sum(r["latency_s"] for r in rows)}


async def _llama_cpp(stack, m, threads: int, out: dict):
    """llama.cpp on the GGUF the installed LLM came from, or None (and why, in `out`)."""
    from . import bench_llamacpp
    if not bench_llamacpp.available():
        out["llama_cpp"] = "not installed: `pip install llama-cpp-python` builds it (~10 min)"
        return None
    if m.models[m.roles["llm"]].random_weights:
        out["llama_cpp"] = "skipped: the LLM has random weights, there is no GGUF of it"
        return None
    loop = asyncio.get_running_loop()
    try:
        gguf = stack.enter_context(bench_llamacpp.joined_gguf())
    except GlassesError as e:
        out["llama_cpp"] = f"skipped: {e}"
        return None
    llama = await loop.run_in_executor(None, bench_llamacpp.DirectLlamaCpp, gguf, threads)
    out["llama_cpp"] = f"llama-cpp-python {llama.version}, same GGUF"
    return llama


async def _stream_ms_per_s(call, audio: np.ndarray, chunk: int) -> float:
    """Send `audio` as consecutive `chunk`-sample requests; ms of wall time per s of audio."""
    t0 = time.perf_counter()
    for i in range(0, len(audio), chunk):
        await call(audio[i:i + chunk])
    return (time.perf_counter() - t0) * 1000 / (len(audio) / 16000)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(models_dir: Path, threads: int, tokens: int, session_options=None) -> dict:
    """Every role's speed through the worker, against the same models run in this process."""
    from glasses_firmware.models import manifest
    from ..worker import InferenceClient
    m = manifest.load(models_dir)
    llm_dir = m.directory(m.for_role("llm"))
    session_options = dict(session_options or {})
    client = InferenceClient(models_dir, threads, preload=("llm",),
                             role_options={"llm": {"session_options": session_options}})
    await client.start()
    out: dict = {"models_dir": str(models_dir), "threads": threads, "llm": {"model": llm_dir.name},
                 "random_weights": m.models[llm_dir.name].random_weights,
                 "session_options": session_options}
    try:
        await _llm(client, m, llm_dir, threads, tokens, session_options, out["llm"])
        await _vad_and_wake(client, m, out)
        out["asr"] = await _asr(client, m, threads)
        out["tts"] = await _tts(client, m)
        out["rss_mb"] = _rss_mb(client.worker_pid)
        out["rss_firmware_mb"] = _rss_mb(os.getpid())
    finally:
        await client.stop()
    _llm_ceiling(out["llm"], llm_dir, threads)
    return out


async def _llm(client, m, llm_dir: Path, threads: int, tokens: int, session_options,
               llm: dict) -> None:
    """The LLM's figures into `llm`: the worker against genai (and llama.cpp) in this process."""
    loop = asyncio.get_running_loop()
    direct = await loop.run_in_executor(None, DirectGenai, llm_dir, threads, session_options)
    with contextlib.ExitStack() as stack:
        llama = await _llama_cpp(stack, m, threads, llm)
        rows = [await _llm_round(client, direct, llama, r, tokens) for r in range(ROUNDS)]
    del direct          # before the other roles are measured
    col = {k: [row[k] for row in rows] for k in rows[0]}
    llm.update(decode_tok_s=max(col["decode"]), direct_decode_tok_s=max(col["direct_decode"]),
               ttft_ms=min(col["ttft_ms"]), direct_ttft_ms=min(col["direct_ttft_ms"]),
               ttft_cached_ms=min(col["cached_ms"]), ttft_cached_new_tokens=rows[-1]["cached_n"],
               prefill_tok_s=rows[-1]["prefill_n"] / min(col["prefill_s"]),
               prefill_tokens=rows[-1]["prefill_n"])
    if llama is not None:
        llm.update(llama_cpp_decode_tok_s=max(col["llama_decode"]),
                   llama_cpp_ttft_ms=min(col["llama_ttft_ms"]),
                   ratio_llama_cpp=max(col["decode"]) / max(col["llama_decode"]))


async def _llm_round(client, direct: DirectGenai, llama, r: int, tokens: int) -> dict:
    """One round of every LLM measurement, on a system prompt new to the cache."""
    loop = asyncio.get_running_loop()
    system = f"[{r}] " + SYSTEM  # a new system prompt: nothing cached
    row = {}
    t, row["decode"], _ = await _time_stream(client.generate("Hello there", system=system,
                                                             max_tokens=tokens))
    row["ttft_ms"] = t * 1000
    # Interleaved with the worker's runs, so all three see the same machine load.
    t, row["direct_decode"] = await loop.run_in_executor(None, direct.run, tokens, system)
    row["direct_ttft_ms"] = t * 1000
    if llama is not None:
        t, row["llama_decode"], _ = await loop.run_in_executor(
            None, llama.run, direct.prompt_text(system), tokens)
        row["llama_ttft_ms"] = t * 1000
    t, row["cached_n"] = await _first_piece(client.generate("And now?", system=system, max_tokens=2))
    row["cached_ms"] = t * 1000
    row["prefill_s"], row["prefill_n"] = await _first_piece(
        client.generate(LONG_PROMPT + f" ({r})", max_tokens=1))
    return row


async def _first_piece(stream) -> tuple[float, int]:
    """(time to first piece s, prompt tokens the worker prefilled) of a generate stream."""
    t, _, _ = await _time_stream(stream)
    return t, stream.result["prefill_tokens"]


async def _vad_and_wake(client, m, out: dict) -> None:
    """`out["vad"]` and `out["wake"]`: streamed through the worker, and run here directly."""
    audio = (np.random.default_rng(0).standard_normal(16000 * AUDIO_S) * 0.05).astype(np.float32)
    for role, call, chunk in (("vad", client.vad, VAD_CHUNK), ("wake", client.wake, WAKE_CHUNK)):
        await call(audio[:16000], reset=True)  # load
        best = min([await _stream_ms_per_s(call, audio, chunk) for _ in range(ROUNDS)])
        out[role] = {"ms_per_s": best, "chunk_ms": chunk * 1000 // 16000,
                     "requests_per_s": 16000 / chunk}
    direct_vad = min(direct_vad_ms_per_s(m, audio) for _ in range(ROUNDS))
    direct_wake = min(direct_wake_ms_per_s(m, audio, client.wake_words) for _ in range(ROUNDS))
    for role, direct_ms in (("vad", direct_vad), ("wake", direct_wake)):
        r = out[role]
        r["direct_ms_per_s"] = direct_ms
        r["overhead_ms_per_request"] = (r["ms_per_s"] - direct_ms) / r["requests_per_s"]
    out["wake"]["words"] = list(client.wake_words)


async def _tts(client, m) -> dict:
    """Real-time factor of one sentence, after a warm-up."""
    await client.tts("warm up")
    t0 = time.perf_counter()
    speech, rate = await client.tts("The battery is at eighty percent and the camera is off.")
    return {"rtf": (time.perf_counter() - t0) / (len(speech) / rate), "model": m.roles.get("tts")}


def _llm_ceiling(llm: dict, llm_dir: Path, threads: int) -> None:
    """The worker/direct ratio, and the decode ceiling from bandwidth (measured with the worker
    stopped, so nothing competes for it)."""
    llm["ratio"] = llm["decode_tok_s"] / llm["direct_decode_tok_s"]
    bw = read_bandwidth_gbs(threads)
    per_token = weight_bytes_per_token(llm_dir)
    llm.update(ceiling_tok_s=bw * 1e9 / per_token, bandwidth_gbs=bw, weight_mb_per_token=per_token / 1e6)
    llm["fraction_of_ceiling"] = llm["decode_tok_s"] / llm["ceiling_tok_s"]


def main(models_dir: Path | None, as_json: bool = False, threads: int | None = None,
         decode_tokens: int = 128, session_options=None, quality: bool = False) -> int:
    from glasses_firmware.models import build_test
    from glasses_firmware.models.manifest import default_models_dir
    if models_dir is None:
        real = build_test.DEFAULT_OUT.parent / "real-build"
        models_dir = default_models_dir() or (
            real if (real / "manifest.toml").exists() else build_test.DEFAULT_OUT)
    threads = threads or os.cpu_count() or 1
    if quality:
        from . import quality as q
        result = asyncio.run(q.run(Path(models_dir), threads))
        print(json.dumps(result, ensure_ascii=False) if as_json else q.summary(result))
        return 0
    result = asyncio.run(run(Path(models_dir), threads, decode_tokens, session_options))
    # The assistant end to end and standby listening, with the same models (after the
    # model benchmarks, so the two do not compete for the cores).
    from .bench_assistant import measure
    result.update(measure(Path(models_dir)))
    # First audio with the LLM and ASR offloaded to servers on loopback, against on-board
    # (docs/offload.md); {"error"} when the servers are not installed.
    from . import bench_offload
    result.update(bench_offload.measure(Path(models_dir)))
    if as_json:
        print(json.dumps(result, default=float))
        return 0
    llm = result["llm"]
    print(f"models {result['models_dir']} ({'random weights' if result['random_weights'] else 'real'}),"
          f" {threads} threads", file=sys.stdout)
    print(f"llm  decode {llm['decode_tok_s']:.1f} tok/s (direct {llm['direct_decode_tok_s']:.1f}, "
          f"ratio {llm['ratio']:.3f}); prefill {llm['prefill_tok_s']:.0f} tok/s; ttft "
          f"{llm['ttft_ms']:.0f} ms, cached {llm['ttft_cached_ms']:.0f} ms; ceiling "
          f"{llm['ceiling_tok_s']:.0f} tok/s ({llm['fraction_of_ceiling']:.0%})")
    if "llama_cpp_decode_tok_s" in llm:
        print(f"     llama.cpp decode {llm['llama_cpp_decode_tok_s']:.1f} tok/s, ttft "
              f"{llm['llama_cpp_ttft_ms']:.0f} ms (worker/llama.cpp {llm['ratio_llama_cpp']:.2f})")
    else:
        print(f"     llama.cpp: {result['llm'].get('llama_cpp', 'not measured')}")
    print(f"asr  end of speech to text {result['asr']['latency_s'] * 1000:.0f} ms (worst of "
          f"{len(result['asr']['utterances'])}), rtf {result['asr']['rtf']:.3f}   "
          f"tts rtf {result['tts']['rtf']:.3f}   "
          f"vad {result['vad']['ms_per_s']:.1f} ms/s (direct {result['vad']['direct_ms_per_s']:.1f})   "
          f"wake {result['wake']['ms_per_s']:.1f} ms/s (direct {result['wake']['direct_ms_per_s']:.1f})")
    print(f"rss  worker {result['rss_mb']:.0f} MB, firmware {result['rss_firmware_mb']:.0f} MB")
    a, sb = result["assistant"], result["standby"]
    print(f"assistant first audio {a['first_audio_ms']:.0f} ms (LLM answer), "
          f"{a['command_first_audio_ms']:.0f} ms (device command); stages "
          + ", ".join(f"{k} {v:.0f}" for k, v in a["stages_ms"].items() if v is not None))
    print(f"standby {sb['cpu_ms_per_s']:.0f} ms CPU per s of audio (direct VAD + wake "
          f"{sb['direct_cpu_ms_per_s']:.0f}, ratio {sb['ratio']:.2f})")
    off = result["offload"]
    print(f"offload first audio {off['offload_first_audio_ms']:.0f} ms against on-board "
          f"{off['onboard_first_audio_ms']:.0f} ms (ratio {off['ratio']:.2f})" if "error" not in off
          else f"offload: not measured ({off['error']})")
    return 0
