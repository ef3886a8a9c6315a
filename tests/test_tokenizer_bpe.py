"""Byte-level BPE tokenizer parity: pyllong vs HF `tokenizers` built from the same GGUF vocab.

The reference is configured as SmolLM2's real tokenizer.json is: BPE (no unk token, no byte
fallback) with the pre-tokenizer Sequence[Digits(individual_digits=True),
ByteLevel(add_prefix_space=False, use_regex=True)], and the control tokens as special added
tokens. The other supported pre-tokenizers are checked on the same vocabulary rewritten with
another `tokenizer.ggml.pre` against the HF pre-tokenizer spelling the same regexes.
"""
import threading

import pytest

import gguf
import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers  # noqa: E402

from pyllong import _core  # noqa: E402
from pyllong.errors import InvalidArgumentError  # noqa: E402
from tokenizer_corpus import CORPUS  # noqa: E402

GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
                r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def gpt2_byte_alphabet():
    """GPT-2's bytes_to_unicode, written out independently of the C++."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    cps, extra = {}, 0
    for b in range(256):
        if b in printable:
            cps[b] = chr(b)
        else:
            cps[b] = chr(256 + extra)
            extra += 1
    return cps


BYTE_OF_CHAR = {c: b for b, c in gpt2_byte_alphabet().items()}


class GGUFVocab:
    """The tokenizer metadata of a GGUF file, read with the `gguf` package."""

    def __init__(self, path):
        r = gguf.GGUFReader(path)
        f = r.fields
        self.tokens = f["tokenizer.ggml.tokens"].contents()
        self.types = f["tokenizer.ggml.token_type"].contents()
        self.merges = f["tokenizer.ggml.merges"].contents()
        self.bos = f["tokenizer.ggml.bos_token_id"].contents()
        self.eos = f["tokenizer.ggml.eos_token_id"].contents()
        self.control = [i for i, t in enumerate(self.types) if t == 3]

    def write(self, path, pre, add_bos=None):
        """A vocabulary-only GGUF with these tokens and merges and the given pre-tokenizer."""
        w = gguf.GGUFWriter(str(path), "llama")
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(self.tokens)
        w.add_token_types(self.types)
        w.add_token_merges(self.merges)
        w.add_bos_token_id(self.bos)
        w.add_eos_token_id(self.eos)
        if add_bos is not None:
            w.add_add_bos_token(add_bos)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.close()
        return str(path)


def hf_tokenizer(vocab, pre_tokenizer, *, ignore_merges=False, with_specials=True):
    model = models.BPE(vocab={t: i for i, t in enumerate(vocab.tokens)},
                       merges=[tuple(m.split(" ")) for m in vocab.merges],
                       unk_token=None, fuse_unk=False, byte_fallback=False, ignore_merges=ignore_merges)
    tk = tokenizers.Tokenizer(model)
    tk.pre_tokenizer = pre_tokenizer
    tk.decoder = decoders.ByteLevel()
    if with_specials:
        tk.add_special_tokens([AddedToken(vocab.tokens[i], special=True, normalized=False) for i in vocab.control])
    return tk


def smollm2_pre():
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                                             use_regex=True)])


def split_then_bytelevel(*regexes):
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in regexes]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


# tokenizer.ggml.pre -> (HF pre-tokenizer of the same regexes, ignore_merges)
PRE_TOKENIZERS = {
    "gpt-2": (lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), False),
    "phi-2": (lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), False),
    "llama-bpe": (lambda: split_then_bytelevel(LLAMA3_REGEX), True),
    "default": (lambda: split_then_bytelevel(r"[\p{P}\$\+<=>\^~\|]+", GPT2_REGEX, r"\p{N}+", "[0-9][0-9][0-9]"),
                False),
}


@pytest.fixture(scope="module")
def vocab(smollm2_path):
    return GGUFVocab(smollm2_path)


@pytest.fixture(scope="module")
def ours(smollm2_path):
    return _core.Tokenizer(_core.ModelFile(smollm2_path, check_data=False))


@pytest.fixture(scope="module")
def hf(vocab):
    return hf_tokenizer(vocab, smollm2_pre())


def mismatches(ours_fn, ref_fn, texts):
    bad = []
    for t in texts:
        a, b = ours_fn(t), ref_fn(t)
        if a != b:
            bad.append((t, a, b))
    return bad


def test_smollm2_metadata(ours):
    assert (ours.model, ours.pre, ours.n_vocab, ours.bos, ours.eos, ours.add_bos) == ("gpt2", "smollm", 49152, 1, 2,
                                                                                    False)


def test_smollm2_matches_hf_with_special_tokens(ours, hf):
    bad = mismatches(lambda t: ours.encode(t, add_special=False, parse_special=True),
                     lambda t: hf.encode(t, add_special_tokens=False).ids, CORPUS)
    assert not bad, f"{len(bad)}/{len(CORPUS)} differ, first: {bad[:3]}"


def test_smollm2_plain_text_matches_hf_without_special_tokens(ours, vocab):
    plain = hf_tokenizer(vocab, smollm2_pre(), with_specials=False)
    bad = mismatches(lambda t: ours.encode(t, add_special=False, parse_special=False),
                     lambda t: plain.encode(t, add_special_tokens=False).ids, CORPUS)
    assert not bad, f"{len(bad)}/{len(CORPUS)} differ, first: {bad[:3]}"


def test_smollm2_long_text_matches_hf(ours, hf):
    text = "\n".join(CORPUS) * 5  # long enough to run without the GIL
    assert ours.encode(text, add_special=False, parse_special=True) == hf.encode(text, add_special_tokens=False).ids


def test_special_tokens_only_when_asked(ours, vocab):
    im_start, im_end = vocab.tokens.index("<|im_start|>"), vocab.tokens.index("<|im_end|>")
    with_special = ours.encode("<|im_start|>user\nhi<|im_end|>", parse_special=True)
    assert with_special[0] == im_start and with_special[-1] == im_end
    plain = ours.encode("<|im_start|>user\nhi<|im_end|>", parse_special=False)
    assert im_start not in plain and im_end not in plain
    assert ours.decode(plain) == "<|im_start|>user\nhi<|im_end|>"


@pytest.mark.parametrize("pre", sorted(PRE_TOKENIZERS))
def test_other_pre_tokenizers_match_hf(pre, vocab, tmp_path):
    make_pre, ignore_merges = PRE_TOKENIZERS[pre]
    ours = _core.Tokenizer(_core.GGUFFile(vocab.write(tmp_path / f"{pre}.gguf", pre)))
    assert ours.pre == pre
    ref = hf_tokenizer(vocab, make_pre(), ignore_merges=ignore_merges)
    bad = mismatches(lambda t: ours.encode(t, add_special=False, parse_special=True),
                     lambda t: ref.encode(t, add_special_tokens=False).ids, CORPUS)
    assert not bad, f"{pre}: {len(bad)}/{len(CORPUS)} differ, first: {bad[:3]}"


def test_add_special_follows_vocab_flags(vocab, tmp_path):
    # LLaMA-3 vocabularies add BOS unless the file says otherwise (llama.cpp's default).
    llama3 = _core.Tokenizer(_core.GGUFFile(vocab.write(tmp_path / "l3.gguf", "llama-bpe")))
    assert llama3.add_bos and llama3.encode("hi")[0] == vocab.bos
    assert llama3.encode("hi", add_special=False)[0] != vocab.bos
    off = _core.Tokenizer(_core.GGUFFile(vocab.write(tmp_path / "off.gguf", "llama-bpe", add_bos=False)))
    assert off.encode("hi") == off.encode("hi", add_special=False)
    assert llama3.encode("") == [vocab.bos] and llama3.encode("", add_special=False) == []


def test_token_bytes_follow_the_byte_alphabet(ours, vocab):
    for i, (text, ttype) in enumerate(zip(vocab.tokens, vocab.types)):
        if ttype == 1:
            assert ours.token_to_bytes(i) == bytes(BYTE_OF_CHAR[c] for c in text), i
        else:  # control: rendered only when asked
            assert ours.token_to_bytes(i) == b""
            assert ours.token_to_bytes(i, special=True) == text.encode()


def test_decode_matches_hf_including_invalid_utf8(ours, hf):
    import random
    rng = random.Random(7)
    for _ in range(300):
        # Random ids: their byte concatenation is often malformed UTF-8.
        ids = [rng.randrange(17, ours.n_vocab) for _ in range(rng.randint(1, 12))]
        expected = b"".join(ours.token_to_bytes(i) for i in ids)
        assert ours.decode_bytes(ids) == expected
        assert ours.decode(ids) == expected.decode("utf-8", "replace") == hf.decode(ids, skip_special_tokens=False)
    for t in CORPUS:
        ids = ours.encode(t, add_special=False, parse_special=True)
        assert ours.decode(ids, special=True) == t


def test_decode_rejects_ids_outside_vocab(ours):
    for bad in (-1, ours.n_vocab, 2**31, -(2**40)):
        with pytest.raises(InvalidArgumentError):
            ours.decode([5, bad])
        with pytest.raises(InvalidArgumentError):
            ours.token_to_bytes(bad)


def test_invalid_utf8_encodes_as_replacement_chars(ours, hf):
    # Defined behaviour (llama.cpp's): each byte that does not start a well-formed UTF-8
    # sequence is tokenized as U+FFFD.
    cases = [b"\xff", b"\xc0\xaf", b"abc\x80def", b"\xe2\x82", b"\xe2\x82(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
             b"ok \xf0\x9f\x98 bad emoji", bytes(range(256))]
    for raw in cases:
        lossy = "".join(ch for ch in _per_byte_replacement(raw))
        assert ours.encode(raw, add_special=False) == hf.encode(lossy, add_special_tokens=False).ids, raw
    assert ours.encode("lone \ud800 surrogate", add_special=False) == \
        ours.encode(b"lone \xed\xa0\x80 surrogate", add_special=False)


def _per_byte_replacement(raw):
    """Decode UTF-8 strictly, each offending byte on its own becoming U+FFFD."""
    i = 0
    while i < len(raw):
        for n in (1, 2, 3, 4):
            try:
                yield raw[i:i + n].decode("utf-8")
                i += n
                break
            except UnicodeDecodeError:
                continue
        else:
            yield "\ufffd"
            i += 1


def test_bytes_missing_from_the_alphabet_are_dropped(tmp_path):
    # A hand-made vocabulary without 'a': HF (BPE, no unk token) and llama.cpp drop it.
    alphabet = [c for c in gpt2_byte_alphabet().values() if c != "a"]
    tokens = alphabet + ["bc", "bcd"]
    w = gguf.GGUFWriter(str(tmp_path / "noa.gguf"), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_merges(["b c", "bc d"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    ours = _core.Tokenizer(_core.GGUFFile(str(tmp_path / "noa.gguf")))
    bc, bcd = tokens.index("bc"), tokens.index("bcd")
    assert ours.encode("abcd", add_special=False) == [bcd]
    assert ours.encode("bcab", add_special=False) == [bc, tokens.index("b")]
    assert ours.encode("aaa", add_special=False) == []


def test_encode_is_thread_safe(ours):
    expected = [ours.encode(t, parse_special=True) for t in CORPUS]
    errors = []

    def work():
        for t, e in zip(CORPUS, expected):
            if ours.encode(t, parse_special=True) != e:
                errors.append(t)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def test_encode_rejects_non_text(ours):
    with pytest.raises(TypeError):
        ours.encode(123)
    assert ours.encode(bytearray(b"hi")) == ours.encode("hi")
