"""`pyllong.Model`: a loaded model with its context, and the Python sampling loop over it.

The native `_core.Context` owns the KV cache and runs the forward pass; this module keeps a
mirror of the token ids in that cache (`_tokens`) so a new prompt that shares a prefix with
what is cached evaluates only the new tokens (chat turns, repeated system prompts). Per
generated token the Python work is: one `ctx.eval` of one token, a few numpy calls in the
sampler, one `token_to_bytes`, and the text assembler.
"""
from __future__ import annotations

import os
import warnings
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

from . import _core
from .chat_template import render as render_template
from .errors import ContextOverflowError, Error, InvalidArgumentError
from .sampling import LogitsProcessor, Sampler, SamplingParams, log_softmax, make_rng
from .textstream import TextAssembler
from .transition import Transition, check_transition

# Token texts llama.cpp treats as end-of-generation when the vocabulary marks them control.
_EOG_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
              "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>")
_CONTROL, _USER_DEFINED = 3, 4
# Used when a GGUF carries no chat template (llama.cpp falls back to ChatML too).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
KV_TYPES = ("f16", "q8_0")
StoppingCriterion = Callable[[np.ndarray, np.ndarray], bool]  # (input_ids, logits) -> stop?


def _native_context(model_file, n_ctx, n_threads, n_batch, kv_type, self_extend=None, n_gpu_layers=0, memory=None,
                    transition=None):
    if not hasattr(_core, "Context"):
        raise Error("this build of pyllong has no native forward pass (_core.Context); "
                    "rebuild the package from a source tree that includes it")
    return _core.Context(model_file, n_ctx, n_threads, n_batch, kv_type, self_extend, n_gpu_layers, memory, transition)


def self_extend_reach(n_ctx_train: int, group: int, window: int) -> int:
    """Longest input SelfExtend(G, W) keeps inside the training positions: (L - W) * G + W."""
    return (n_ctx_train - window) * group + window


def _check_self_extend(self_extend, n_ctx_train: int) -> Optional[tuple[int, int]]:
    if self_extend is None or self_extend is False:
        return None
    try:
        group, window = (int(x) for x in self_extend)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"self_extend must be a (G, W) pair of integers, got {self_extend!r}") from None
    if group < 1 or window < 1:
        raise InvalidArgumentError(f"self_extend: G and W must be >= 1, got G={group}, W={window}")
    if window % group:
        raise InvalidArgumentError(f"self_extend: W ({window}) must be a multiple of G ({group})")
    if window >= n_ctx_train:
        raise InvalidArgumentError(f"self_extend: W ({window}) must be below the training context ({n_ctx_train})")
    return group, window


def _default_threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(n, 16))


def _check_int(name: str, v, lo: int, hi: Optional[int] = None, hint: str = "") -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an integer, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise InvalidArgumentError(f"{name} must be {rng}, got {v}{hint}")
    return int(v)


# ---------------------------------------------------------------------------------------------
# Results

class Completion(str):
    """Generated text (a str) that also carries how it was made:
    `tokens` (generated ids, end-of-generation token excluded; `stop_token` is that token's id
    when one ended the text), `finish_reason` ("stop" at an
    end-of-generation token, a stop string or a stopping criterion; "length" at max_tokens;
    "interrupted" when a stream was closed early), `stop` (the stop string or token text that
    ended it, or None), `prompt_tokens` (count) and `logprobs` (dict, when asked)."""
    tokens: list[int]
    finish_reason: str
    stop: Optional[str]
    stop_token: Optional[int]
    prompt_tokens: int
    logprobs: Optional[dict]

    def __new__(cls, text: str, **info):
        self = super().__new__(cls, text)
        self.tokens, self.finish_reason = info["tokens"], info["finish_reason"]
        self.stop_token = info.get("stop_token")
        self.stop, self.prompt_tokens, self.logprobs = info.get("stop"), info.get("prompt_tokens", 0), info.get("logprobs")
        return self

    @property
    def text(self) -> str:
        return str(self)


class CompletionStream:
    """Iterator of text pieces. After it is exhausted (or closed), `result` is the Completion."""

    def __init__(self, gen: Iterator[str], owner: "Model"):
        self._gen, self._owner = gen, owner
        self.result: Optional[Completion] = None

    def __iter__(self):
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        """Stop generating; the tokens so far stay in the cache and in `result`."""
        self._gen.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class GenerationOptions:
    max_tokens: Optional[int] = 128
    stop: Sequence[str] = ()
    stop_token_ids: Sequence[int] = ()
    logprobs: Optional[int] = None
    stopping_criteria: Sequence[StoppingCriterion] = ()
    sampling: SamplingParams = field(default_factory=SamplingParams)
    seed: Optional[int] = None


# ---------------------------------------------------------------------------------------------
# The model

class Model:
    """A GGUF model ready to generate.

    model: registry name (pulled on first use) or path to a .gguf file; None = "smollm2".
    n_ctx: context length (default: min(training context, 4096)). n_threads: CPU threads
    (default: the CPUs this process may use, at most 16). n_batch: prompt tokens per forward
    call. seed: default seed of the sampler (None = random). kv_type: "f16" or "q8_0".
    context_shift: when the context fills during generation, keep the first n_keep tokens and
    drop the oldest half of the rest instead of raising ContextOverflowError. n_keep: tokens
    kept by a shift (None = the BOS token when there is one, -1 = the whole prompt).
    memory: a pyllong.Memory (kNN key-value memory, see pyllong/memory.py), or True for its
    defaults; n_ctx is then the local window W and inputs may be longer than it.
    transition: Attention Transition on prompt passes (True = the reference alpha 0.5, beta 0.1,
    2 bands; a pyllong.Transition for others; None/False = off). Its bands depend on the prompt
    length N, so rows of a cached prefix keep what an earlier, shorter prompt gave them.
    """

    def __init__(self, model: Optional[str] = None, n_ctx: Optional[int] = None, n_threads: Optional[int] = None,
                 n_batch: int = 512, seed: Optional[int] = None, kv_type: str = "f16", context_shift: bool = False,
                 n_keep: Optional[int] = None, verbose: bool = False,
                 self_extend: Optional[tuple[int, int]] = None, n_gpu_layers: int = 0, memory=None,
                 transition: Union[bool, None, Transition] = None,
                 _context_factory: Optional[Callable[..., Any]] = None):
        from .hub import resolve

        self.path = str(resolve(os.fspath(model) if model is not None else None, quiet=not verbose))
        self.model_file = _core.ModelFile(self.path)
        self.tokenizer = _core.Tokenizer(self.model_file)
        hp = self.model_file.hparams
        self.n_vocab = int(hp["n_vocab"])
        self.n_ctx_train = int(hp["n_ctx_train"])
        self.self_extend = _check_self_extend(self_extend, self.n_ctx_train)
        if self.self_extend:
            reach = self_extend_reach(self.n_ctx_train, *self.self_extend)
            n_ctx = min(reach, 32768) if n_ctx is None else _check_int("n_ctx", n_ctx, 1, 1 << 24)
            if n_ctx > reach:
                warnings.warn(f"n_ctx {n_ctx} exceeds SelfExtend{self.self_extend}'s reach of {reach} tokens "
                              f"((L - W) * G + W with L = {self.n_ctx_train}); raise G for inputs that long",
                              stacklevel=2)
            if context_shift:
                raise InvalidArgumentError("context_shift cannot be combined with self_extend")
        n_ctx = min(self.n_ctx_train, 4096) if n_ctx is None else _check_int("n_ctx", n_ctx, 1, 1 << 24)
        n_threads = _default_threads() if n_threads is None else _check_int("n_threads", n_threads, 1, 1024)
        n_batch = _check_int("n_batch", n_batch, 1, 1 << 20)
        if kv_type not in KV_TYPES:
            raise InvalidArgumentError(f"kv_type must be one of {', '.join(KV_TYPES)}, got {kv_type!r}")
        if n_keep is not None:
            n_keep = _check_int("n_keep", n_keep, -1, n_ctx - 1, " (it must leave room for new tokens)")
        self.memory, mem_opts = self._memory_options(memory, hp, n_ctx, context_shift)
        if mem_opts:
            n_ctx = mem_opts["window"]
        self.n_ctx, self.n_threads, self.n_batch, self.kv_type = n_ctx, n_threads, n_batch, kv_type
        self.context_shift, self.n_keep = bool(context_shift), n_keep
        self.seed = seed
        self._rng = make_rng(seed)
        self.n_gpu_layers = _check_int("n_gpu_layers", n_gpu_layers, -1, 1 << 20)
        factory_args = (self.model_file, n_ctx, n_threads, n_batch, kv_type)
        extra = {"n_gpu_layers": self.n_gpu_layers} if self.n_gpu_layers else {}
        self.transition = check_transition(transition)
        if self.transition:
            if mem_opts:
                raise InvalidArgumentError("the kNN memory and the Attention Transition cannot be combined; "
                                           "choose one")
            extra["transition"] = self.transition.as_tuple()
        if self.self_extend:
            self._ctx = (_context_factory or _native_context)(*factory_args, self.self_extend, **extra)
        elif mem_opts:
            self._ctx = (_context_factory or _native_context)(*factory_args, None, memory=mem_opts, **extra)
        else:
            self._ctx = (_context_factory or _native_context)(*factory_args, **extra)
        self._tokens: list[int] = []           # ids in the KV cache, in order
        self._mirror_valid = True              # False while _tokens may not be a prefix of the cache
        self._prompt_len = 0                   # length of the current generation's prompt (for n_keep=-1)
        self._active: Optional[CompletionStream] = None
        self.n_evaluated = 0                   # tokens sent to the forward pass, for statistics and tests
        v = self.model_file.vocab
        self.bos, self.eos, self.eot = int(v["bos"]), int(v["eos"]), int(v["eot"])
        self.eog_ids = self._find_eog_ids()
        self.chat_template = self.model_file.chat_template or CHATML_TEMPLATE
        self._chat_end_ids, self._chat_end_strings = self._chat_end_markers()
        self._mem_base = (0, 0, None)  # memory size, evictions and (with a cap) a copy at the conversation start
        if self.memory is not None:
            self.memory._attach(self)

    # -- kNN memory -----------------------------------------------------------------------

    def _memory_options(self, memory, hp, n_ctx, context_shift):
        if memory is None or memory is False:
            return None, None
        from .memory import Memory

        if memory is True:
            memory = Memory()
        if not isinstance(memory, Memory):
            raise InvalidArgumentError(f"memory must be a pyllong.Memory or True, got {memory!r}")
        if self.self_extend:
            raise InvalidArgumentError("memory cannot be combined with self_extend; choose one")
        if context_shift:
            raise InvalidArgumentError("memory cannot be combined with context_shift: the memory already takes "
                                       "what leaves the window")
        return memory, memory._resolve(int(hp["n_layer"]), n_ctx, self.model_file.gguf.metadata)

    def _memory_set_base(self) -> None:
        """What a new conversation starts from: the memory as it is now (documents)."""
        native = self.ctx.memory
        copy = native.copy() if self.memory.cap else None  # eviction cannot be undone by truncation
        self._mem_base = (native.size, native.evicted, copy)
        self._tokens = []

    def _memory_base_state(self):
        """A copy (_core.KVMemory) of the memory a new conversation starts from."""
        size, evicted, copy = self._mem_base
        if copy is not None:
            return copy.copy()
        state = self.ctx.memory.copy()
        state.truncate(size)  # without a cap nothing is evicted: the base is the first `size` tokens
        return state

    def _memory_restore_base(self) -> None:
        """Drop the conversation: empty window, memory back to its base."""
        size, evicted, copy = self._mem_base
        ctx = self.ctx
        ctx.reset()
        if copy is not None:
            ctx.set_memory(copy)
        elif ctx.memory.evicted == evicted:
            ctx.memory.truncate(size)
        self._tokens = []

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Free the context (KV cache) now."""
        if self._active is not None:
            self._active.close()
        self._ctx = None
        self._tokens = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def ctx(self):
        if self._ctx is None:
            raise Error("this Model was closed")
        return self._ctx

    # -- tokens ---------------------------------------------------------------------------

    def tokenize(self, text: Union[str, bytes], add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Token ids of text. add_special: BOS/EOS where the vocabulary asks for them.
        parse_special: text such as "<|im_start|>" becomes that control token."""
        return list(self.tokenizer.encode(text, add_special, parse_special))

    def detokenize(self, ids: Sequence[int], special: bool = False) -> str:
        """Text of ids; special: render control tokens as their text."""
        return self.tokenizer.decode([int(i) for i in ids], special)

    def token_to_bytes(self, token: int, special: bool = False) -> bytes:
        return self.tokenizer.token_to_bytes(int(token), special)

    def _find_eog_ids(self) -> frozenset:
        ids = {i for i in (self.eos, self.eot) if i >= 0}
        for text in _EOG_TEXTS:
            toks = self.tokenizer.encode(text, False, True)
            if len(toks) == 1 and self.tokenizer.token_type(toks[0]) in (_CONTROL, _USER_DEFINED):
                ids.add(int(toks[0]))
        return frozenset(ids)

    # -- state ----------------------------------------------------------------------------

    def save_state(self, path) -> None:
        """Write the KV cache in use, its token ids and the sampler's generator to `path`
        (versioned, checksummed, written atomically). See pyllong/state.py."""
        from . import state
        state.save_state(self, path)

    def load_state(self, path) -> None:
        """Restore a file from save_state. Raises StateError (the Model unchanged) if it is
        truncated, corrupted, from another model, or does not fit this n_ctx / kv_type / self_extend."""
        from . import state
        state.load_state(self, path)

    def state_bytes(self) -> bytes:
        """save_state's contents as bytes."""
        from . import state
        return state.state_bytes(self)

    def load_state_bytes(self, data: bytes) -> None:
        from . import state
        state.load_state_bytes(self, data)

    # -- the context ----------------------------------------------------------------------

    @property
    def n_past(self) -> int:
        return len(self._tokens or ())

    @property
    def cached_tokens(self) -> list[int]:
        return list(self._tokens)

    def reset(self) -> None:
        """Empty the KV cache. With memory: drop the conversation, keep the documents."""
        if self.memory is not None:
            self._memory_restore_base()
            return
        self.ctx.reset()
        self._tokens = []

    def _sync(self) -> None:
        """Re-align the token mirror with the cache, e.g. after an eval interrupted by Ctrl-C."""
        if self.memory is not None:
            if self._tokens is None:  # an eval was interrupted: the window and memory are unknown
                self._memory_restore_base()
            return
        if not self._mirror_valid:  # a shift or state load was interrupted: the mirror may not be a prefix
            self.ctx.reset()
            self._tokens = []
            self._mirror_valid = True
            return
        n = self.ctx.n_past
        if n != len(self._tokens):
            keep = min(n, len(self._tokens))
            self.ctx.truncate(keep)
            del self._tokens[keep:]

    def _overflow(self, n_new: int) -> ContextOverflowError:
        return ContextOverflowError(
            f"{n_new} new token(s) do not fit: {self.n_past} are already in the context of {self.n_ctx} "
            f"(would need {self.n_past + n_new}); use a larger n_ctx (the model was trained on "
            f"{self.n_ctx_train}), a shorter prompt or fewer max_tokens, or Model(context_shift=True)")

    def _eval_raw(self, tokens: Sequence[int], logits_all: bool) -> np.ndarray:
        if self.memory is None and self.n_past + len(tokens) > self.n_ctx:
            raise self._overflow(len(tokens))
        arr = np.asarray(tokens, dtype=np.int32)
        if self.memory is not None:
            # One native call: the memory's window logic splits a long prompt itself
            # (LongLLaMA's last_context_length rule needs the whole prompt at once).
            mirror = self._tokens
            self._tokens = None  # while window and memory change: an interrupted eval leaves None
            out = self.ctx.eval(arr, logits_all)
            self._tokens = mirror
            self._tokens.extend(int(t) for t in arr)
            self.n_evaluated += len(arr)
            return out
        # One native call per n_batch chunk (the same chunks the native loop would make), so
        # Ctrl-C lands between chunks of a long prefill instead of after all of it; the mirror
        # grows chunk by chunk and _sync repairs whatever an interrupt leaves half done.
        outs = []
        # The Attention Transition's bands follow the whole call's length, not each chunk's.
        n_prompt = {"prompt_len": self.n_past + len(arr) if len(arr) > 1 else 0} if self.transition else {}
        for start in range(0, len(arr), self.n_batch):
            chunk = arr[start:start + self.n_batch]
            last = start + len(chunk) == len(arr)
            out = self.ctx.eval(chunk, logits_all, **n_prompt)
            self._tokens.extend(chunk.tolist())
            self.n_evaluated += len(chunk)
            if logits_all or last:
                outs.append(out)
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def eval(self, tokens: Sequence[int], logits_all: bool = True) -> np.ndarray:
        """Append tokens to the context; return their logits, (n_tokens, n_vocab) float32
        (only the last row, (1, n_vocab), with logits_all=False)."""
        tokens = list(tokens)
        if not tokens:
            raise InvalidArgumentError("eval needs at least one token")
        for t in tokens:
            _check_int("token id", t, 0, self.n_vocab - 1)
        self._sync()
        return self._eval_raw(tokens, logits_all)

    def evict(self, n_keep: int, n_discard: int) -> None:
        """Drop cached tokens [n_keep, n_keep + n_discard) and move the rest back (llama.cpp's
        context shift): the kept keys are re-rotated to their new positions, nothing is evaluated."""
        self._sync()
        n_keep = _check_int("n_keep", n_keep, 0, self.n_past, f" ({self.n_past} tokens are cached)")
        n_discard = _check_int("n_discard", n_discard, 0, self.n_past - n_keep,
                               f" (n_keep {n_keep} + n_discard must stay within the {self.n_past} cached tokens)")
        if n_discard == 0:
            return
        self._mirror_valid = False  # until both halves below are done (an interrupt may fall between)
        self.ctx.shift(n_keep, n_discard)
        del self._tokens[n_keep:n_keep + n_discard]
        self._mirror_valid = True

    def _shift(self) -> None:
        """Make room: keep the first n_keep tokens, drop the oldest half of the rest."""
        if self.n_keep is None:
            n_keep = 1 if self._tokens and self._tokens[0] == self.bos else 0
        elif self.n_keep < 0:
            n_keep = self._prompt_len
        else:
            n_keep = self.n_keep
        n_keep = min(n_keep, self.n_past)
        n_discard = (self.n_past - n_keep) // 2
        if n_discard <= 0:
            raise ContextOverflowError(
                f"context shift cannot make room: n_keep={n_keep} of n_ctx={self.n_ctx} leaves nothing to "
                "discard; use a smaller n_keep or a larger n_ctx")
        self.evict(n_keep, n_discard)

    def _prefill(self, prompt: list[int]) -> np.ndarray:
        """Bring the cache to exactly `prompt`, evaluating only what is not cached yet;
        return the logits row of the last prompt token."""
        if not prompt:
            raise InvalidArgumentError("the prompt is empty (no tokens); give some text")
        if self.memory is not None:
            return self._prefill_memory(prompt)
        if len(prompt) > self.n_ctx:
            raise ContextOverflowError(
                f"the prompt has {len(prompt)} tokens but the context holds {self.n_ctx}; use a larger n_ctx "
                f"(the model was trained on {self.n_ctx_train}) or a shorter prompt")
        self._sync()
        common = 0
        limit = min(len(prompt), len(self._tokens))
        while common < limit and prompt[common] == self._tokens[common]:
            common += 1
        common = min(common, len(prompt) - 1)  # the last prompt token is re-evaluated for its logits
        if common < len(self._tokens):
            self.ctx.truncate(common)
            del self._tokens[common:]
        self._prompt_len = len(prompt)
        return self._eval_raw(prompt[common:], False)[-1]

    def _prefill_memory(self, prompt: list[int]) -> np.ndarray:
        """With memory the window cannot be truncated: a prompt that continues the conversation
        evaluates its new tokens, any other starts a new conversation from the documents."""
        self._sync()
        n = len(self._tokens)
        if not (n < len(prompt) and prompt[:n] == self._tokens):
            self._memory_restore_base()
            n = 0
        self._prompt_len = len(prompt)
        return self._eval_raw(prompt[n:], False)[-1]

    # -- generation -----------------------------------------------------------------------

    def _prompt_tokens(self, prompt: Union[str, bytes, Sequence[int]]) -> list[int]:
        if isinstance(prompt, (str, bytes)):
            return self.tokenize(prompt, add_special=True, parse_special=True)
        tokens = [int(t) for t in prompt]
        for t in tokens:
            _check_int("prompt token id", t, 0, self.n_vocab - 1)
        return tokens

    def _options(self, max_tokens, stop, seed, logprobs, stopping_criteria, stop_token_ids=(), **sampling) -> GenerationOptions:
        if max_tokens is not None:
            max_tokens = _check_int("max_tokens", max_tokens, 0, hint=" (None = until the context is full)")
        if stop is None:
            stop = ()
        elif isinstance(stop, str):
            stop = (stop,)
        stop = tuple(stop)
        for s in stop:
            if not isinstance(s, str):
                raise InvalidArgumentError(f"stop must be a string or a list of strings, got {s!r}")
        if logprobs is not None:
            logprobs = _check_int("logprobs", logprobs, 0, self.n_vocab)
        if seed is not None:
            make_rng(seed)  # validates
        sp = SamplingParams(**sampling).validate(self.n_vocab)
        crit = stopping_criteria or ()
        if callable(crit):
            crit = (crit,)
        for c in crit:
            if not callable(c):
                raise InvalidArgumentError(f"stopping_criteria entries must be callables (input_ids, logits) -> bool, got {c!r}")
        return GenerationOptions(max_tokens=max_tokens, stop=stop, stop_token_ids=tuple(stop_token_ids),
                                 logprobs=logprobs, stopping_criteria=tuple(crit), sampling=sp, seed=seed)

    def _token_text(self, tok: int) -> str:
        return self.tokenizer.token_to_bytes(tok, True).decode("utf-8", "replace")

    def _generate(self, prompt: list[int], opt: GenerationOptions, stream: CompletionStream) -> Iterator[str]:
        """The sampling loop. Yields text pieces; stores the Completion on `stream.result`."""
        rng = make_rng(opt.seed) if opt.seed is not None else self._rng
        sampler = Sampler(opt.sampling, self.n_vocab, rng)
        max_tokens = opt.max_tokens if opt.max_tokens is not None else (
            self.n_ctx if self.memory is not None else max(0, self.n_ctx - len(prompt)))
        stop_ids = self.eog_ids | frozenset(opt.stop_token_ids)
        text = TextAssembler(opt.stop)
        history = np.empty(len(prompt) + max_tokens, dtype=np.int32)  # prompt + generated, for penalties
        history[:len(prompt)] = prompt
        n_hist = len(prompt)
        generated: list[int] = []
        lp: Optional[dict] = None
        if opt.logprobs is not None:
            lp = {"tokens": [], "text_offset": [], "token_logprobs": [], "top_logprobs": []}
        finish, stop_what, stop_tok = "length", None, None
        try:
            logits = self._prefill(prompt) if max_tokens > 0 else None
            for i in range(max_tokens):
                tok = sampler.sample(logits, history[:n_hist])
                if lp is not None:
                    self._record_logprobs(lp, logits, tok, opt.logprobs, len(text.text))
                if tok in stop_ids:
                    finish, stop_what, stop_tok = "stop", self._token_text(tok), tok
                    break
                generated.append(tok)
                history[n_hist] = tok
                n_hist += 1
                piece = text.feed(self.tokenizer.token_to_bytes(tok, False))
                if piece:
                    yield piece
                if text.stopped is not None:
                    finish, stop_what = "stop", text.stopped
                    break
                if opt.stopping_criteria and any(c(history[:n_hist], logits) for c in opt.stopping_criteria):
                    finish = "stop"
                    break
                if i + 1 == max_tokens:
                    break  # the last token needs no forward pass
                if self.memory is None and self.n_past + 1 > self.n_ctx:
                    if not self.context_shift:
                        raise self._overflow(1)
                    self._shift()
                logits = self._eval_raw([tok], False)[-1]
            tail = text.finish()
            if tail:
                yield tail
        except (GeneratorExit, KeyboardInterrupt):
            finish = "interrupted"
            raise
        finally:
            stream.result = Completion(text.text, tokens=generated, finish_reason=finish, stop=stop_what, stop_token=stop_tok,
                                       prompt_tokens=len(prompt), logprobs=lp)
            if self._active is stream:
                self._active = None

    def _record_logprobs(self, lp: dict, logits: np.ndarray, tok: int, n_top: int, offset: int) -> None:
        """OpenAI/llama-cpp-python completion logprobs, from the model's raw distribution."""
        logp = log_softmax(logits)
        lp["tokens"].append(self._token_text(tok))
        lp["text_offset"].append(offset)
        lp["token_logprobs"].append(float(logp[tok]))
        top = {}
        if n_top > 0:
            idx = np.argpartition(-logp, n_top - 1)[:n_top] if n_top < len(logp) else np.arange(len(logp))
            idx = idx[np.argsort(-logp[idx], kind="stable")]
            top = {self._token_text(int(i)): float(logp[i]) for i in idx}
        top.setdefault(self._token_text(tok), float(logp[tok]))
        lp["top_logprobs"].append(top)

    def _start(self, prompt: list[int], opt: GenerationOptions, stream: bool):
        if self._active is not None:  # one generation at a time per context: end the previous stream
            self._active.close()
        s = CompletionStream(iter(()), self)
        s._gen = self._generate(prompt, opt, s)
        self._active = s
        if stream:
            return s
        for _ in s:
            pass
        return s.result

    def generate(self, prompt: Union[str, bytes, Sequence[int]], max_tokens: Optional[int] = 128,
                 temperature: float = 0.8, top_k: int = 40, top_p: float = 0.95, min_p: float = 0.05,
                 typical_p: float = 1.0, repeat_penalty: float = 1.1, repeat_last_n: int = 64,
                 frequency_penalty: float = 0.0, presence_penalty: float = 0.0, seed: Optional[int] = None,
                 stop: Union[str, Sequence[str], None] = None, stream: bool = False,
                 logit_bias: Optional[dict] = None, logits_processor: Optional[Sequence[LogitsProcessor]] = None,
                 logprobs: Optional[int] = None, stopping_criteria: Optional[Sequence[StoppingCriterion]] = None,
                 ) -> Union[Completion, CompletionStream]:
        """Continue `prompt` (text, whose special-token spellings are parsed, or token ids).

        Returns a Completion (the text, with .tokens, .finish_reason, .logprobs), or with
        stream=True an iterator of text pieces (whole UTF-8 characters; text that may be the
        start of a stop string is held back until it is known not to be one). Sampling follows
        llama.cpp: penalties over the last repeat_last_n tokens (prompt included), then top-k,
        typical, top-p, min-p, temperature; temperature=0 is greedy. seed (else the model's
        generator) makes the output reproducible. Generation ends at max_tokens, an
        end-of-generation token, a stop string (not included in the text) or a stopping criterion.
        """
        opt = self._options(max_tokens, stop, seed, logprobs, stopping_criteria, temperature=temperature,
                            top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
                            repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n,
                            frequency_penalty=frequency_penalty, presence_penalty=presence_penalty,
                            logit_bias=dict(logit_bias or {}), logits_processor=tuple(logits_processor or ()))
        return self._start(self._prompt_tokens(prompt), opt, stream)

    __call__ = generate

    # -- chat -----------------------------------------------------------------------------

    def _special_text(self, tok: int) -> str:
        return self.tokenizer.token_text(tok) if tok >= 0 else ""

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The chat template (the GGUF's, else ChatML) rendered in the sandbox."""
        return render_template(self.chat_template, messages, add_generation_prompt=add_generation_prompt,
                               bos_token=self._special_text(self.bos), eos_token=self._special_text(self.eos))

    def tokenize_chat(self, text: str) -> list[int]:
        """Tokens of a rendered chat prompt: special tokens parsed, BOS added once."""
        toks = self.tokenize(text, add_special=True, parse_special=True)
        if len(toks) >= 2 and toks[0] == toks[1] == self.bos:  # the template wrote BOS itself
            del toks[0]
        return toks

    def _chat_end_markers(self) -> tuple[frozenset, tuple]:
        """What the template writes after an assistant message (ChatML: <|im_end|>), as a token
        id when it is one control token, else as a stop string."""
        probe = "\x00pyllong-probe\x00"
        try:
            text = self.render_chat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": probe}],
                                    add_generation_prompt=False)
        except Error:
            return frozenset(), ()
        after = text.split(probe, 1)[1].strip() if probe in text else ""
        if not after:
            return frozenset(), ()
        toks = self.tokenizer.encode(after, False, True)
        if toks and self.tokenizer.token_type(toks[0]) in (_CONTROL, _USER_DEFINED):
            return frozenset([int(toks[0])]), ()
        return frozenset(), (after.split()[0],)

    def chat(self, messages: list[dict], stream: bool = False, stop: Union[str, Sequence[str], None] = None,
             **kwargs) -> Union[Completion, CompletionStream]:
        """The assistant's reply to `messages` ([{"role", "content"}]); generate()'s keywords apply.
        Stops at end-of-generation tokens and the template's end-of-turn marker."""
        return self._chat_tokens(self.tokenize_chat(self.render_chat(messages)), stream=stream, stop=stop, **kwargs)

    def _chat_tokens(self, tokens: list[int], stream: bool = False, stop=None, max_tokens: Optional[int] = 512,
                     seed=None, logprobs=None, stopping_criteria=None, **sampling):
        stop = [stop] if isinstance(stop, str) else list(stop or ())
        opt = self._options(max_tokens, stop + list(self._chat_end_strings), seed, logprobs, stopping_criteria,
                            stop_token_ids=self._chat_end_ids, **sampling)
        return self._start(tokens, opt, stream)

    # -- llama-cpp-python / OpenAI-shaped results ----------------------------------------

    def create_completion(self, prompt, stream: bool = False, **kwargs):
        """OpenAI text-completion dict (or, with stream=True, an iterator of chunk dicts)."""
        cid, created = f"cmpl-{uuid.uuid4()}", int(time.time())
        res = self.generate(prompt, stream=stream, **kwargs)

        def choice(text, finish, logprobs=None):
            return {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish}

        def wrap(choices, usage=None):
            d = {"id": cid, "object": "text_completion", "created": created, "model": self.path, "choices": choices}
            if usage:
                d["usage"] = usage
            return d

        if stream:
            def chunks():
                for piece in res:
                    yield wrap([choice(piece, None)])
                yield wrap([choice("", res.result.finish_reason)])
            return chunks()
        return wrap([choice(str(res), res.finish_reason, res.logprobs)], _usage(res))

    def create_chat_completion(self, messages: list[dict], stream: bool = False, **kwargs):
        """OpenAI chat-completion dict (or, with stream=True, an iterator of chunk dicts)."""
        cid, created = f"chatcmpl-{uuid.uuid4()}", int(time.time())
        res = self.chat(messages, stream=stream, **kwargs)

        def wrap(obj, choices, usage=None):
            d = {"id": cid, "object": obj, "created": created, "model": self.path, "choices": choices}
            if usage:
                d["usage"] = usage
            return d

        if stream:
            def chunks():
                yield wrap("chat.completion.chunk", [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}])
                for piece in res:
                    yield wrap("chat.completion.chunk", [{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
                yield wrap("chat.completion.chunk", [{"index": 0, "delta": {}, "finish_reason": res.result.finish_reason}])
            return chunks()
        msg = {"role": "assistant", "content": str(res)}
        return wrap("chat.completion", [{"index": 0, "message": msg, "logprobs": res.logprobs,
                                         "finish_reason": res.finish_reason}], _usage(res))


def _usage(res: Completion) -> dict:
    return {"prompt_tokens": res.prompt_tokens, "completion_tokens": len(res.tokens),
            "total_tokens": res.prompt_tokens + len(res.tokens)}
