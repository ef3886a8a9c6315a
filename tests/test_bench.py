"""`pyllong bench`: llama-bench's record shape and arithmetic, on a tiny synthetic model.

No timing is asserted (shared machines): only that the fields exist, have llama-bench's types,
are positive, and that the statistics are the ones llama-bench computes from the samples.
The record keys are checked against llama-bench's own JSON when the peer is built."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pyllong import _core, bench
from pyllong import errors as pyllong_errors
from pyllong.models.synthetic import cached_preset

PEER_BENCH = os.path.expanduser(
    "~/.cache/pyllong-peer/llama-cpp-python-0.3.36/src/vendor/llama.cpp/build/bin/llama-bench")


@pytest.fixture(scope="module")
def tiny():
    return cached_preset("tiny-llama-bpe")


@pytest.fixture(scope="module")
def records(tiny):
    return bench.bench(tiny, n_threads=2, n_prompt=[16], n_gen=[4], n_depth=[0, 24], reps=3, generate=True)


def test_one_record_per_test_and_loop(records):
    got = [(r["n_prompt"], r["n_gen"], r["n_depth"], r["loop"]) for r in records]
    assert got == [(16, 0, 0, "eval"), (16, 0, 24, "eval"),
                   (0, 4, 0, "eval"), (0, 4, 0, "native"), (0, 4, 0, "generate"),
                   (0, 4, 24, "eval"), (0, 4, 24, "native"), (0, 4, 24, "generate")]


def test_fields_present_and_positive(records, tiny):
    for r in records:
        assert set(bench.LLAMA_BENCH_FIELDS) <= set(r)
        assert r["model_filename"] == tiny and r["n_threads"] == 2 and r["backends"] == "CPU"
        assert len(r["samples_ns"]) == len(r["samples_ts"]) == 3
        assert all(t > 0 for t in r["samples_ns"]) and r["avg_ns"] > 0 and r["avg_ts"] > 0
        assert r["stddev_ns"] >= 0 and r["stddev_ts"] >= 0
        assert r["peak_rss_bytes"] > 0 and r["kv_bytes"] > 0


def test_statistics_are_llama_benchs(records):
    """ts = 1e9 * (n_prompt + n_gen) / ns per sample; mean and n-1 stddev of each list."""
    for r in records:
        ns = np.array(r["samples_ns"], dtype=np.float64)
        ts = 1e9 * (r["n_prompt"] + r["n_gen"]) / ns
        np.testing.assert_allclose(r["samples_ts"], ts, rtol=1e-4)
        np.testing.assert_allclose(r["avg_ts"], ts.mean(), rtol=1e-5)
        np.testing.assert_allclose(r["stddev_ts"], ts.std(ddof=1), rtol=1e-4, atol=1e-6)
        assert abs(r["avg_ns"] - ns.mean()) <= 1
        assert abs(r["stddev_ns"] - ns.std(ddof=1)) <= 1


def test_mean_stddev_edge_cases():
    assert bench.mean_stddev([]) == (0.0, 0.0)
    assert bench.mean_stddev([5.0]) == (5.0, 0.0)
    m, s = bench.mean_stddev([1.0, 2.0, 4.0])
    assert m == pytest.approx(7 / 3) and s == pytest.approx(np.std([1, 2, 4], ddof=1))


def test_kv_bytes_match_the_cache_geometry(records, tiny):
    """f16 K and V rows of n_head_kv * head_dim per layer and cell, for n_ctx cells."""
    hp = _core.ModelFile(tiny).hparams
    r = records[0]
    per_token = 2 * hp["n_layer"] * hp["n_head_kv"] * hp["head_dim"] * 2
    assert r["n_ctx"] == 16 + 24 and r["kv_bytes"] == per_token * r["n_ctx"]
    assert r["kv_bytes_per_token"] == per_token


def test_depth_leaves_the_cache_at_depth_plus_test(tiny):
    mf = _core.ModelFile(tiny)
    ctx = _core.Context(mf, 64, 1, 512, "f16", None, 0)
    rng = np.random.default_rng(0)
    bench.run_test(ctx, bench.Test(n_gen=3, n_depth=20), 2, int(mf.hparams["n_vocab"]), 512, rng)
    assert ctx.n_past == 23
    bench.run_test(ctx, bench.Test(n_prompt=10, n_depth=5), 2, int(mf.hparams["n_vocab"]), 4, rng)
    assert ctx.n_past == 15


def test_markdown_has_llama_benchs_columns(records):
    text = bench.markdown(records)
    lines = text.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == \
        ["model", "size", "params", "backend", "threads", "test", "t/s"]
    assert "pp16" in text and "tg4 @ d24" in text and "tg4 (generate)" in text and "peak RSS" in text


# The CLI runs outside the source tree: from the repository root, `-m pyllong.cli` would import
# the sources, which have no built module when the package under test is the installed one.
def test_cli_json(tiny, tmp_path):
    out = subprocess.run([sys.executable, "-m", "pyllong.cli", "bench", "-m", tiny, "-t", "1", "-p", "8", "-n", "2",
                          "-r", "1", "--json"], capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    recs = json.loads(out)
    assert isinstance(recs, list) and [(r["n_prompt"], r["n_gen"]) for r in recs] == [(8, 0), (0, 2)]


def test_cli_rejects_bad_counts(tiny, tmp_path):
    p = subprocess.run([sys.executable, "-m", "pyllong.cli", "bench", "-m", tiny, "-p", "x"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert p.returncode == 2 and "token counts" in p.stderr


@pytest.mark.skipif(not os.path.exists(PEER_BENCH), reason="llama.cpp peer not built (../shared/peer/build_llamacpp.sh)")
def test_record_shape_equals_llama_benchs(tiny, records):
    """The keys we claim are exactly the keys of llama-bench's own record, with its JSON types."""
    out = subprocess.run([PEER_BENCH, "-m", tiny, "-t", "1", "-p", "8", "-n", "2", "-r", "1", "-o", "json"],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        pytest.skip(f"llama-bench failed on the synthetic model: {out.stderr[-300:]}")
    peer = json.loads(out.stdout)
    assert [(r["n_prompt"], r["n_gen"]) for r in peer] == [(8, 0), (0, 2)]
    assert set(peer[0]) == set(bench.LLAMA_BENCH_FIELDS)
    ours = records[0]
    for k in bench.LLAMA_BENCH_FIELDS:
        a, b = peer[0][k], ours[k]
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            assert isinstance(b, (int, float)) and not isinstance(b, bool), k
        else:
            assert type(a) is type(b), k


def test_read_bandwidth_is_a_plausible_rate():
    bw = _core.read_bandwidth(64 << 20, 1, reps=2)
    assert 1e8 < bw < 1e13  # between 0.1 GB/s and 10 TB/s: bytes per second, not per ms or ns
    with pytest.raises(pyllong_errors.InvalidArgumentError, match="buffer size"):
        _core.read_bandwidth(1000, 1)


def test_roofline_counts_the_bytes_gguf_says_a_token_reads(tiny, monkeypatch):
    import gguf

    monkeypatch.setattr(bench, "ROOFLINE_BUFFER", 16 << 20)
    recs = bench.bench(tiny, n_threads=1, n_prompt=[8], n_gen=[4], n_depth=[0, 16], reps=1, roofline=True)
    # Independent count from the gguf package's reader: every 2-D tensor but the embedding,
    # which the output head reads when the model has no output.weight.
    r = gguf.GGUFReader(tiny)
    sizes = {t.name: int(t.n_bytes) for t in r.tensors}
    weights = sum(b for t, b in sizes.items() if t != "token_embd.weight" and
                  len([d for d in next(x for x in r.tensors if x.name == t).shape if d > 1]) >= 2)
    if "output.weight" not in sizes:
        weights += sizes["token_embd.weight"]
    tg = [x for x in recs if x["n_gen"]]
    assert [x["n_depth"] for x in tg] == [0, 16] and all("roofline_fraction" not in x for x in recs if x["n_prompt"])
    for x in tg:
        cells = x["n_depth"] + 2.5  # the cells attended, on average over 4 decoded tokens
        assert x["bytes_per_token"] == int(weights + cells * x["kv_bytes_per_token"])
        assert x["roofline_fraction"] == pytest.approx(x["bytes_per_token"] * x["avg_ts"] / x["read_bw_bytes_per_s"])
    assert "GB/s this machine reads with 1 thread(s)" in bench.markdown(recs)


def test_generate_over_native_ratio_is_the_median_of_paired_repetitions():
    """`--generate`'s summary line: each repetition's generate tok/s over the native loop's of
    the same repetition (they ran back to back), then the median of those ratios."""
    from pyllong.bench import loop_ratios

    recs = [
        {"loop": "eval", "n_gen": 8, "n_depth": 0, "samples_ts": [1.0, 1.0, 1.0]},
        {"loop": "native", "n_gen": 8, "n_depth": 0, "samples_ts": [100.0, 200.0, 50.0]},
        {"loop": "generate", "n_gen": 8, "n_depth": 0, "samples_ts": [90.0, 210.0, 48.0]},
        {"loop": "native", "n_gen": 8, "n_depth": 64, "samples_ts": [10.0, 20.0]},
        {"loop": "generate", "n_gen": 8, "n_depth": 64, "samples_ts": [9.0, 21.0]},
    ]
    got = loop_ratios(recs)
    assert [g[0] for g in got] == ["tg8", "tg8 @ d64"]
    assert got[0][1:] == pytest.approx((0.96, 0.9, 1.05))   # ratios 0.9, 1.05, 0.96
    assert got[1][1:] == pytest.approx((0.975, 0.9, 1.05))  # two ratios: their mean
