"""SentencePiece-style tokenizer parity: pyllong vs `sentencepiece` on a model trained here.

A small BPE sentencepiece model is trained on a built-in text with LLaMA's settings
(identity normalization, no whitespace cleanup, byte fallback), written to a vocabulary-only
GGUF with the `gguf` package exactly as llama.cpp's converter lays out an SPM vocabulary,
and both tokenizers encode the corpus. llama.cpp's SPM algorithm is SentencePiece's BPE
(merge the best-scoring adjacent pair), so the model type is "bpe" (LLaMA's own).
"""
import io

import pytest

import sentencepiece as spm
import gguf

from pyllong import _core  # noqa: E402
from pyllong.errors import InvalidArgumentError  # noqa: E402
from tokenizer_corpus import CORPUS, HAND_PICKED  # noqa: E402

TRAINING_TEXT = """\
The tokenizer splits text into pieces that the model has seen during training.
It's a simple idea, but the details matter: spaces, tabs, newlines and digits.
Language models read tokens, not characters; a good vocabulary keeps common words whole.
def tokenize(text):
    return [piece for piece in text.split(" ") if piece]
for (int i = 0; i < 10; ++i) { total += values[i]; }
Numbers like 1, 22, 333, 4444 and 3.14159 appear in many documents.
Café, naïve, résumé and Zürich carry accents; Русский и Ελληνικά use other alphabets.
中文和日本語もあります。한국어도 있습니다.
We've seen they're sure I'm right; you'll see he'd agree. Don't worry!
"""


def sentencepiece_model(tmp_path_factory):
    buf = io.BytesIO()
    lines = TRAINING_TEXT.splitlines() * 20 + [l.upper() for l in TRAINING_TEXT.splitlines()] * 5
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, model_type="bpe", vocab_size=700,
        normalization_rule_name="identity", remove_extra_whitespaces=False, byte_fallback=True,
        character_coverage=1.0, split_digits=True, hard_vocab_limit=False, minloglevel=2)
    path = tmp_path_factory.mktemp("spm") / "tok.model"
    path.write_bytes(buf.getvalue())
    return spm.SentencePieceProcessor(model_file=str(path))


def write_spm_gguf(sp, path):
    """A vocabulary-only GGUF laid out as llama.cpp's converter writes an SPM vocabulary."""
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 5 if sp.is_unused(i)
                     else 6 if sp.is_byte(i) else 1)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    return str(path)


@pytest.fixture(scope="module")
def sp(tmp_path_factory):
    return sentencepiece_model(tmp_path_factory)


@pytest.fixture(scope="module")
def ours(sp, tmp_path_factory):
    return _core.Tokenizer(_core.GGUFFile(write_spm_gguf(sp, tmp_path_factory.mktemp("gguf") / "spm.gguf")))


SPM_CORPUS = CORPUS + ["<s>", "</s>", "<unk>", "a <s> b </s> c", "<0x41>", "▁already▁escaped ▁"]


def test_metadata(ours, sp):
    assert (ours.model, ours.bos, ours.eos, ours.add_bos) == ("llama", sp.bos_id(), sp.eos_id(), True)


def test_encode_matches_sentencepiece(ours, sp):
    bad = [(t, ours.encode(t, add_special=False), sp.encode(t)) for t in SPM_CORPUS
           if ours.encode(t, add_special=False) != sp.encode(t)]
    assert not bad, f"{len(bad)}/{len(SPM_CORPUS)} differ, first: {bad[:3]}"


def test_corpus_exercises_byte_fallback(ours, sp):
    byte_ids = {i for i in range(sp.get_piece_size()) if sp.is_byte(i)}
    assert sum(any(i in byte_ids for i in ours.encode(t)) for t in SPM_CORPUS) > 50


def test_add_special_prepends_bos(ours, sp):
    for t in HAND_PICKED:
        assert ours.encode(t) == [sp.bos_id()] + sp.encode(t)


def test_parse_special_splits_control_tokens(ours, sp):
    # llama.cpp restarts the space prefix after every special token.
    ids = ours.encode("<s>hello world</s>", add_special=False, parse_special=True)
    assert ids == [sp.bos_id()] + sp.encode("hello world") + [sp.eos_id()]
    plain = ours.encode("<s>hello world</s>", add_special=False, parse_special=False)
    assert plain == sp.encode("<s>hello world</s>")


def test_decode_round_trips_and_matches_sentencepiece(ours, sp):
    for t in SPM_CORPUS:
        ids = ours.encode(t)  # BOS first: decode drops the prefixed space
        assert ours.decode(ids) == sp.decode(ids[1:])
        if "\u2581" not in t:  # a literal U+2581 reads back as a space, in both
            assert ours.decode(ids) == t
            assert ours.decode(ids[1:]) == (" " + t if t else "")


def test_token_bytes(ours, sp):
    for i in range(sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        if sp.is_byte(i):
            assert ours.token_to_bytes(i) == bytes([int(piece[3:5], 16)])
        elif sp.is_control(i) or sp.is_unknown(i):
            assert ours.token_to_bytes(i) == b""
            assert ours.token_to_bytes(i, special=True) == piece.encode()
        else:
            assert ours.token_to_bytes(i) == piece.replace("\u2581", " ").encode()


def test_arbitrary_bytes_round_trip_through_byte_fallback(ours):
    import random
    rng = random.Random(3)
    for n in range(200):
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 30)))
        ids = ours.encode(raw)
        if b" " not in raw:
            assert ours.decode_bytes(ids) == raw
            assert ours.decode(ids) == raw.decode("utf-8", "replace")
        else:
            # As in llama.cpp, a space escaped to U+2581 inside a malformed character comes
            # back as the bytes of U+2581.
            space = "\u2581".encode()
            assert ours.decode_bytes(ids).replace(space, b" ") == raw.replace(space, b" ")


def test_decode_rejects_ids_outside_vocab(ours):
    with pytest.raises(InvalidArgumentError):
        ours.decode([ours.n_vocab])
    with pytest.raises(InvalidArgumentError):
        ours.token_to_bytes(-1)


def test_vocabulary_without_byte_tokens_uses_unk(tmp_path_factory):
    # Without byte fallback, a character outside the vocabulary becomes <unk>.
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAINING_TEXT.splitlines() * 20), model_writer=buf, model_type="bpe", vocab_size=300,
        normalization_rule_name="identity", remove_extra_whitespaces=False, byte_fallback=False,
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    path = tmp_path_factory.mktemp("nobytes") / "tok.model"
    path.write_bytes(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_file=str(path))
    ours = _core.Tokenizer(_core.GGUFFile(write_spm_gguf(sp, path.with_suffix(".gguf"))))
    texts = ["hello 😀 world", "😀😀", "emoji 🙂 and ∑ and ok", "plain text"]
    for t in texts:
        assert ours.encode(t, add_special=False) == sp.encode(t), t
