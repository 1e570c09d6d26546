"""Build a random-weight Qwen2 LLM offline with the onnxruntime-genai builder.

Steps: train a byte-level BPE tokenizer on a small local corpus (`tokenizers`), write a
Hugging Face folder (`transformers` Qwen2Config + Qwen2ForCausalLM from a seeded random
init, plus the tokenizer and a ChatML chat template), then run
`python -m onnxruntime_genai.models.builder -p int4 -e cpu` on it. Nothing is downloaded.
The weights are random: for mechanics and speed only, never for quality.

Run as `python -m glasses_firmware.models.tiny_llm HF_DIR OUT_DIR [--real-shapes]` in a child process,
so torch is only imported while building.
"""

import argparse
import json
import sys
from pathlib import Path

from glasses_firmware.models import genai_builder

# Tiny: a few hundred KB, builds in seconds. Real: Qwen2.5-0.5B's shapes.
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=1024, max_position_embeddings=4096)
REAL = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
            num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768)
# The builder converts a toy model in seconds and the real one in minutes; an hour is a hang.
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# The corpus is our own words: the tokenizer only has to be real BPE, not good.
CORPUS = """
The glasses listen for the wake word, then hear a question and answer it out loud.
Take a photo. Start recording a video. Stop recording. What is the battery level?
Translate what she said into English. Read the sign in front of me. Summarise the meeting.
Turn the volume up. Turn the volume down. What time is it? Remind me to call home at six.
The privacy light is on while the camera records; capture is refused if it is covered.
Numbers 0 1 2 3 4 5 6 7 8 9 and punctuation , . ? ! : ; ' " ( ) - help a tokenizer.
system user assistant system user assistant
user
assistant
system
why is the sky blue
what is the battery
And then we go. And so on, now and then.
how far is it
You are a helpful assistant. Answer the user in one or two short sentences.
Why is the sky blue? And now? What is this? Where are we going? How far is it? Who is that?
I think we should go now. Tell me more about it. What do you see? Can you help me with this?
"""
# The chat roles and everyday words are in the corpus because Qwen's own vocabulary has
# them as single tokens: without them a user turn costs two to three times the tokens it
# would with the real tokenizer, and prefill timings would be overstated.


def train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=min(vocab_size, 4096), special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    lines = [line for line in CORPUS.strip().splitlines()] * 20
    tok.train_from_iterator(lines, trainer)
    # Random weights can emit any id: pad the vocabulary so every id decodes.
    missing = vocab_size - tok.get_vocab_size()
    if missing > 0:
        tok.add_tokens([f"<|pad{i}|>" for i in range(missing)])
    return tok


def write_tokenizer(hf_dir: Path, vocab_size: int):
    """Train the stand-in tokenizer and save it (with the chat template) into `hf_dir`."""
    from transformers import PreTrainedTokenizerFast
    hf_dir.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(vocab_size)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(hf_dir)
    return tok


def write_hf_folder(hf_dir: Path, shapes: dict, seed: int = 0) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    tok = write_tokenizer(hf_dir, shapes["vocab_size"])
    torch.manual_seed(seed)
    cfg = Qwen2Config(**shapes, tie_word_embeddings=True, rope_theta=1000000.0,
                      bos_token_id=tok.token_to_id("<|endoftext|>"),
                      eos_token_id=tok.token_to_id("<|im_end|>"), torch_dtype="float32")
    model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(hf_dir)


def run_builder(hf_dir: Path, out_dir: Path, cache_dir: Path, options: dict[str, str],
                context_tokens: int) -> None:
    genai_builder.run(hf_dir, out_dir, cache_dir, "int4", options)
    # The KV buffer is allocated for max_length up front (past_present_share_buffer):
    # a glasses conversation needs a few thousand tokens, not the model's 32k.
    cfg_path = out_dir / "genai_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model"]["context_length"] = min(cfg["model"]["context_length"], context_tokens)
    cfg["search"]["max_length"] = min(cfg["search"]["max_length"], context_tokens)
    cfg_path.write_text(json.dumps(cfg, indent=4))


DEFAULT_OPTIONS = {"accuracy_level": "4", "block_size": "32", "shared_embeddings": "true"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("hf_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--real-shapes", action="store_true")
    p.add_argument("--context-tokens", type=int, default=2048)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="builder extra option (overrides the defaults)")
    args = p.parse_args(argv)
    options = dict(DEFAULT_OPTIONS)
    for kv in args.option:
        k, _, v = kv.partition("=")
        options[k] = v
    if not (args.hf_dir / "config.json").exists():
        write_hf_folder(args.hf_dir, REAL if args.real_shapes else TINY)
    run_builder(args.hf_dir, args.out_dir, args.hf_dir.parent / "builder-cache", options,
                args.context_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
