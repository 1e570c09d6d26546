"""GGUF -> Hugging Face folder -> onnxruntime-genai int4, and the check that the result answers.

Run as child processes by `models.install` (they load torch and gigabytes of weights):

    python -m glasses_firmware.models.convert_llm to-hf MODEL.gguf OUT_DIR
    python -m glasses_firmware.models.convert_llm check GENAI_DIR

Why a Hugging Face folder in between: the genai builder reads only float GGUFs, and ours
is Q4_K_M. transformers dequantizes every tensor to float32. The GGUF stores the output
matrix (Q8_0) apart from the token embedding (Q5_0), although Qwen2.5-0.5B ties them:
the folder ties them again, keeping the more precise Q8_0 values, because the builder's
`shared_embeddings=true` (one int4 matrix for the embedding lookup and the LM head, which
saves 130 MB) requires `tie_word_embeddings: true`.
"""

import json
import sys
import time
from pathlib import Path

BUILDER_OPTIONS = {"accuracy_level": "4", "block_size": "32", "shared_embeddings": "true"}
# genai allocates the whole KV cache for max_length up front (past_present_share_buffer):
# a glasses conversation needs a few thousand tokens, not the model's 32k.
CONTEXT_TOKENS = 4096
CHECK_PROMPT = "What is the capital of France?"
CHECK_ANSWER = "Paris"
CHECK_NEW_TOKENS = 32


def to_hf(gguf: Path, out: Path) -> None:
    """Write `out/` (config.json, model.safetensors fp32, tokenizer files) from `gguf`."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.save_pretrained(out)
    print(f"tokenizer: {len(tokenizer)} tokens, chat template {'yes' if tokenizer.chat_template else 'NO'}, "
          f"{time.monotonic() - t0:.1f} s", flush=True)
    if not tokenizer.chat_template:
        raise SystemExit(f"{gguf}: the GGUF has no chat template; the assistant needs one")

    t0 = time.monotonic()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    print(f"weights dequantized: {type(model).__name__}, {time.monotonic() - t0:.1f} s", flush=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    embed = state["model.embed_tokens.weight"]
    head = state.pop("lm_head.weight", None)
    if head is not None and head.data_ptr() != embed.data_ptr():
        diff = (embed - head).abs()
        print(f"embedding vs output matrix: max abs diff {diff.max().item():.4g}, "
              f"mean {diff.mean().item():.4g}; keeping the output matrix (Q8_0)", flush=True)
        state["model.embed_tokens.weight"] = head.clone()
    t0 = time.monotonic()
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    print(f"model.safetensors: {sum(v.numel() for v in state.values()) / 1e6:.1f} M parameters, "
          f"{time.monotonic() - t0:.1f} s", flush=True)

    config = model.config
    config.tie_word_embeddings = True
    config.architectures = [type(model).__name__]
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")   # the weights written are plain float32
    config.save_pretrained(out)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out)
    saved = json.loads((out / "config.json").read_text())
    if saved.get("tie_word_embeddings") is not True:
        raise SystemExit(f"{out}/config.json lost tie_word_embeddings; the builder would refuse "
                         "shared_embeddings=true")


def limit_context(genai_dir: Path, tokens: int = CONTEXT_TOKENS) -> None:
    path = genai_dir / "genai_config.json"
    config = json.loads(path.read_text())
    config["model"]["context_length"] = min(config["model"]["context_length"], tokens)
    config["search"]["max_length"] = min(config["search"]["max_length"], tokens)
    path.write_text(json.dumps(config, indent=4) + "\n")


def answer(genai_dir: Path, prompt: str = CHECK_PROMPT, new_tokens: int = CHECK_NEW_TOKENS) -> str:
    """The model's greedy answer to `prompt`, through its own chat template."""
    import onnxruntime_genai as og

    model = og.Model(str(genai_dir))
    tokenizer = og.Tokenizer(model)
    text = tokenizer.apply_chat_template(json.dumps([{"role": "user", "content": prompt}]),
                                         add_generation_prompt=True)
    ids = tokenizer.encode(text)
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(ids) + new_tokens)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    out = []
    while not generator.is_done():
        generator.generate_next_token()
        out.append(int(generator.get_next_tokens()[0]))
    return tokenizer.decode(out).strip()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "to-hf":
        to_hf(Path(argv[1]), Path(argv[2]))
        return 0
    if len(argv) == 2 and argv[0] == "check":
        reply = answer(Path(argv[1]))
        print(f"Q: {CHECK_PROMPT}\nA: {reply}", flush=True)
        if CHECK_ANSWER not in reply:
            print(f"the converted model's answer does not contain {CHECK_ANSWER!r}", flush=True)
            return 3
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
