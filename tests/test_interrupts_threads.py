"""Interrupts and threads: Ctrl-C during a prefill or a decode leaves the Model usable (its next
results equal a fresh model's); native work releases the GIL; two contexts over one model in
two threads compute exactly what each computes alone; one context shared by two threads is
refused with a typed error instead of racing."""
import _thread
import signal
import threading
import time

import numpy as np
import pytest

import pyllong
from pyllong import _core
from pyllong.errors import InvalidArgumentError
from pyllong.models.synthetic import cached_preset

pytestmark = pytest.mark.skipif(not hasattr(_core, "Context"), reason="native forward pass not built")

N_CTX = 4096
PROMPT = [i % 500 + 1 for i in range(4000)]  # ~0.5 s of prefill on the tiny model


@pytest.fixture(scope="module")
def path():
    return cached_preset("tiny-llama-bpe")


def make(path, **kw):
    kw.setdefault("n_ctx", N_CTX)
    kw.setdefault("n_threads", 1)
    return pyllong.Model(path, **kw)


def interrupt_main(how):
    if how == "pthread_kill":
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    else:
        _thread.interrupt_main()


def interrupt_when(cond, how, timeout=30.0):
    """A timer thread that sends Ctrl-C to the main thread once cond() holds."""
    def run():
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            time.sleep(0.0005)
        interrupt_main(how)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def assert_usable(m, path, prompt):
    """m now gives what a fresh model gives: greedy continuation and next logits."""
    ref = make(path)
    assert m.generate(prompt, max_tokens=8, temperature=0).tokens == ref.generate(prompt, max_tokens=8, temperature=0).tokens
    assert m.cached_tokens == ref.cached_tokens and m.ctx.n_past == m.n_past
    np.testing.assert_allclose(m.eval([7]), ref.eval([7]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("how", ["pthread_kill", "interrupt_main"])
def test_ctrl_c_mid_prefill(path, how):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    m = make(path, n_batch=128)
    t = interrupt_when(lambda: m.n_evaluated >= 128, how)
    with pytest.raises(KeyboardInterrupt):
        m.generate(PROMPT, max_tokens=4, temperature=0)
    t.join()
    # Interrupted between chunks, not after the whole prompt.
    assert 128 <= m.ctx.n_past < len(PROMPT)
    assert_usable(m, path, PROMPT[:300])
    # The part of the prompt that made it into the cache is reused, not evaluated again.
    m2 = make(path, n_batch=128)
    t = interrupt_when(lambda: m2.n_evaluated >= 512, how)
    with pytest.raises(KeyboardInterrupt):
        m2.eval(PROMPT)
    t.join()
    done = m2.n_evaluated
    before = m2.n_past
    logits = m2.eval(PROMPT[before:] + [9], logits_all=False)
    assert m2.n_evaluated == done + len(PROMPT) - before + 1
    np.testing.assert_allclose(logits, make(path).eval(PROMPT + [9], logits_all=False), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("how", ["pthread_kill", "interrupt_main"])
def test_ctrl_c_mid_decode(path, how):
    m = make(path)
    ban = {t: -np.inf for t in m.eog_ids}  # never stop on its own
    prompt = PROMPT[:20]
    s = m.generate(prompt, max_tokens=N_CTX - 100, temperature=1.0, seed=3, logit_bias=ban, stream=True)
    t = interrupt_when(lambda: m.n_evaluated >= 20 + 50, how)
    with pytest.raises(KeyboardInterrupt):
        for _ in s:
            pass
    t.join()
    assert s.result.finish_reason == "interrupted"
    assert 50 <= len(s.result.tokens) < N_CTX - 100
    assert_usable(m, path, prompt)


def test_ctrl_c_during_context_shift_leaves_a_consistent_model(path):
    # The mirror and the cache are updated in two steps; an interrupt between them must not
    # leave a mirror that is not what the cache holds.
    m = make(path, n_ctx=64, context_shift=True)
    m.eval(PROMPT[:60])
    m._mirror_valid = False  # what an interrupt between ctx.shift and the mirror update leaves
    assert_usable(m, path, PROMPT[:30])


def test_native_eval_releases_the_gil(path):
    ctx = _core.Context(_core.ModelFile(path), N_CTX, 1, N_CTX, "f16", None)
    ticks, stop = [], threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)
    th = threading.Thread(target=tick)
    th.start()
    time.sleep(0.01)
    t0 = time.perf_counter()
    ctx.eval(np.array(PROMPT, np.int32))  # one native call, no Python inside
    t1 = time.perf_counter()
    stop.set()
    th.join()
    inside = [t for t in ticks if t0 < t < t1]
    assert t1 - t0 > 0.1, "the eval was too short to tell"
    # With the GIL held the ticker could not run at all during the call.
    assert len(inside) >= 0.2 * (t1 - t0) / 0.001, (len(inside), t1 - t0)


def run_alone(model_file, prompt, n_decode=16):
    ctx = _core.Context(model_file, 1024, 1, 256, "f16", None)
    out = [ctx.eval(np.array(prompt, np.int32), False)]
    tok = int(np.argmax(out[-1]))
    for _ in range(n_decode):
        out.append(ctx.eval(np.array([tok], np.int32), False))
        tok = int(np.argmax(out[-1]))
    return np.concatenate(out)


def test_two_contexts_over_one_model_in_two_threads(path):
    mf = _core.ModelFile(path)
    prompts = [PROMPT[:900], PROMPT[1000:1700]]
    alone = [run_alone(mf, p) for p in prompts]
    results = [None, None]
    errors = []

    def worker(i):
        try:
            results[i] = run_alone(mf, prompts[i])
        except BaseException as e:  # surfaced below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, want in zip(results, alone):
        assert np.array_equal(got, want)


def test_two_models_over_one_file_in_two_threads(path):
    kw = dict(max_tokens=24, temperature=0.9, seed=11)
    prompts = ["The quick brown fox", "Once upon a time there"]
    alone = [make(path, n_ctx=256).generate(p, **kw).tokens for p in prompts]
    models = [make(path, n_ctx=256) for _ in prompts]
    results = [None, None]

    def worker(i):
        for _ in range(3):
            results[i] = models[i].generate(prompts[i], **kw).tokens
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == alone


def test_one_context_in_two_threads_is_refused(path):
    ctx = _core.Context(_core.ModelFile(path), N_CTX, 1, N_CTX, "f16", None)
    done = threading.Event()

    def long_eval():
        while True:
            try:
                ctx.eval(np.array(PROMPT, np.int32))
                break
            except InvalidArgumentError:  # the main thread's no-op held the context: try again
                time.sleep(0.001)
        done.set()
    th = threading.Thread(target=long_eval)
    th.start()
    refused = None
    while not done.is_set() and refused is None:
        try:
            ctx.truncate(ctx.n_past)  # a no-op that needs the context to itself
        except InvalidArgumentError as e:
            refused = e
        time.sleep(0.001)
    th.join()
    assert refused is not None and "in use by another thread" in str(refused)
    assert ctx.n_past == len(PROMPT)  # the long eval itself was not disturbed
