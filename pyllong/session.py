"""`ChatSession`: a multi-turn conversation over one Model that re-uses the KV cache.

Each turn tokenizes only what the template adds since the previous turn (as llama-cli
does: render the conversation with and without the new message, tokenize the difference),
so the cached prefix — system prompt, earlier turns, the reply's own generated tokens — is
never evaluated again. When the conversation no longer fits, whole old turns are dropped
(the system prompt is pinned) and the prompt is rebuilt; the Model's prefix matching still
keeps the system prompt's cache.
"""
from __future__ import annotations

from typing import Optional, Union

from .errors import ContextOverflowError, InvalidArgumentError
from .model import Completion, CompletionStream, Model


class ChatSession:
    def __init__(self, model: Model, system: Optional[str] = None, max_tokens: int = 512, **sampling):
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
        while True:
            text, tokens = self._prompt()
            if len(tokens) + want <= n_ctx or not self._drop_oldest_turn():
                break
        room = n_ctx - len(tokens)
        if room < 1:
            raise ContextOverflowError(
                f"the system prompt and the last message take {len(tokens)} tokens; the context holds "
                f"{n_ctx}. Use a larger n_ctx or a shorter message/system prompt")
        return text, tokens, min(max_tokens, room)

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

