"""Tokenizer parity with the peer, llama.cpp itself (through llama-cpp-python), where the peer
is available: an installed `llama_cpp`, or the source build that ../shared/peer/build_llamacpp.sh
leaves in ~/.cache/pyllong-peer (or $PYLLONG_PEER_DIR). HF `tokenizers` and `sentencepiece`
remain the references the other tokenizer tests need; this one pins llama.cpp's own choices
(malformed UTF-8, special-token splitting, SPM space prefix after specials, detokenize).
"""
import glob
import json
import os
import pathlib
import random
import subprocess
import sys

import pytest

from pyllong import _core
from tokenizer_corpus import CORPUS

HERE = pathlib.Path(__file__).parent
# Malformed UTF-8 on which pyllong and llama.cpp agree: each bad byte is one U+FFFD.
INVALID_UTF8 = [b"\xff", b"abc\x80def", b"\xe2\x82", b"\xe2\x82(", b"ok \xf0\x9f\x98 bad", bytes(range(256))]
# Deliberate deviation: llama.cpp decodes overlong forms and surrogates as if valid
# (b"\xc0\xaf" reads as "/"); pyllong treats them as malformed, as Unicode requires.
LENIENT_IN_LLAMACPP = [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80"]


def peer_env():
    """Environment in which `import llama_cpp` works, or None."""
    probe = subprocess.run([sys.executable, "-c", "import llama_cpp.llama_cpp"], capture_output=True)
    if probe.returncode == 0:
        return dict(os.environ)
    base = os.environ.get("PYLLONG_PEER_DIR", os.path.expanduser("~/.cache/pyllong-peer"))
    for src in sorted(glob.glob(os.path.join(base, "llama-cpp-python-*", "src")), reverse=True):
        lib = os.path.join(src, "vendor", "llama.cpp", "build", "bin")
        if os.path.exists(os.path.join(lib, "libllama.so")):
            return dict(os.environ, PYTHONPATH=src, LLAMA_CPP_LIB_PATH=lib)
    return None


@pytest.fixture(scope="module")
def peer():
    env = peer_env()
    if env is None:
        pytest.skip("llama.cpp peer not available: no llama_cpp module and no build from "
                    "../shared/peer/build_llamacpp.sh")

    def run(model, encode=(), decode=()):
        req = {"model": model, "encode": [[t.hex(), b, s] for t, b, s in encode],
               "decode": [[ids, s] for ids, s in decode]}
        r = subprocess.run([sys.executable, str(HERE / "peer_llamacpp_tokenize.py")], input=json.dumps(req),
                           capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        out = json.loads(r.stdout)
        return out["encode"], [bytes.fromhex(h) for h in out["decode"]]

    return run


def texts():
    return [t.encode("utf-8") for t in CORPUS] + INVALID_UTF8


def compare_encode(ours, peer, path):
    requests = [(t, add, special) for t in texts() for add, special in ((True, False), (True, True), (False, True))]
    expected, _ = peer(path, encode=requests)
    bad = [(r, ours.encode(r[0], add_special=r[1], parse_special=r[2]), e) for r, e in zip(requests, expected)
           if ours.encode(r[0], add_special=r[1], parse_special=r[2]) != e]
    assert not bad, f"{len(bad)}/{len(requests)} differ, first: {bad[:3]}"


def compare_decode(ours, peer, path, n_vocab):
    rng = random.Random(5)
    requests = []
    for _ in range(300):
        ids = [rng.randrange(n_vocab) if rng.random() < 0.7 else rng.randrange(min(n_vocab, 300))
               for _ in range(rng.randint(1, 10))]
        requests.append((ids, rng.random() < 0.5))
    _, expected = peer(path, decode=requests)
    bad = [(r, ours.decode_bytes(r[0], special=r[1]), e) for r, e in zip(requests, expected)
           if ours.decode_bytes(r[0], special=r[1]) != e]
    assert not bad, f"{len(bad)}/{len(requests)} differ, first: {bad[:3]}"


def test_smollm2_encode_matches_llamacpp(smollm2_path, peer):
    compare_encode(_core.Tokenizer(smollm2_path), peer, smollm2_path)


def test_smollm2_decode_matches_llamacpp(smollm2_path, peer):
    ours = _core.Tokenizer(smollm2_path)
    compare_decode(ours, peer, smollm2_path, ours.n_vocab)


@pytest.mark.parametrize("pre", ["gpt-2", "llama-bpe", "default"])
def test_other_pre_tokenizers_match_llamacpp(pre, smollm2_path, peer, tmp_path):
    from test_tokenizer_bpe import GGUFVocab

    path = GGUFVocab(smollm2_path).write(tmp_path / f"{pre}.gguf", pre)
    compare_encode(_core.Tokenizer(_core.GGUFFile(path)), peer, path)


def test_spm_matches_llamacpp(peer, tmp_path_factory):
    pytest.importorskip("sentencepiece")
    from test_tokenizer_spm import sentencepiece_model, write_spm_gguf

    path = write_spm_gguf(sentencepiece_model(tmp_path_factory), tmp_path_factory.mktemp("peer") / "spm.gguf")
    ours = _core.Tokenizer(_core.GGUFFile(path))
    compare_encode(ours, peer, path)
    compare_decode(ours, peer, path, ours.n_vocab)


def test_overlong_and_surrogate_forms_are_malformed(smollm2_path, peer):
    ours = _core.Tokenizer(smollm2_path)
    fffd = ours.encode("\ufffd", add_special=False)
    for raw in LENIENT_IN_LLAMACPP:
        assert ours.encode(raw, add_special=False) == fffd * len(raw)
    (lenient, *_), _ = peer(smollm2_path, encode=[(b"\xc0\xaf", False, False)])
    assert lenient == ours.encode("/", add_special=False)  # the peer's reading, for the record
