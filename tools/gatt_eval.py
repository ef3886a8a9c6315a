"""Multi-turn instruction following with and without a pinned instruction
(../shared/spec/ghost-attention.md, "Measure it").

A machine-checkable instruction is given once; 30 user turns follow in a context small enough
that old turns must be dropped. "pinned": the instruction is the system prompt, which
ChatSession never drops. "not pinned": the instruction opens the first user message, and leaves
with it when that turn is dropped. Each reply is checked by a rule (no judge model); the table
shows compliance per turn and whether the instruction was still in the context.

    PYTHONPATH=. nice python tools/gatt_eval.py -m smollm2 -c 384 --turns 30 --plot gatt_eval.png
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyllong import ChatSession, Model  # noqa: E402

QUESTIONS = [
    "What is the capital of France?", "Name a fruit that is yellow.", "How many legs does a spider have?",
    "What color is the sky on a clear day?", "What do bees make?", "Name a planet in our solar system.",
    "What is two plus three?", "What animal says moo?", "What is frozen water called?",
    "Name a musical instrument.", "What do plants need to grow?", "What is the opposite of hot?",
    "How many days are in a week?", "What is the largest ocean?", "Name a season of the year.",
    "What do you use to write on paper?", "What is the color of grass?", "Where do fish live?",
    "What shape is a ball?", "Name a vegetable.", "What is the sun?", "How many hours are in a day?",
    "What do cows drink?", "Name a bird that cannot fly.", "What is the first month of the year?",
    "What do we breathe?", "Name something that is cold.", "What is a baby cat called?",
    "What is the color of snow?", "Name a farm animal.",
]

_FR = {"le", "la", "les", "de", "des", "du", "est", "et", "un", "une", "en", "sur", "je", "vous", "il", "elle", "que",
       "qui", "pour", "dans", "avec", "sont", "pas", "au", "aux", "ce", "cette", "bien", "oui", "non", "l", "d"}
_EN = {"the", "is", "a", "an", "of", "and", "are", "to", "in", "it", "that", "with", "for", "on", "this", "you", "yes",
       "no", "i", "they", "be", "has", "have"}


def _is_french(reply: str) -> bool:
    """More French than English function words (a language check without a model)."""
    words = re.findall(r"[a-zàâçéèêëîïôûùüÿœ]+", reply.lower())
    fr, en = sum(w in _FR for w in words), sum(w in _EN for w in words)
    return fr >= 1 and fr > en


RULES = {
    "french": ("Always answer in French.", _is_french),
    # name: (instruction, check(reply) -> bool)
    "banana": ("Always end every answer with the word BANANA.",
               lambda r: bool(re.search(r"banana\W*$", r.strip(), re.IGNORECASE))),
    "caps": ("Always answer in capital letters only.",
             lambda r: sum(c.isupper() for c in r) >= 0.9 * max(1, sum(c.isalpha() for c in r))),
    "short": ("Always answer with at most five words.", lambda r: 0 < len(r.split()) <= 5),
}


def run(model: Model, rule: str, pinned: bool, turns: int, max_tokens: int) -> list[dict]:
    instruction, check = RULES[rule]
    s = ChatSession(model, system=instruction if pinned else None, max_tokens=max_tokens, temperature=0,
                    repeat_penalty=1.0)
    rows = []
    for i in range(turns):
        q = QUESTIONS[i % len(QUESTIONS)]
        reply = str(s.send(q if pinned or i else f"{instruction} {q}"))
        present = pinned or any(instruction in m["content"] for m in s.turns)
        rows.append({"turn": i + 1, "pinned": pinned, "ok": bool(check(reply)), "instruction_in_context": present,
                     "dropped_turns": s.dropped_turns, "n_past": model.n_past, "reply": reply})
    return rows


def plot(rows: list[dict], path: str, title: str) -> None:
    from pyllong.attention_map import _pyplot
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for pinned, color in ((True, "#2ca02c"), (False, "#d62728")):
        rs = [r for r in rows if r["pinned"] == pinned]
        ax.step([r["turn"] for r in rs], [1.0 * r["ok"] + (0.04 if pinned else -0.04) for r in rs], where="mid",
                color=color, label="pinned (system prompt)" if pinned else "not pinned (first user turn)")
        gone = [r["turn"] for r in rs if not r["instruction_in_context"]]
        if gone:
            ax.axvline(gone[0] - 0.5, color=color, ls="--", lw=0.8)
    ax.set_yticks([0, 1], ["violated", "followed"])
    ax.set_xlabel("turn (dashed: the instruction left the context)")
    ax.set_title(title)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default="smollm2")
    ap.add_argument("-c", "--ctx", type=int, default=384, help="small, so that the chat overflows")
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--rule", choices=sorted(RULES), default="banana")
    ap.add_argument("-n", "--max-tokens", type=int, default=32)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--plot", default=None, help="PNG of compliance per turn")
    ap.add_argument("--json", default=None, help="write the per-turn records here")
    a = ap.parse_args(argv)
    model = Model(a.model, n_ctx=a.ctx, n_threads=a.threads)
    rows = run(model, a.rule, True, a.turns, a.max_tokens) + run(model, a.rule, False, a.turns, a.max_tokens)
    print(f"instruction: {RULES[a.rule][0]!r}; n_ctx {a.ctx}; {model.path.rsplit('/', 1)[-1]}")
    print("| turn | pinned | not pinned | instruction in context (not pinned) | dropped turns (pinned / not) |")
    print("|---:|:---:|:---:|:---:|---:|")
    for i in range(a.turns):
        p, u = rows[i], rows[a.turns + i]
        print(f"| {i + 1} | {'yes' if p['ok'] else 'no'} | {'yes' if u['ok'] else 'no'} | "
              f"{'yes' if u['instruction_in_context'] else 'no'} | {p['dropped_turns']} / {u['dropped_turns']} |")
    for pinned in (True, False):
        rs = [r for r in rows if r["pinned"] == pinned]
        late = [r for r in rs if r["dropped_turns"] > 0]
        print(f"{'pinned' if pinned else 'not pinned'}: {sum(r['ok'] for r in rs)}/{len(rs)} turns followed; "
              f"after the first drop {sum(r['ok'] for r in late)}/{len(late)}")
    if a.plot:
        plot(rows, a.plot, f"{RULES[a.rule][0]} (n_ctx {a.ctx})")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
