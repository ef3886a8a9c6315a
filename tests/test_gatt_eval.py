"""tools/gatt_eval.py: the rules, and the pinned / not-pinned bookkeeping on an overflowing chat."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pyllong import Model
from pyllong.models.synthetic import cached_preset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import gatt_eval  # noqa: E402


@pytest.mark.parametrize("rule,reply,ok", [
    ("banana", "Paris is the capital. BANANA", True), ("banana", "Paris. Banana!", True),
    ("banana", "BANANA is a fruit.", False), ("caps", "PARIS IS THE CAPITAL.", True),
    ("caps", "Paris is the capital.", False), ("short", "Paris.", True), ("short", "one two three four five six", False),
    ("short", "", False), ("french", "La capitale de la France est Paris.", True),
    ("french", "The capital of France is Paris.", False), ("french", "Paris.", False)])
def test_rules(rule, reply, ok):
    assert gatt_eval.RULES[rule][1](reply) is ok


def test_pinned_keeps_the_instruction_and_unpinned_loses_it():
    model = Model(cached_preset("tiny-llama-bpe"), n_ctx=128, n_threads=1)
    pinned = gatt_eval.run(model, "caps", True, 6, 6)
    unpinned = gatt_eval.run(model, "caps", False, 6, 6)
    assert pinned[-1]["dropped_turns"] > 0 and unpinned[-1]["dropped_turns"] > 0  # it overflowed
    assert all(r["instruction_in_context"] for r in pinned)
    assert unpinned[0]["instruction_in_context"] and not unpinned[-1]["instruction_in_context"]
    assert all(r["n_past"] <= 128 for r in pinned + unpinned)
