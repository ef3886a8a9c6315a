"""tools/gatt_data.py against a hand-written ChatML rendering (the synthetic model's template)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import pyllong
from pyllong.models.synthetic import cached_preset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import gatt_data  # noqa: E402

DIALOGUE = ["What is rain?", "Water falling.", "And snow?", "Frozen water.", "Hail?", "Ice balls."]
INST = "Answer in French."


def chatml(msgs, gen):
    s = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs)
    return s + ("<|im_start|>assistant\n" if gen else "")


@pytest.fixture(scope="module")
def model():
    return pyllong.Model(cached_preset("tiny-llama-bpe"), n_ctx=512, n_threads=1)


def msgs_of(turns):
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]


def first_inst(turns):
    msgs = msgs_of(turns)
    msgs[0]["content"] = f"{INST} {msgs[0]['content']}"
    return msgs


def test_prompts_and_training_records(model):
    prompts, train = gatt_data.build(model, [msgs_of(DIALOGUE)], [INST])
    assert len(prompts) == len(train) == 3
    for t, (p, r) in enumerate(zip(prompts, train)):
        users = [m["content"] for m in p["messages"] if m["role"] == "user"]
        assert len(users) == t + 1 and all(u.startswith(INST + " ") for u in users)  # every user turn
        want = msgs_of(DIALOGUE[:2 * t + 1])
        for m in want:
            if m["role"] == "user":
                m["content"] = f"{INST} {m['content']}"
        assert p["prompt"] == chatml(want, gen=True)
        # training: the instruction once, in the first user message
        assert r["text"].count(INST) == 1 and r["text"] == chatml(first_inst(DIALOGUE[:2 * t + 2]), gen=False)
        assert len(r["tokens"]) == len(r["loss_mask"])
        learned = [tok for tok, m in zip(r["tokens"], r["loss_mask"]) if m]
        before = [tok for tok, m in zip(r["tokens"], r["loss_mask"]) if not m]
        assert r["loss_mask"] == sorted(r["loss_mask"])  # zeros, then ones: earlier turns carry no loss
        assert model.detokenize(learned, special=True) == DIALOGUE[2 * t + 1] + "<|im_end|>\n"
        assert model.detokenize(before, special=True) == chatml(first_inst(DIALOGUE[:2 * t + 1]), gen=True)


def test_combined_instructions_are_drawn_from_the_list(model):
    inst = ["Be brief.", "Speak like a pirate.", "Use emoji."]
    prompts, _ = gatt_data.build(model, [msgs_of(DIALOGUE)] * 20, inst, combine=2, seed=3)
    drawn = {p["instruction"] for p in prompts}
    assert any(" " in d and d not in inst for d in drawn) and any(d in inst for d in drawn)
    for d in drawn:
        assert all(part in inst for part in d.replace(". ", ".|").split("|"))


def longest(instruction, messages, reply):
    return len(reply)


def test_rejection_sampling_keeps_the_best(model):
    prompts, train = gatt_data.build(model, [msgs_of(DIALOGUE[:4])], [INST], sample=3, scorer=longest,
                                     temperature=1.5, max_tokens=6, seed=1)
    for t, p in enumerate(prompts):
        rs = p["rejection_sampling"]
        assert rs["scores"] == [len(s) for s in rs["samples"]]
        best = rs["samples"][rs["best"]]
        assert rs["scores"][rs["best"]] == max(rs["scores"])
        learned = [tok for tok, m in zip(train[t]["tokens"], train[t]["loss_mask"]) if m]
        assert model.detokenize(learned, special=True) == best + "<|im_end|>\n"
    assert prompts[1]["messages"][1]["content"] == prompts[0]["rejection_sampling"]["samples"][
        prompts[0]["rejection_sampling"]["best"]]  # later turns see the chosen answer


def test_cli_and_input_errors(model, tmp_path, capsys):
    d = tmp_path / "d.jsonl"
    d.write_text(json.dumps({"turns": DIALOGUE}) + "\n" + json.dumps({"messages": msgs_of(DIALOGUE[:2])}) + "\n")
    i = tmp_path / "i.txt"
    i.write_text(INST + "\n")
    out_p, out_t = tmp_path / "p.jsonl", tmp_path / "t.jsonl"
    assert gatt_data.main(["-m", model.path, "--dialogues", str(d), "--instructions", str(i), "--prompts", str(out_p),
                           "--train", str(out_t), "-c", "512", "-t", "1"]) == 0
    assert len(out_p.read_text().splitlines()) == len(out_t.read_text().splitlines()) == 4
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"turns": ["hi"]}) + "\n")
    assert gatt_data.main(["-m", model.path, "--dialogues", str(bad), "--instructions", str(i), "--train",
                           str(out_t), "-c", "512"]) == 2
    assert "at least one user and one assistant" in capsys.readouterr().err
    bad.write_text(json.dumps({"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}))
    with pytest.raises(pyllong.InvalidArgumentError, match="must be a user message"):
        gatt_data.read_dialogues(str(bad))
    with pytest.raises(pyllong.InvalidArgumentError, match="needs a scorer"):
        gatt_data.build(model, [msgs_of(DIALOGUE[:2])], [INST], sample=2)
