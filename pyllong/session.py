"""`ChatSession`: a multi-turn conversation over one Model that re-uses the KV cache.

Each turn tokenizes only what the template adds since the previous turn (as llama-cli
does: render the conversation with and without the new message, tokenize the difference),
so the cached prefix — system prompt, earlier turns, the reply's own generated tokens — is
never evaluated again. When the conversation no longer fits, whole old turns are dropped
(the system prompt is pinned). With evict="rebuild" (the default) the prompt is rebuilt and
everything after the cached common prefix (the system prompt) is evaluated again, exactly as a
fresh chat would; with evict="shift" the dropped turns' tokens are cut out of the KV cache and
the rest moved back (llama.cpp's --keep context shift, at turn boundaries): nothing is
re-evaluated, and the kept turns keep the states they were computed with. With a kNN memory
(Model(memory=...)) no turn is dropped: what leaves the window moves into memory, and
evict="shift" is refused. pyllong-chat's ChatSession (csrc/apps/chat) is the C++ twin.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

from .errors import ContextOverflowError, Error, InvalidArgumentError
from .model import Completion, CompletionStream, Model

EVICT_MODES = ("rebuild", "shift")


def plan_eviction(cached: Sequence[int], new: Sequence[int], n_pinned: int) -> Optional[tuple[int, int]]:
    """(n_keep, n_discard) such that cutting cached[n_keep:n_keep + n_discard] out of the cache
    leaves a prefix of `new` that keeps at least the pinned first n_pinned tokens and leaves the
    last token of `new` to evaluate; None when no cut does (then the prompt is rebuilt)."""
    cached, new = list(cached), list(new)
    k = 0
    limit = min(len(cached), len(new))
    while k < limit and cached[k] == new[k]:
        k += 1
    if k < n_pinned or k == len(cached):
        return None
    for d in range(1, len(cached) - k + 1):
        rest = len(cached) - d  # tokens left in the cache
        if rest >= len(new):
            continue  # the last prompt token must be evaluated for its logits
        if (rest == k or cached[k + d] == new[k]) and cached[k + d:] == new[k:rest]:
            return check_eviction(k, d, len(cached), n_pinned)
    return None


def check_eviction(n_keep: int, n_discard: int, n_cached: int, n_pinned: int) -> tuple[int, int]:
    """The arithmetic of a cut, checked: llama.cpp once wrote out of bounds from a negative count."""
    if not (0 <= n_pinned <= n_keep and n_discard >= 1 and n_keep + n_discard <= n_cached):
        raise Error(f"internal error: eviction of [{n_keep}, {n_keep + n_discard}) from {n_cached} cached tokens "
                    f"with {n_pinned} pinned is out of range; please report it")
    return n_keep, n_discard


class ChatSession:
    def __init__(self, model: Model, system: Optional[str] = None, max_tokens: int = 512, evict: str = "rebuild",
                 **sampling):
        if evict not in EVICT_MODES:
            raise InvalidArgumentError(f"evict must be one of {', '.join(EVICT_MODES)}, got {evict!r}")
        if evict == "shift" and getattr(model, "self_extend", None):
            raise InvalidArgumentError("evict='shift' needs a context shift, which SelfExtend does not allow; "
                                       "use evict='rebuild'")
        if evict == "shift" and getattr(model, "memory", None) is not None:
            raise InvalidArgumentError("evict='shift' cannot be combined with memory: old turns move into the memory "
                                       "instead of being cut out; use evict='rebuild'")
        self.evict = evict
        self.shifted_tokens = 0           # tokens cut out of the cache by evict="shift"
        self.model = model
        self.system = system
        self.max_tokens = max_tokens
        self.sampling = sampling          # generate() keywords applied to every turn
        self.turns: list[dict] = []       # user/assistant messages, oldest first
        self.dropped_turns = 0            # user turns dropped to make room
        self._forget_cache()

    # -- state ----------------------------------------------------------------------------

    def _forget_cache(self) -> None:
        self._text = ""                   # rendered conversation whose tokens are `_tokens`
        self._tokens: list[int] = []

    @property
    def messages(self) -> list[dict]:
        sys_msg = [{"role": "system", "content": self.system}] if self.system else []
        return sys_msg + self.turns

    def reset(self) -> None:
        """Forget the turns (the system prompt stays)."""
        self.turns = []
        self._forget_cache()

    def set_system(self, system: Optional[str]) -> None:
        self.system = system or None
        self._forget_cache()

    # -- prompt ---------------------------------------------------------------------------

    def _prompt(self) -> tuple[str, list[int]]:
        """Rendered prompt for the current messages and its tokens, re-using the cached part."""
        text = self.model.render_chat(self.messages, add_generation_prompt=True)
        if self._text and text.startswith(self._text):
            delta = self.model.tokenize(text[len(self._text):], add_special=False, parse_special=True)
            return text, self._tokens + delta
        return text, self.model.tokenize_chat(text)

    def _drop_oldest_turn(self) -> bool:
        """Drop the oldest user message and the replies after it; False if only the newest is left."""
        users = [i for i, m in enumerate(self.turns) if m["role"] == "user"]
        if len(users) < 2:
            return False
        del self.turns[:users[1]]
        self.dropped_turns += 1
        self._forget_cache()
        return True

    def _fit(self, max_tokens: int) -> tuple[str, list[int], int]:
        """A prompt that leaves room for a reply (dropping old turns if needed) and the
        max_tokens that fits."""
        if self.model.memory is not None:  # old turns move into the kNN memory: nothing to drop
            text, tokens = self._prompt()
            return text, tokens, max_tokens
        n_ctx = self.model.n_ctx
        want = min(max_tokens, max(1, n_ctx // 2))  # room to keep free for the reply
        dropped_any = False
        while True:
            text, tokens = self._prompt()
            if len(tokens) + want <= n_ctx or not self._drop_oldest_turn():
                break
            dropped_any = True
        if dropped_any and self.evict == "shift":
            self._shift_cache(tokens)
        room = n_ctx - len(tokens)
        if room < 1:
            raise ContextOverflowError(
                f"the system prompt and the last message take {len(tokens)} tokens; the context holds "
                f"{n_ctx}. Use a larger n_ctx or a shorter message/system prompt")
        return text, tokens, min(max_tokens, room)

    def pinned_tokens(self) -> int:
        """Tokens of the system prompt's rendering that every prompt of this session starts with."""
        if not self.system:
            return 0
        sys_text = self.model.render_chat([{"role": "system", "content": self.system}], add_generation_prompt=False)
        return len(self.model.tokenize_chat(sys_text))

    def _pinned_in(self, tokens: list[int]) -> int:
        """pinned_tokens, cut to where `tokens` still agrees with the system prompt's own
        tokenization (templates that fold the system prompt into the first user turn)."""
        sys_text = self.model.render_chat([{"role": "system", "content": self.system}], add_generation_prompt=False) \
            if self.system else ""
        sys_toks = self.model.tokenize_chat(sys_text) if sys_text else []
        n = 0
        while n < min(len(sys_toks), len(tokens)) and sys_toks[n] == tokens[n]:
            n += 1
        return n

    def _shift_cache(self, tokens: list[int]) -> None:
        """Cut the dropped turns out of the KV cache so that it holds a prefix of `tokens`."""
        self.model._sync()
        plan = plan_eviction(self.model.cached_tokens, tokens, self._pinned_in(tokens))
        if plan is not None:
            self.model.evict(*plan)
            self.shifted_tokens += plan[1]

    # -- a turn ---------------------------------------------------------------------------

    def send(self, content: str, stream: bool = False, max_tokens: Optional[int] = None,
             **sampling) -> Union[Completion, CompletionStream]:
        """Add a user message and generate the reply (text, or a stream of pieces). The reply
        is added to the conversation when it ends, also when a stream is closed early."""
        if not isinstance(content, str):
            raise InvalidArgumentError(f"a message must be a str, got {type(content).__name__}")
        max_tokens = self.max_tokens if max_tokens is None else max_tokens
        self.turns.append({"role": "user", "content": content})
        try:
            text, tokens, max_tokens = self._fit(max_tokens)
            out = self.model._chat_tokens(tokens, stream=True, max_tokens=max_tokens, **{**self.sampling, **sampling})
        except BaseException:
            self.turns.pop()
            raise
        s = CompletionStream(iter(()), self.model)
        s._gen = self._record(out, text, tokens, s)
        if stream:
            return s
        for _ in s:
            pass
        return s.result

    __call__ = send

    def _record(self, out: CompletionStream, text: str, tokens: list[int], holder: CompletionStream):
        """Pass the reply's pieces through; when it ends, store it and what is now cached."""
        try:
            yield from out
        finally:
            out.close()
            res = out.result
            if res is not None:
                self.turns.append({"role": "assistant", "content": str(res)})
                holder.result = res
                if res.stop_token is not None:
                    # Ended on an end-of-turn token: the cache holds the prompt and the reply's
                    # tokens exactly, and the next render continues from this text.
                    self._text, self._tokens = text + str(res), tokens + res.tokens
                else:
                    # Cut by a stop string, max_tokens or Ctrl-C: the reply's tokens need not
                    # spell its text; re-tokenize the reply next turn.
                    self._text, self._tokens = text, list(tokens)

