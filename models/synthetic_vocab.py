"""Small but real vocabularies for synthetic GGUF models.

Two kinds, as llama.cpp stores them in GGUF (`tokenizer.ggml.*`):

* ``bpe_vocab``: GPT-2-style byte-level BPE (`tokenizer.ggml.model = "gpt2"`): special tokens,
  the 256 byte-level characters, then merges learned from the built-in text.
* ``spm_vocab``: SentencePiece BPE (`tokenizer.ggml.model = "llama"`) with byte fallback:
  `<unk>`, `<s>`, `</s>`, the 256 `<0xNN>` byte tokens, then pieces with scores. Trained with
  the `sentencepiece` package when it is installed (so `sentencepiece_processor()` is an exact
  reference tokenizer); otherwise learned by a small built-in BPE (same layout, no reference).

Everything here is deterministic and cached per process.
"""
from __future__ import annotations

import collections
import functools
import re
from dataclasses import dataclass, field

from ._corpus import TEXT

# llama.cpp token types (tokenizer.ggml.token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


@dataclass
class Vocab:
    """A vocabulary as GGUF stores it; every list has one entry per token."""
    model: str                      # "gpt2" | "llama"
    tokens: list[str]
    types: list[int]
    scores: list[float] | None = None   # SPM only
    merges: list[str] | None = None     # BPE only, "A B"
    special_ids: dict[str, int] = field(default_factory=dict)  # "bos" -> id, ...
    trained_with: str = "builtin"   # "sentencepiece" | "builtin"

    def __len__(self) -> int:
        return len(self.tokens)

    def token_id(self, token: str) -> int:
        return self.tokens.index(token)


# ---------------------------------------------------------------------------------------------
# Byte-level BPE (GPT-2 style)

# A GPT-2-like pre-tokenizer using only `re` (no \p classes), so merges do not depend on
# whether the `regex` package is installed. Exactness does not matter here: it only shapes
# which merges are learned.
_GPT2_SPLIT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d| ?[^\s\w]+|\s+(?!\S)|\s+""")


@functools.lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from byte value to a printable character (the byte-level alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = list(printable)
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def _byte_level_words(text: str) -> collections.Counter:
    """Pre-tokenized words of `text`, each a tuple of byte-level characters, with counts."""
    b2u = bytes_to_unicode()
    words = collections.Counter()
    for piece in _GPT2_SPLIT.findall(text):
        words[tuple(b2u[b] for b in piece.encode("utf-8"))] += 1
    return words


def learn_bpe_merges(words: collections.Counter, n_merges: int) -> list[tuple[str, str]]:
    """Classic BPE: repeatedly merge the most frequent adjacent pair (ties: smallest pair)."""
    words = dict(words)
    merges: list[tuple[str, str]] = []
    while len(merges) < n_merges:
        pairs: collections.Counter = collections.Counter()
        for word, count in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += count
        if not pairs:
            break
        best_count = max(pairs.values())
        best = min(p for p, c in pairs.items() if c == best_count)
        merges.append(best)
        words = {_merge_pair(w, best): c for w, c in words.items()}
    return merges


def _merge_pair(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


BPE_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


@functools.lru_cache(maxsize=None)
def _bpe_vocab_cached(n_vocab: int, special_tokens: tuple[str, ...]) -> Vocab:
    n_base = len(special_tokens) + 256
    if n_vocab < n_base:
        raise ValueError(f"a byte-level BPE vocabulary needs at least {n_base} tokens, asked for {n_vocab}")
    tokens = list(special_tokens)
    types = [CONTROL] * len(special_tokens)
    b2u = bytes_to_unicode()
    tokens += list(b2u.values())          # GPT-2 order: printable bytes first
    types += [NORMAL] * 256
    known = set(tokens)
    merge_lines = []
    for a, b in learn_bpe_merges(_byte_level_words(TEXT), n_vocab - n_base):
        merge_lines.append(f"{a} {b}")
        if a + b not in known:            # two merges may build the same token
            known.add(a + b)
            tokens.append(a + b)
            types.append(NORMAL)
    _pad(tokens, types, None, n_vocab, "<|unused_{}|>")
    ids = {t: i for i, t in enumerate(tokens)}
    special_ids = {}
    if "<|endoftext|>" in ids:
        special_ids.update(unk=ids["<|endoftext|>"], bos=ids["<|endoftext|>"], eos=ids["<|endoftext|>"])
    if "<|im_start|>" in ids and "<|im_end|>" in ids:  # SmolLM2's choice
        special_ids.update(bos=ids["<|im_start|>"], eos=ids["<|im_end|>"], pad=ids["<|im_end|>"])
    return Vocab("gpt2", tokens, types, None, merge_lines, special_ids)


def bpe_vocab(n_vocab: int = 512, special_tokens: tuple[str, ...] = BPE_SPECIAL_TOKENS) -> Vocab:
    """A byte-level BPE vocabulary of exactly `n_vocab` tokens (padded with unused tokens when
    the built-in text runs out of merges)."""
    v = _bpe_vocab_cached(n_vocab, tuple(special_tokens))
    return Vocab(v.model, list(v.tokens), list(v.types), None, list(v.merges), dict(v.special_ids), v.trained_with)


def _pad(tokens: list[str], types: list[int], scores: list[float] | None, n_vocab: int, pattern: str) -> None:
    """Fill the vocabulary up to n_vocab with unused tokens that no text produces."""
    i = 0
    while len(tokens) < n_vocab:
        tokens.append(pattern.format(i))
        types.append(UNUSED)
        if scores is not None:
            scores.append(-1e9)
        i += 1


# ---------------------------------------------------------------------------------------------
# SentencePiece BPE with byte fallback (LLaMA / Mistral / Phi-3 style)

SPM_BASE = ("<unk>", "<s>", "</s>")
SPM_WHITESPACE = "\u2581"  # ▁


def have_sentencepiece() -> bool:
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def sentencepiece_model_proto(n_pieces: int) -> bytes:
    """Serialized sentencepiece BPE model trained on the built-in text, LLaMA-like settings.

    The vocabulary may come out smaller than `n_pieces` (hard_vocab_limit=False) when the text
    does not support that many merges; callers pad."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXT.splitlines()), model_writer=model,
        model_type="bpe", vocab_size=n_pieces, hard_vocab_limit=False,
        character_coverage=1.0, byte_fallback=True, split_digits=True,
        allow_whitespace_only_pieces=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2,
    )
    return model.getvalue()


def sentencepiece_processor(n_vocab: int = 512):
    """The reference `sentencepiece.SentencePieceProcessor` for `spm_vocab(n_vocab)` (tokens
    beyond the trained pieces — padding, added special tokens — are unknown to it)."""
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=sentencepiece_model_proto(n_vocab))


def _spm_pieces_from_sentencepiece(n_pieces: int) -> tuple[list[str], list[int], list[float]]:
    sp = sentencepiece_processor(n_pieces)
    tokens, types, scores = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        if sp.is_unknown(i):
            types.append(UNKNOWN)
        elif sp.is_control(i):
            types.append(CONTROL)
        elif sp.is_byte(i):
            types.append(BYTE)
        elif sp.is_unused(i):
            types.append(UNUSED)
        else:
            types.append(NORMAL)
    return tokens, types, scores


def _spm_pieces_builtin(n_pieces: int) -> tuple[list[str], list[int], list[float]]:
    """Same layout as a sentencepiece BPE model: specials, bytes, then merged pieces and the
    characters, scores decreasing with rank."""
    tokens = list(SPM_BASE) + [f"<0x{b:02X}>" for b in range(256)]
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256
    scores = [0.0] * len(tokens)
    words = collections.Counter()
    for word in re.findall(r" ?[^ ]+| +", " " + TEXT.replace("\n", " ")):
        words[tuple(word.replace(" ", SPM_WHITESPACE))] += 1
    chars = sorted({c for w in words for c in w})
    n_merges = max(0, n_pieces - len(tokens) - len(chars))
    known = set(tokens)
    pieces = []
    for a, b in learn_bpe_merges(words, n_merges):
        if a + b not in known:
            known.add(a + b)
            pieces.append(a + b)
    for c in chars:
        if c not in known:
            known.add(c)
            pieces.append(c)
    for rank, piece in enumerate(pieces):
        tokens.append(piece)
        types.append(NORMAL)
        scores.append(-float(rank))
    return tokens, types, scores


@functools.lru_cache(maxsize=None)
def _spm_vocab_cached(n_vocab: int, added_tokens: tuple[tuple[str, int], ...], use_sentencepiece: bool) -> Vocab:
    n_pieces = n_vocab - len(added_tokens)
    if n_pieces < len(SPM_BASE) + 256 + 1:
        raise ValueError(f"an SPM vocabulary with byte fallback needs more than {len(SPM_BASE) + 256} "
                         f"pieces, asked for {n_vocab} tokens")
    if use_sentencepiece:
        tokens, types, scores = _spm_pieces_from_sentencepiece(n_pieces)
        trained_with = "sentencepiece"
    else:
        tokens, types, scores = _spm_pieces_builtin(n_pieces)
        trained_with = "builtin"
    tokens, types, scores = tokens[:n_pieces], types[:n_pieces], scores[:n_pieces]
    _pad(tokens, types, scores, n_pieces, "<unused{}>")
    for text, token_type in added_tokens:
        tokens.append(text)
        types.append(token_type)
        scores.append(0.0)
    special_ids = {"unk": 0, "bos": 1, "eos": 2}
    return Vocab("llama", tokens, types, scores, None, special_ids, trained_with)


def spm_vocab(n_vocab: int = 512, added_tokens: tuple[tuple[str, int], ...] = (),
              use_sentencepiece: bool | None = None) -> Vocab:
    """An SPM vocabulary of exactly `n_vocab` tokens: trained pieces, padding, then
    `added_tokens` ((text, token_type) pairs, e.g. Phi-3's `<|user|>`) at the end."""
    if use_sentencepiece is None:
        use_sentencepiece = have_sentencepiece()
    v = _spm_vocab_cached(n_vocab, tuple(tuple(t) for t in added_tokens), use_sentencepiece)
    return Vocab(v.model, list(v.tokens), list(v.types), list(v.scores), None, dict(v.special_ids), v.trained_with)
