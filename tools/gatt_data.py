"""Ghost Attention (GAtt) data builder (Llama 2 §3.3; ../shared/spec/ghost-attention.md).

In: dialogues (JSONL, one per line: {"messages": [{"role": "user"|"assistant", "content": ...}, ...]}
or {"turns": [u1, a1, u2, a2, ...]}) and instructions (text, one per line). Out, rendered with
the model's own chat template (pyllong/chat_template.py through pyllong.Model.render_chat):

* --prompts FILE: sampling prompts, the instruction concatenated to EVERY user message, one
  record per assistant turn ({"id", "turn", "instruction", "messages", "prompt"}): what to
  sample the answers from so that they obey the instruction.
* --train FILE: training records, the instruction in the FIRST user message only, one record
  per assistant turn ({"id", "turn", "instruction", "text", "tokens", "loss_mask"}): the
  dialogue up to and including that answer, with loss_mask 1 on the last answer's tokens (and
  the template's end-of-turn marker after it) and 0 on everything before (earlier turns).
* --sample K --scorer MODULE:FUNCTION: rejection sampling through pyllong. Each assistant turn
  is replaced by the best of K samples (temperature --temp) from its sampling prompt, earlier
  turns being the answers already chosen; scorer(instruction, messages, reply) -> float, higher
  is better. The samples and scores are kept in the prompt records.

Instructions are combined at random (--combine N: 1..N of them joined by a space, as Llama 2
combines personas, languages and hobbies); --seed fixes the draws. See docs/gatt.md.

    python tools/gatt_data.py -m smollm2 --dialogues d.jsonl --instructions i.txt \\
        --prompts prompts.jsonl --train train.jsonl
"""
from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
from pathlib import Path
from typing import Callable, Iterable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyllong import InvalidArgumentError, Model  # noqa: E402

Scorer = Callable[[str, list, str], float]


def read_dialogues(path: str) -> list[list[dict]]:
    """Dialogues as alternating user/assistant messages, checked."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidArgumentError(f"{path}:{n}: not JSON ({e}); write one dialogue object per line") from None
            if isinstance(d, dict) and "turns" in d:
                msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(d["turns"])]
            elif isinstance(d, dict) and "messages" in d:
                msgs = [m for m in d["messages"] if m.get("role") != "system"]
            else:
                raise InvalidArgumentError(f"{path}:{n}: expected {{\"messages\": [...]}} or {{\"turns\": [...]}}")
            for i, m in enumerate(msgs):
                want = "user" if i % 2 == 0 else "assistant"
                if m.get("role") != want or not isinstance(m.get("content"), str):
                    raise InvalidArgumentError(f"{path}:{n}: message {i + 1} must be a {want} message with text "
                                               "content (dialogues alternate user, assistant, starting with user)")
            if len(msgs) < 2:
                raise InvalidArgumentError(f"{path}:{n}: a dialogue needs at least one user and one assistant message")
            out.append(msgs[:len(msgs) // 2 * 2])
    return out


def read_instructions(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        inst = [line.strip() for line in f if line.strip()]
    if not inst:
        raise InvalidArgumentError(f"{path} has no instructions; write one per line")
    return inst


def with_instruction(msgs: list[dict], inst: str, every_turn: bool) -> list[dict]:
    """The messages with `inst` in front of every user message, or the first one only."""
    out, first = [], True
    for m in msgs:
        if m["role"] == "user" and (every_turn or first):
            m = {"role": "user", "content": f"{inst} {m['content']}"}
            first = False
        out.append(dict(m))
    return out


def training_record(model: Model, msgs: list[dict], inst: str, turn: int) -> dict:
    """Dialogue up to assistant turn `turn` (0-based), instruction on the first user message,
    loss only on that last answer."""
    upto = with_instruction(msgs[:2 * turn + 2], inst, every_turn=False)
    head = model.render_chat(upto[:-1], add_generation_prompt=True)
    full = model.render_chat(upto, add_generation_prompt=False)
    if not full.startswith(head):
        raise InvalidArgumentError("this chat template does not render a conversation as its prefix followed by "
                                   "the answer, so the loss mask cannot be placed; use a model with another template")
    head_tokens = model.tokenize_chat(head)
    tail_tokens = model.tokenize(full[len(head):], add_special=False, parse_special=True)
    return {"turn": turn, "instruction": inst, "text": full, "tokens": head_tokens + tail_tokens,
            "loss_mask": [0] * len(head_tokens) + [1] * len(tail_tokens)}


def draw_instruction(rng: random.Random, instructions: list[str], combine: int) -> str:
    k = rng.randint(1, max(1, min(combine, len(instructions))))
    return " ".join(rng.sample(instructions, k))


def load_scorer(spec: str) -> Scorer:
    mod, _, fn = spec.partition(":")
    if not fn:
        raise InvalidArgumentError(f"--scorer takes MODULE:FUNCTION (e.g. myscore:score), got {spec!r}")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise InvalidArgumentError(f"--scorer {spec}: {e}; put the module on PYTHONPATH") from None


def rejection_sample(model: Model, msgs: list[dict], inst: str, k: int, scorer: Scorer, temperature: float,
                     max_tokens: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Replace each assistant turn by the best of k samples drawn with the instruction on every user
    turn; returns (new messages, per-turn {"samples", "scores", "best"})."""
    chosen, log = [], []
    for i in range(0, len(msgs), 2):
        chosen.append(dict(msgs[i]))
        prompt_msgs = with_instruction(chosen, inst, every_turn=True)
        samples = [str(model.chat(prompt_msgs, temperature=temperature, max_tokens=max_tokens, seed=seed + 1000 * i + j))
                   for j in range(k)]
        scores = [float(scorer(inst, prompt_msgs, s)) for s in samples]
        best = max(range(k), key=scores.__getitem__)
        chosen.append({"role": "assistant", "content": samples[best]})
        log.append({"samples": samples, "scores": scores, "best": best})
    return chosen, log


def build(model: Model, dialogues: list[list[dict]], instructions: list[str], combine: int = 1, seed: int = 0,
          sample: int = 0, scorer: Optional[Scorer] = None, temperature: float = 0.8,
          max_tokens: int = 256) -> tuple[list[dict], list[dict]]:
    """(sampling prompt records, training records)."""
    rng = random.Random(seed)
    prompts, train = [], []
    for d, msgs in enumerate(dialogues):
        inst = draw_instruction(rng, instructions, combine)
        log = None
        if sample:
            if scorer is None:
                raise InvalidArgumentError("rejection sampling needs a scorer (--scorer MODULE:FUNCTION)")
            msgs, log = rejection_sample(model, msgs, inst, sample, scorer, temperature, max_tokens, seed + d)
        for t in range(len(msgs) // 2):
            every = with_instruction(msgs[:2 * t + 1], inst, every_turn=True)
            rec = {"id": d, "turn": t, "instruction": inst, "messages": every,
                   "prompt": model.render_chat(every, add_generation_prompt=True)}
            if log:
                rec["rejection_sampling"] = log[t]
            prompts.append(rec)
            train.append({"id": d, **training_record(model, msgs, inst, t)})
    return prompts, train


def _write_jsonl(path: str, records: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default="smollm2", help="registry name or .gguf (its chat template and tokenizer)")
    ap.add_argument("--dialogues", required=True)
    ap.add_argument("--instructions", required=True)
    ap.add_argument("--prompts", default=None, help="write sampling prompts (JSONL)")
    ap.add_argument("--train", default=None, help="write training records (JSONL)")
    ap.add_argument("--combine", type=int, default=1, help="combine up to this many instructions per dialogue")
    ap.add_argument("--sample", type=int, default=0, help="rejection sampling: samples per assistant turn (0 = off)")
    ap.add_argument("--scorer", default=None, help="MODULE:FUNCTION(instruction, messages, reply) -> float")
    ap.add_argument("--temp", type=float, default=0.8)
    ap.add_argument("-n", "--max-tokens", type=int, default=256)
    ap.add_argument("-c", "--ctx", type=int, default=4096)
    ap.add_argument("-t", "--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        if not a.prompts and not a.train:
            raise InvalidArgumentError("nothing to write: give --prompts FILE and/or --train FILE")
        scorer = load_scorer(a.scorer) if a.scorer else None
        model = Model(a.model, n_ctx=a.ctx, n_threads=a.threads)
        prompts, train = build(model, read_dialogues(a.dialogues), read_instructions(a.instructions), a.combine,
                               a.seed, a.sample, scorer, a.temp, a.max_tokens)
    except InvalidArgumentError as e:
        print(f"gatt_data: {e}", file=sys.stderr)
        return 2
    if a.prompts:
        _write_jsonl(a.prompts, prompts)
    if a.train:
        _write_jsonl(a.train, train)
    print(f"{len(prompts)} sampling prompts, {len(train)} training records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
