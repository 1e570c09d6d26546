"""Build a tiny random-weight Whisper offline, the same way the real one is converted.

Steps: a byte-level BPE tokenizer trained on a few lines of our own text, with Whisper's
special tokens appended in Whisper's order (`<|endoftext|>`, `<|startoftranscript|>`, the
99 language tokens, `<|translate|>`, `<|transcribe|>`, ... `<|notimestamps|>`; no
timestamp tokens, the runtime never asks for them); a `transformers`
WhisperForConditionalGeneration with a tiny config and seeded random weights; then
`python -m onnxruntime_genai.models.builder -p int8 -e cpu`, the builder path the real
Whisper base goes through. Nothing is downloaded. The output directory has the layout
the runtime (firmware/worker/asr.py) reads:

    encoder.onnx(.data)  audio_features [B, 80, 3000] -> hidden_states, present_{key,value}_cross_N
    decoder.onnx(.data)  input_ids int32, past self/cross K/V -> logits, present self K/V
    genai_config.json    tokenizer.json    asr_config.json

The weights are random: for mechanics and speed only, never for quality. Run as
`python -m glasses_firmware.models.tiny_whisper HF_DIR OUT_DIR` in a child process, so torch is only
imported while building.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

from glasses_firmware.models import genai_builder

# Whisper's languages in the order of its language tokens (<|en|> = first after
# <|startoftranscript|>). The real model's ids come from its own config; this list only
# gives the test tokenizer the same token strings.
LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no "
    "th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw "
    "gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl "
    "mg as tt haw ln ha ba jw su").split()
TASK_TOKENS = ("<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
               "<|nocaptions|>", "<|notimestamps|>")
SPECIALS = (["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{c}|>" for c in LANGUAGES]
            + list(TASK_TOKENS))
# The builder converts a toy model in seconds and the real one in minutes; an hour is a hang.
TEXT_VOCAB = 512
# Whisper base's layout at a fraction of the width; the encoder input stays 80 x 3000
# (so 1500 positions after the stride-2 convolution) because that is the I/O under test.
TINY = dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
            num_mel_bins=80, max_source_positions=1500, max_target_positions=448)
CORPUS = """
Turn on the lights in the kitchen. Take a photo. What time is it?
The quick brown fox jumps over the lazy dog. Please read the sign in front of me.
Translate what she said into English. Remind me to call home at six o'clock.
Numbers 0 1 2 3 4 5 6 7 8 9 and punctuation , . ? ! : ; ' " ( ) - help a tokenizer.
"""


def train_tokenizer():
    """Byte-level BPE over our corpus, then Whisper's special tokens after the text ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # No full byte alphabet: random weights pick arbitrary ids, and a lone UTF-8
    # continuation byte decodes to nothing printable. With only our corpus's characters
    # every id is text, so the test model streams readable partials. (It only decodes.)
    trainer = trainers.BpeTrainer(vocab_size=TEXT_VOCAB, show_progress=False)
    tok.train_from_iterator(CORPUS.strip().splitlines() * 20, trainer)
    # Whisper's vocabulary puts every special token after the text tokens, and the
    # runtime relies on it: "any id above <|endoftext|> is not text".
    tok.add_special_tokens(SPECIALS)
    return tok


def asr_config(tok) -> dict:
    """What the runtime needs beyond the graphs: language ids and the suppressed tokens."""
    # The real model suppresses symbols that are never speech; a few stand-ins here.
    suppress = [tok.token_to_id(s) for s in ('"', "(", ")", "-", ":", ";")]
    return {"n_mels": TINY["num_mel_bins"], "multilingual": True,
            "lang_ids": [tok.token_to_id(f"<|{c}|>") for c in LANGUAGES],
            "suppress_ids": [i for i in suppress if i is not None],
            "suppress_ids_begin": [tok.token_to_id("Ġ"), tok.token_to_id("<|endoftext|>")]}


def write_hf_folder(hf_dir: Path, seed: int = 0) -> None:
    import torch
    from transformers import PreTrainedTokenizerFast, WhisperConfig, WhisperForConditionalGeneration
    hf_dir.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer()
    eot = tok.token_to_id("<|endoftext|>")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")
    fast.save_pretrained(hf_dir)
    (hf_dir / "asr_config.json").write_text(json.dumps(asr_config(tok)))
    torch.manual_seed(seed)
    cfg = WhisperConfig(vocab_size=tok.get_vocab_size(), **TINY, bos_token_id=eot,
                        eos_token_id=eot, pad_token_id=eot,
                        decoder_start_token_id=tok.token_to_id("<|startoftranscript|>"),
                        torch_dtype="float32")
    model = WhisperForConditionalGeneration(cfg)
    # At the default init (std 0.02) a random decoder repeats one token forever, which
    # the runtime's loop guard cuts after 15: too little to exercise streaming. Strong
    # position embeddings make every position's token differ, like text.
    with torch.no_grad():
        model.model.decoder.embed_positions.weight.normal_(0.0, 1.0)
    model.save_pretrained(hf_dir)


def run_builder(hf_dir: Path, out_dir: Path, cache_dir: Path, precision: str) -> None:
    genai_builder.run(hf_dir, out_dir, cache_dir, precision)
    # Our tokenizer and config, byte for byte (the builder re-saves the tokenizer through
    # transformers, which may reorder it).
    for name in ("tokenizer.json", "asr_config.json"):
        shutil.copyfile(hf_dir / name, out_dir / name)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("hf_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--precision", default="int8", choices=("int8", "fp32"))
    args = p.parse_args(argv)
    if not (args.hf_dir / "config.json").exists():
        write_hf_folder(args.hf_dir)
    run_builder(args.hf_dir, args.out_dir, args.hf_dir.parent / "builder-cache", args.precision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
