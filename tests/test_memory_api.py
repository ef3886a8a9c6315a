"""pyllong.Memory: documents, conversations, snapshot/fork, save/load, cap, errors; checked
against the float64 fot oracle (tests/reference/fot.py) and against each other."""
from __future__ import annotations

import os

import numpy as np
import pytest

import pyllong
from pyllong import Memory, MemoryFileError
from pyllong.models import synthetic as syn
from reference.fot import FotOracle

TINY = syn.preset_params("tiny-llama-bpe")


@pytest.fixture(scope="module")
def path():
    return syn.cached_model(**TINY)


def _model(path, **mem):
    opts = dict(layers=[0, 1], window=16, last_context_length=8)
    opts.update(mem)
    return pyllong.Model(path, memory=Memory(**opts), n_threads=2, seed=0)


def _doc(n, seed=1):
    return np.random.default_rng(seed).integers(0, 512, n).tolist()


def _close(got, ref, tol=2e-3):
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err < tol, f"relative error {err:.2e}"


def test_add_document_then_question_matches_oracle(path):
    model = _model(path)
    doc, question = _doc(45), _doc(12, seed=2)
    assert model.memory.add_document(doc) == 45
    ref = FotOracle(path, [0, 1], 16, 8)
    for s in range(0, 45, 16):  # a document: chunks of W, each attending to itself + memory, then memory
        ref._forward(doc[s:s + 16])
        ref.flush()
    assert model.memory.tokens == ref.memory_len == 45 and model.ctx.n_past == 0
    _close(model.eval(question), ref.eval(question))
    # a question longer than the window: chunked, and the document still counts
    model.reset()
    ref2 = FotOracle(path, [0, 1], 16, 8)
    for s in range(0, 45, 16):
        ref2._forward(doc[s:s + 16])
        ref2.flush()
    long_q = _doc(40, seed=3)
    _close(model.eval(long_q), ref2.eval(long_q))
    assert model.memory.stats()["tokens"] == ref2.memory_len


def test_each_question_starts_from_the_documents(path):
    model = _model(path)
    model.memory.add_document(_doc(40))
    q1, q2 = _doc(10, seed=4), _doc(30, seed=5)
    first = model.eval(q1)
    model.generate(q2, max_tokens=5, temperature=0)           # a longer conversation, flushed into memory
    assert model.memory.tokens > 40
    model.reset()
    assert model.memory.tokens == 40 and model.n_past == 0    # back to the document only
    np.testing.assert_array_equal(model.eval(q1), first)
    assert model.memory.tokens == 40 + (10 - 8)                # q1's first 2 tokens went to memory, 8 stay local


def test_continuing_a_conversation_evaluates_only_new_tokens(path):
    model = _model(path)
    model.memory.add_document(_doc(20))
    out = model.generate(_doc(6, seed=6), max_tokens=4, temperature=0)
    before = model.n_evaluated
    model.generate(_doc(6, seed=6) + out.tokens + [7, 8], max_tokens=1, temperature=0)
    assert len(out.tokens) == 4
    # cached: 6 prompt tokens + 3 generated (the last one was never fed back); new: 1 + 2
    assert model.n_evaluated - before == 3


def test_snapshot_fork_and_restore(path):
    model = _model(path)
    model.memory.add_document(_doc(50))
    q = _doc(9, seed=7)
    want = model.eval(q)
    snap = model.memory.snapshot()
    assert snap.tokens == 50
    fork = pyllong.Model(path, memory=snap, n_threads=2)
    np.testing.assert_array_equal(fork.eval(q), want)
    model.memory.add_document(_doc(30, seed=8))               # another document changes the answer
    assert model.memory.tokens == 80
    model.reset()
    assert np.abs(model.eval(q) - want).max() > 1e-3
    model.memory.restore(snap)
    assert model.memory.tokens == 50
    np.testing.assert_array_equal(model.eval(q), want)
    with pytest.raises(pyllong.InvalidArgumentError, match="already belongs"):
        pyllong.Model(path, memory=model.memory)
    other_weights = syn.cached_model(**syn.preset_params("tiny-llama-bpe", seed=5))
    with pytest.raises(MemoryFileError, match="another model"):  # a fork is checked like a file
        pyllong.Model(other_weights, memory=model.memory.snapshot(), n_threads=1)


def test_save_load_identical_logits(path, tmp_path):
    model = _model(path, mode="knn", k=5)
    model.memory.add_document(_doc(60))
    q = _doc(10, seed=9)
    want = model.eval(q)
    f = tmp_path / "doc.pmem"
    model.memory.save(f)
    assert sorted(os.listdir(tmp_path)) == ["doc.pmem"]  # no temporary file left
    loaded = Memory.load(f)
    assert (loaded.layers, loaded.mode, loaded.k, loaded.window, loaded.tokens) == ([0, 1], "knn", 5, 16, 60)
    other = pyllong.Model(path, memory=loaded, n_threads=1)
    # 60 tokens x (key + value) x f16 x kv_dim 32
    assert other.memory.stats()["bytes_per_layer"] == {0: 60 * 2 * 2 * 32, 1: 60 * 2 * 2 * 32}
    np.testing.assert_array_equal(other.eval(q), want)


def test_save_is_atomic(path, tmp_path, monkeypatch):
    model = _model(path)
    model.memory.add_document(_doc(20))
    f = tmp_path / "m.pmem"
    model.memory.save(f)
    good = f.read_bytes()
    model.memory.add_document(_doc(40, seed=3))

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        model.memory.save(f)
    assert f.read_bytes() == good and sorted(os.listdir(tmp_path)) == ["m.pmem"]


def test_bad_files_give_clear_errors(path, tmp_path):
    model = _model(path)
    model.memory.add_document(_doc(20))
    f = tmp_path / "m.pmem"
    model.memory.save(f)
    data = f.read_bytes()
    cases = {"flip": data[:200] + bytes([data[200] ^ 1]) + data[201:], "cut": data[:-100],
             "magic": b"NOTAMEM!" + data[8:]}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(MemoryFileError, match="corrupted or truncated"):
        Memory.load(tmp_path / "flip")
    with pytest.raises(MemoryFileError, match="corrupted or truncated"):
        Memory.load(tmp_path / "cut")
    with pytest.raises(MemoryFileError, match="not a pyllong memory file"):
        Memory.load(tmp_path / "magic")
    with pytest.raises(MemoryFileError, match="cannot read"):
        Memory.load(tmp_path / "missing")
    same_shape = syn.cached_model(**syn.preset_params("tiny-llama-bpe", seed=5))
    with pytest.raises(MemoryFileError, match="another model"):
        pyllong.Model(same_shape, memory=Memory.load(f), n_threads=1)
    other_shape = syn.cached_model(**syn.preset_params("tiny-llama-bpe", n_head_kv=4))
    with pytest.raises(MemoryFileError, match="made for a model with"):
        pyllong.Model(other_shape, memory=Memory.load(f), n_threads=1)


def test_cap_evicts_oldest_first(path):
    full, capped = _model(path), _model(path, cap=20)
    doc = _doc(50)
    full.memory.add_document(doc)
    capped.memory.add_document(doc)
    st = capped.memory.stats()
    assert st["tokens"] == 20 and st["evicted"] == 30
    # Layer 0's keys and values depend on the token only (not on what memory held when it was
    # read), so the kept rows must be exactly the last 20 tokens' rows.
    fk, fv = full.ctx.memory.export(0)
    ck, cv = capped.ctx.memory.export(0)
    np.testing.assert_array_equal(ck, fk[-20:])
    np.testing.assert_array_equal(cv, fv[-20:])
    q = _doc(30, seed=2)                       # the conversation evicts more; reset brings the document back
    capped.eval(q)
    capped.reset()
    np.testing.assert_array_equal(capped.ctx.memory.export(0)[0], full.ctx.memory.export(0)[0][-20:])


def test_knn_with_large_k_equals_fot_through_the_api(path):
    doc, q = _doc(60), _doc(20, seed=3)
    fot, knn = _model(path), _model(path, mode="knn", k=10_000)
    fot.memory.add_document(doc)
    knn.memory.add_document(doc)
    _close(knn.eval(q), fot.eval(q), 1e-5)


def test_memory_true_defaults_and_option_errors(path):
    model = pyllong.Model(path, memory=True, n_threads=1)
    st = model.memory.stats()
    assert st["layers"] == [0, 1] and st["window"] == model.n_ctx == 256 and st["last_context_length"] == 128
    out = model.generate(_doc(600), max_tokens=3, temperature=0)   # longer than the window: no overflow
    assert out.prompt_tokens == 600 and model.memory.tokens > 0
    for bad, frag in [(dict(mode="dense"), "mode"), (dict(k=0), "k must be"), (dict(dtype="f32"), "dtype"),
                      (dict(layers=[]), "layers is empty"), (dict(cap=-1), "cap")]:
        with pytest.raises(pyllong.InvalidArgumentError, match=frag):
            Memory(**bad)
    with pytest.raises(pyllong.InvalidArgumentError, match="outside this model's layers"):
        pyllong.Model(path, memory=Memory(layers=[5]))
    with pytest.raises(pyllong.InvalidArgumentError, match="self_extend"):
        pyllong.Model(path, memory=True, self_extend=(2, 8))
    with pytest.raises(pyllong.InvalidArgumentError, match="attached"):
        Memory().add_document("text")


def test_cli_memory_doc_save_load(path, tmp_path, capsys):
    from pyllong.cli import main

    doc, saved = tmp_path / "doc.txt", tmp_path / "doc.pmem"
    doc.write_text("the quick brown fox jumps over the lazy dog. " * 30, encoding="utf-8")
    common = ["generate", "-m", path, "-c", "32", "-t", "1", "-p", "question:", "-n", "6", "--temp", "0", "--no-stream"]
    assert main(common + ["--memory-layers", "0,1", "--memory-doc", str(doc), "--memory-save", str(saved)]) == 0
    first = capsys.readouterr()
    assert "[memory: read" in first.err and saved.exists()
    assert main(common + ["--memory-load", str(saved)]) == 0
    assert capsys.readouterr().out == first.out          # the loaded memory answers alike
    assert main(common) == 0                             # without the memory: another answer
    assert capsys.readouterr().out != first.out
    saved.write_bytes(saved.read_bytes()[:-1])
    assert main(common + ["--memory-load", str(saved)]) == 1
    assert "corrupted or truncated" in capsys.readouterr().err


def test_memory_options_from_gguf_metadata():
    meta = {"llama.memory.layers": [1], "llama.memory.window": 24, "llama.memory.last_context_length": 6}
    p = syn.cached_model(**TINY, extra_metadata=meta)
    st = pyllong.Model(p, memory=True, n_threads=1).memory.stats()
    assert (st["layers"], st["window"], st["last_context_length"]) == ([1], 24, 6)
    st = pyllong.Model(p, memory=Memory(layers=[0], window=16), n_threads=1).memory.stats()
    assert (st["layers"], st["window"], st["last_context_length"]) == ([0], 16, 6)  # the caller's options win


def _restamp(blob: bytes) -> bytes:
    import hashlib
    return blob[:-32] + hashlib.sha256(blob[:-32]).digest()


def test_forged_memory_files_are_refused(path, tmp_path):
    # Checklist item 32: a file with a valid checksum but mismatched dimensions or lengths
    # (a forger can compute the checksum) must give a pyllong error, never another exception.
    import json
    import random

    model = _model(path)
    model.memory.add_document(_doc(20))
    f = tmp_path / "m.pmem"
    model.memory.save(f)
    data = f.read_bytes()
    from pyllong.memory import _HEAD as head  # magic, version, header length
    _, version, hlen = head.unpack_from(data)
    header = json.loads(data[head.size:head.size + hlen])
    payload = data[head.size + hlen:-32]
    edits = [("tokens", -1), ("tokens", 10**12), ("tokens", 21), ("layers", []), ("layers", [-1]), ("layers", [0, 99]),
             ("layers", "x"), ("dims", {"n_head_kv": 0, "head_dim": 16}), ("dims", {"n_head_kv": -2, "head_dim": -16}),
             ("dims", {"n_head_kv": 2, "head_dim": 8}), ("k", -5), ("window", 0), ("mode", "nope"), ("cap", -1)]
    rng = random.Random(32)
    blobs = []
    for key, value in edits:
        h = dict(header, **{key: value})
        hj = json.dumps(h).encode()
        blobs.append(_restamp(head.pack(data[:8], version, len(hj)) + hj + payload + bytes(32)))
    for _ in range(200):  # random byte edits inside the header and payload, checksum re-stamped
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(8, len(b) - 32)] = rng.randrange(256)
        blobs.append(_restamp(bytes(b)))
    for i, blob in enumerate(blobs):
        g = tmp_path / f"forged{i}"
        g.write_bytes(blob)
        try:
            loaded = Memory.load(g)
            other = pyllong.Model(path, memory=loaded, n_threads=1)
            other.eval(_doc(4, seed=i))  # accepted: must then work
        except pyllong.Error:
            pass
