"""Runtime inputs (hardening items 26-29): every bad id, keep/discard, SelfExtend parameter,
n_ctx and prompt length is a typed pyllong error with a message that says what to do — from
the Python API, from the native Context directly, and from pyllong-chat (one line on stderr,
a non-zero exit, never a signal)."""
import os
import re
import subprocess

import numpy as np
import pytest

import pyllong
from pyllong import _core
from pyllong.errors import ContextOverflowError, InvalidArgumentError, OutOfMemoryError
from pyllong.models.synthetic import cached_preset

from test_pyllong_chat import assert_one_line_error

pytestmark = pytest.mark.skipif(not hasattr(_core, "Context"), reason="native forward pass not built")


@pytest.fixture(scope="module")
def path():
    return cached_preset("tiny-llama-bpe")


@pytest.fixture(scope="module")
def model(path):
    return pyllong.Model(path, n_ctx=32, n_threads=1)


def fresh(model):
    model.reset()
    return model


# ---- 26: token ids ---------------------------------------------------------------------------

BAD_IDS = [-1, 512, 2**31, 2**32 + 5, -2**63]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_out_of_range_ids_everywhere(model, bad):
    m = fresh(model)
    m.eval([1, 2])
    for call in (lambda: m.eval([3, bad]), lambda: m.generate([1, bad], max_tokens=1),
                 lambda: m.detokenize([bad]), lambda: m.token_to_bytes(bad),
                 lambda: m.generate("hi", max_tokens=1, logit_bias={bad: 1.0})):
        with pytest.raises(InvalidArgumentError, match="outside|not a token id|must be"):
            call()
    assert m.n_past == 2 and m.ctx.n_past == 2  # nothing was evaluated


@pytest.mark.parametrize("tokens", [[2**32 + 5], np.array([2**32 + 5]), np.array([-1], np.int8),
                                    np.array([2**64 - 1], np.uint64), np.array([512], np.uint16)])
def test_native_eval_checks_ids_before_narrowing(model, tokens):
    # 2**32 + 5 must not wrap to the valid id 5 on its way to int32.
    ctx = fresh(model).ctx
    with pytest.raises(InvalidArgumentError, match="outside the vocabulary"):
        ctx.eval(tokens)
    assert ctx.n_past == 0


@pytest.mark.parametrize("tokens", [np.array([1.5, 2.0]), ["a"], np.zeros((1, 2), np.int32), [2**70]])
def test_native_eval_refuses_non_ids(model, tokens):
    with pytest.raises(InvalidArgumentError, match="ids"):
        fresh(model).ctx.eval(tokens)


# ---- 27: keep / discard ------------------------------------------------------------------------

@pytest.mark.parametrize("keep, discard", [(-1, 1), (0, -1), (2, -5), (9, 0), (3, 4), (-2**62, 2**62)])
def test_shift_refuses_bad_keep_and_discard(model, keep, discard):
    ctx = fresh(model).ctx
    ctx.eval([1, 2, 3, 4, 5, 6])
    with pytest.raises(InvalidArgumentError, match="n_keep .* n_discard"):
        ctx.shift(keep, discard)
    assert ctx.n_past == 6


@pytest.mark.parametrize("n", [-1, 7, 2**40])
def test_truncate_refuses_out_of_range(model, n):
    ctx = fresh(model).ctx
    ctx.eval([1, 2, 3, 4, 5, 6])
    with pytest.raises(InvalidArgumentError, match="n_keep"):
        ctx.truncate(n)
    assert ctx.n_past == 6


@pytest.mark.parametrize("n_keep", [-2, 32, 10**6, 1.5, True])
def test_model_n_keep_range(path, n_keep):
    with pytest.raises(InvalidArgumentError, match="n_keep"):
        pyllong.Model(path, n_ctx=32, n_keep=n_keep, n_threads=1)


# ---- 28: SelfExtend ----------------------------------------------------------------------------

@pytest.mark.parametrize("se, match", [((0, 4), "G and W must be >= 1"), ((2, 0), ">= 1"), ((-2, 4), ">= 1"),
                                       ((2, 3), "multiple"), ((4, 256), "below the training context"),
                                       ((4, 1024), "below the training context"), ((2,), "pair"), ("ab", "pair"),
                                       ((2, "x"), "pair")])
def test_self_extend_parameters(path, se, match):
    with pytest.raises(InvalidArgumentError, match=match):
        pyllong.Model(path, n_ctx=64, self_extend=se, n_threads=1)


@pytest.mark.parametrize("se, match", [((0, 4), "group size G must be >= 1"), ((2, -4), "window W must be >= 1"),
                                       ((3, 4), "multiple of the group size")])
def test_native_self_extend_parameters(path, se, match):
    with pytest.raises(InvalidArgumentError, match=match):
        _core.Context(_core.ModelFile(path), 64, 1, 512, "f16", se)


# ---- 29: n_ctx -------------------------------------------------------------------------------

@pytest.mark.parametrize("n_ctx", [0, -1, 2**24 + 1, 2**63, 1.0, "4k"])
def test_n_ctx_out_of_range(path, n_ctx):
    with pytest.raises(InvalidArgumentError, match="n_ctx"):
        pyllong.Model(path, n_ctx=n_ctx, n_threads=1)


@pytest.mark.parametrize("n_ctx", [0, -5, 2**24 + 1])
def test_native_n_ctx_out_of_range(path, n_ctx):
    with pytest.raises(InvalidArgumentError, match="n_ctx must be between 1 and"):
        _core.Context(_core.ModelFile(path), n_ctx, 1, 512, "f16", None)


def test_n_ctx_one_works_and_overflows_cleanly(path):
    m = pyllong.Model(path, n_ctx=1, n_threads=1)
    assert m.eval([m.bos]).shape == (1, 512)
    with pytest.raises(ContextOverflowError, match="n_ctx"):
        m.eval([5])
    with pytest.raises(ContextOverflowError, match="context holds 1"):
        m.generate("hello world", max_tokens=1)
    out = m.generate([m.bos], max_tokens=1, temperature=0)  # exactly fills the context
    assert len(out.tokens) + (out.stop_token is not None) == 1


def kv_bytes(n_layer, n_ctx, kv_dim, planes=2, bytes_per=2):
    """Independent of the C++: K and V (f16) for every layer and cell."""
    return n_layer * n_ctx * kv_dim * bytes_per * planes


def needed(msg):
    return int(re.search(r"needs (\d+) bytes", msg).group(1))


def test_n_ctx_beyond_memory_says_how_many_bytes(path, monkeypatch):
    hp = _core.ModelFile(path).hparams
    kv_dim = hp["n_head_kv"] * hp["head_dim"]
    need_kv = kv_bytes(hp["n_layer"], 4096, kv_dim)
    monkeypatch.setenv("PYLLONG_MEMORY_LIMIT", str(need_kv // 2))
    with pytest.raises(OutOfMemoryError, match=r"n_ctx 4096 needs \d+ bytes .* available \(\$PYLLONG_MEMORY_LIMIT\); use a smaller n_ctx") as e:
        pyllong.Model(path, n_ctx=4096, n_threads=1)
    assert need_kv <= needed(str(e.value)) < need_kv + (8 << 20)  # the cache plus a few MB of scratch
    assert isinstance(e.value, MemoryError)
    monkeypatch.setenv("PYLLONG_MEMORY_LIMIT", str(need_kv + (8 << 20)))
    pyllong.Model(path, n_ctx=4096, n_threads=1).eval([1])  # fits: works


def test_absurd_n_ctx_on_a_real_model(smollm2_path):
    # SmolLM2-135M: 30 layers, 3 KV heads of 64: 2**24 cells need ~360 GiB of cache.
    need_kv = kv_bytes(30, 2**24, 192)
    with pytest.raises(OutOfMemoryError) as e:
        pyllong.Model(smollm2_path, n_ctx=2**24, n_threads=1)
    assert need_kv + 4 * 2**24 <= needed(str(e.value)) < need_kv + 4 * 2**24 + (32 << 20)  # + positions, scratch
    assert "GiB" in str(e.value)


# ---- empty prompts, prompts at the limit ------------------------------------------------------

def test_empty_prompts(model):
    m = fresh(model)
    for p in ([], (), np.array([], np.int32)):
        with pytest.raises(InvalidArgumentError, match="empty"):
            m.generate(p, max_tokens=1)
    with pytest.raises(InvalidArgumentError, match="at least one token"):
        m.eval([])
    with pytest.raises(InvalidArgumentError, match="at least one token"):
        m.ctx.eval([])
    # "" has no tokens in this vocabulary (no BOS added): the same clear error.
    assert m.tokenize("") == []
    with pytest.raises(InvalidArgumentError, match="prompt is empty"):
        m.generate("", max_tokens=1)
    assert m.n_past == 0


def test_prompt_exactly_at_the_context_limit(path):
    m = pyllong.Model(path, n_ctx=16, n_threads=1)
    prompt = list(range(10, 26))  # 16 ids: fills the context
    out = m.generate(prompt, max_tokens=1, temperature=0)  # the one token needs no forward pass
    assert m.n_past == 16
    ref = pyllong.Model(path, n_ctx=16, n_threads=1).eval(prompt)[-1]
    assert (out.tokens or [out.stop_token])[0] == int(np.argmax(ref))
    with pytest.raises(ContextOverflowError, match="use a larger n_ctx"):
        m.generate(prompt, max_tokens=2, temperature=0)
    with pytest.raises(ContextOverflowError, match="prompt has 17 tokens but the context holds 16"):
        m.generate(prompt + [5], max_tokens=1)
    shifting = pyllong.Model(path, n_ctx=16, n_threads=1, context_shift=True)
    assert len(shifting.generate(prompt, max_tokens=5, temperature=0, stop=None).tokens) <= 5


# ---- pyllong-chat: the same inputs, one clear line ------------------------------------------

@pytest.mark.parametrize("args, code, match", [
    (["-c", "0"], 2, "-c must be in"), (["-c", "99999999"], 2, "-c must be in"),
    (["--self-extend", "2,3"], 2, "multiple of the group size"), (["--self-extend", "0,4"], 2, "--self-extend"),
    (["--self-extend", "4,256"], 1, "below the training context"),
    (["-c", "2"], 1, "the context holds 2"),
])
def test_chat_binary_messages(chat_bin, path, args, code, match):  # noqa: F811
    res = subprocess.run([chat_bin, "-m", path, "-p", "hello there", "-n", "4", *args], capture_output=True, timeout=120)
    assert_one_line_error(res, code)
    assert re.search(match, res.stderr.decode()), res.stderr


def test_chat_binary_out_of_memory(chat_bin, path):  # noqa: F811
    env = dict(os.environ, PYLLONG_MEMORY_LIMIT="1000")
    res = subprocess.run([chat_bin, "-m", path, "-p", "hi", "-n", "4"], capture_output=True, timeout=120, env=env)
    assert_one_line_error(res, 1)
    assert re.search(r"needs \d+ bytes .* only 1000 bytes", res.stderr.decode()), res.stderr
