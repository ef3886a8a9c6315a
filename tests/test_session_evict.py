"""Pinned system prompt and turn-boundary eviction (../shared/spec/ghost-attention.md): the
cut's arithmetic against a brute-force reference, the native shift's refusals, and a 30-turn
chat that overflows a small context many times."""
from __future__ import annotations

import numpy as np
import pytest

import pyllong
from pyllong import ChatSession, Model
from pyllong.models.synthetic import cached_preset
from pyllong.session import check_eviction, plan_eviction


def valid_cut(cached, new, k, d, n_pinned):
    rest = cached[:k] + cached[k + d:]
    return k >= n_pinned and d >= 1 and k + d <= len(cached) and len(rest) < len(new) and new[:len(rest)] == rest


def test_plan_matches_brute_force():
    rng = np.random.default_rng(0)
    found = 0
    for _ in range(400):
        n = int(rng.integers(1, 14))
        cached = rng.integers(0, 3, n).tolist()
        if rng.random() < 0.6:  # a real eviction: cut a span, append new text
            k, d = int(rng.integers(0, n)), int(rng.integers(1, n + 1))
            new = cached[:k] + cached[k + d:] + rng.integers(0, 3, int(rng.integers(1, 4))).tolist()
        else:
            new = rng.integers(0, 3, int(rng.integers(1, 14))).tolist()
        n_pinned = int(rng.integers(0, 3))
        plan = plan_eviction(cached, new, n_pinned)
        lcp = next((i for i, (a, b) in enumerate(zip(cached, new)) if a != b), min(len(cached), len(new)))
        brute = [(lcp, d) for d in range(1, len(cached) - lcp + 1) if valid_cut(cached, new, lcp, d, n_pinned)]
        if plan is None:
            assert brute == [], (cached, new, n_pinned)
        else:
            found += 1
            assert valid_cut(cached, new, *plan, n_pinned) and plan == brute[0]
    assert found > 50


def test_pinned_tokens_are_never_cut():
    cached = [1, 2, 3, 4, 5, 6]
    assert plan_eviction(cached, [1, 2, 5, 6, 7], 2) == (2, 2)
    assert plan_eviction(cached, [1, 9, 9], 2) is None  # would cut into the pinned part


@pytest.mark.parametrize("k,d,n,pinned", [(-1, 2, 10, 0), (2, 0, 10, 0), (2, -3, 10, 0), (5, 6, 10, 0), (1, 2, 10, 2)])
def test_check_eviction_refuses_bad_arithmetic(k, d, n, pinned):
    with pytest.raises(pyllong.Error, match="out of range"):
        check_eviction(k, d, n, pinned)


@pytest.fixture(scope="module")
def path():
    return cached_preset("tiny-llama-bpe")


def test_model_evict_and_native_shift_refuse_bad_counts(path):
    m = Model(path, n_ctx=64, n_threads=1)
    m.eval(list(range(5, 25)))
    for k, d in ((-1, 2), (2, -1), (15, 6), (21, 0)):
        with pytest.raises(pyllong.InvalidArgumentError):
            m.evict(k, d)
        with pytest.raises(pyllong.InvalidArgumentError, match="context shift"):
            m.ctx.shift(k, d if d else 1)
    assert m.n_past == 20 and m.ctx.n_past == 20
    m.evict(3, 5)
    assert m.cached_tokens == list(range(5, 8)) + list(range(13, 25)) and m.ctx.n_past == 15


def _chat(path, evict, turns=30):
    m = Model(path, n_ctx=96, n_threads=1)
    s = ChatSession(m, system="SYS", max_tokens=6, evict=evict)
    im_end = m.tokenize("<|im_end|>", False, True)[0]
    sys_tokens = m.tokenize_chat(m.render_chat([{"role": "system", "content": "SYS"}], add_generation_prompt=False))
    replies = []
    for i in range(turns):
        n = 2 + i % 3

        def end_after(ids, scores, state={}):  # noqa: B006 - per-turn state
            state.setdefault("start", len(ids))
            out = np.full_like(scores, -np.inf) if len(ids) - state["start"] >= n else scores.copy()
            if len(ids) - state["start"] >= n:
                out[im_end] = 0.0
            else:
                out[list(m.eog_ids)] = -np.inf
            return out
        r = s.send(f"message {i} has words", temperature=0, repeat_penalty=1.0, logits_processor=[end_after])
        replies.append(str(r))
        assert m.cached_tokens[:len(sys_tokens)] == sys_tokens, f"turn {i}: the system prompt left the cache"
        assert m.n_past <= m.n_ctx
        # the cache spells exactly the conversation as the template renders it now
        assert m.detokenize(m.cached_tokens, special=True) == m.render_chat(s.messages[:-1]) + str(r)
    return m, s, replies


def test_thirty_turns_shift_pins_system_and_evaluates_less(path):
    m_shift, s_shift, _ = _chat(path, "shift")
    m_re, s_re, _ = _chat(path, "rebuild")
    assert s_shift.dropped_turns == s_re.dropped_turns >= 10
    assert s_shift.shifted_tokens > 0 and s_re.shifted_tokens == 0
    assert s_shift.messages[0] == {"role": "system", "content": "SYS"}
    assert m_shift.n_evaluated < m_re.n_evaluated


def test_evict_option_is_checked(path):
    m = Model(path, n_ctx=96, n_threads=1)
    with pytest.raises(pyllong.InvalidArgumentError, match="evict must be"):
        ChatSession(m, evict="drop")


def test_pyllong_chat_evict_shift_matches_python(smollm2_path, chat_bin):
    """pyllong-chat --evict shift against ChatSession(evict="shift"), greedy, over a chat that overflows."""
    import json
    import subprocess

    msgs = ["Tell me about the moon.", "And the sun?", "What about Mars?", "And Jupiter?", "Thanks, bye!"]
    s = ChatSession(Model(smollm2_path, n_ctx=160, n_threads=2), system="You are an astronomer.", max_tokens=24,
                    evict="shift", temperature=0)
    expected = [str(s.send(m)) for m in msgs]
    assert s.dropped_turns > 0 and s.shifted_tokens > 0, "the test must actually shift the cache"
    res = subprocess.run([str(chat_bin), "-m", smollm2_path, "-c", "160", "-n", "24", "--temp", "0", "-t", "2",
                          "--system", "You are an astronomer.", "--evict", "shift", "--json"],
                         input=("\n".join(msgs) + "\n").encode(), capture_output=True, timeout=600)
    assert res.returncode == 0, res.stderr.decode()
    doc = json.loads(res.stdout)
    assert [m["content"] for m in doc["messages"][1::2]] == expected
    assert doc["dropped_turns"] == s.dropped_turns and doc["system"] == "You are an astronomer."
    bad = subprocess.run([str(chat_bin), "--evict", "drop"], capture_output=True, timeout=60)
    assert bad.returncode != 0 and b"rebuild or shift" in bad.stderr
