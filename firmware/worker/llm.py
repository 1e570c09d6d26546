"""The LLM: onnxruntime-genai on a genai-layout model (Qwen2.5 class, int4).

One long-lived `Generator` holds the KV cache. A new request's prompt is compared with the
tokens already in the cache; the generator is rewound to the common prefix (normally the
system prompt and earlier turns) and only the rest is prefilled, so a cached system
prompt costs nothing on the next question.
"""

import json

import onnxruntime_genai as og

from glasses_firmware.drivers.errors import GlassesError

MIN_NEW_TOKENS = 1
PREFILL_CHUNK = 128   # tokens per append_tokens call


class LlmError(GlassesError, RuntimeError):
    """The prompt does not fit the context, or genai refused the model."""


class Llm:
    """Chat completion with streaming; `should_stop()` is polled between tokens."""

    def __init__(self, files, threads: int, session_options: dict | None = None):
        model_dir = next(p for p in files if p.name == "genai_config.json").parent
        try:
            cfg = og.Config(str(model_dir))
            cfg.clear_providers()  # CPU
            cfg.overlay(json.dumps({"model": {"decoder": {"session_options": {
                "intra_op_num_threads": int(threads), "inter_op_num_threads": 1,
                **{str(k): str(v) for k, v in (session_options or {}).items()}}}}}))
            self.model = og.Model(cfg)
            self.tokenizer = og.Tokenizer(self.model)
        except Exception as e:  # genai raises plain RuntimeError/OSError from C++: translate here
            raise LlmError(f"onnxruntime-genai cannot load {model_dir}: {e}") from None
        genai = json.loads((model_dir / "genai_config.json").read_text())
        self.max_length = int(genai["search"]["max_length"])
        self.generator = None
        self.cached: list[int] = []   # the tokens whose keys/values the generator holds
        self.last_prefill = 0

    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(json.dumps(messages), add_generation_prompt=True)
        return [int(t) for t in self.tokenizer.encode(text)]

    def _fresh(self) -> None:
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=self.max_length, do_sample=False)
        self.generator = og.Generator(self.model, params)
        self.cached = []

    def generate(self, messages: list[dict], max_tokens: int, should_stop):
        """Yield (text piece, token id) until end of sequence, `max_tokens`, or stop."""
        ids = self.prompt_tokens(messages)
        if len(ids) + MIN_NEW_TOKENS > self.max_length:
            raise LlmError(f"prompt is {len(ids)} tokens; the context holds {self.max_length}")
        max_tokens = min(max_tokens, self.max_length - len(ids))
        common = _common_prefix(self.cached, ids)
        if common == len(ids):
            common -= 1  # genai needs at least one new token to produce logits
        if self.generator is None or common == 0:
            self._fresh()
            common = 0
        elif common < len(self.cached):
            self.generator.rewind_to(common)
        self.cached = ids[:common]
        self.last_prefill = len(ids) - common
        # Prefill in chunks: genai holds the GIL inside append_tokens, and the heartbeat
        # thread and a cancel must get a turn during a long prompt.
        for i in range(common, len(ids), PREFILL_CHUNK):
            if should_stop():
                self.cached = ids[:i]
                return
            self.generator.append_tokens(ids[i:i + PREFILL_CHUNK])
        self.cached = list(ids)
        stream = self.tokenizer.create_stream()
        eos = set(self.tokenizer.eos_token_ids)
        for _ in range(max_tokens):
            if should_stop():
                return
            self.generator.generate_next_token()
            tok = int(self.generator.get_next_tokens()[0])
            self.cached.append(tok)
            if tok in eos or self.generator.is_done():
                return
            yield stream.decode(tok), tok

    def info(self) -> dict:
        return {"max_length": self.max_length, "cached_tokens": len(self.cached),
                "prefill_tokens": self.last_prefill}


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
