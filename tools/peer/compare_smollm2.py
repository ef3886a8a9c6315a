"""pyllong against llama.cpp on the real SmolLM2-135M-Instruct Q4_1: perplexity and greedy
continuations (issue 4, "Must show"). A measurement script, not a unit test.

Peer tools: bash ../shared/peer/build_llamacpp.sh (prints BIN, the folder of llama-perplexity
and llama-completion); dump_logits as in tools/peer/compare_reference.py (optional: it gives
llama.cpp's token ids and top-2 logit gaps for the greedy comparison).

    python tools/peer/make_ppl_text.py /tmp/pydoc_topics.txt
    PYTHONPATH=. python tools/peer/compare_smollm2.py --bin BIN --dump-logits /tmp/dump_logits \
        --text /tmp/pydoc_topics.txt [--ctx 512 2048] [--chunks N] [--skip-ppl] [--skip-greedy]

Perplexity: `pyllong perplexity -m M -f TEXT -c N --json` against
`llama-perplexity -m M -f TEXT -c N -t T` (same chunk count: --chunks for both).
Greedy: pyllong.Model.generate(temperature=0, top_k=1, repeat_penalty=1, max_tokens=32)
against `llama-completion --temp 0 --top-k 1 --repeat-penalty 1 -n 32` (text) and against
argmax stepping over dump_logits (token ids). On a divergence it prints both runtimes'
top-2 logits at that step.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

CHATML = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n" \
         "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
PROMPTS = [
    ("plain", "Once upon a time, in a small village by the sea,"),
    ("plain", "The three primary colours are"),
    ("plain", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("plain", "The capital of France is Paris. The capital of Germany is"),
    ("plain", "Photosynthesis is the process by which plants"),
    ("chatml", CHATML.format("What is the capital of France?")),
    ("chatml", CHATML.format("Write a haiku about the sea.")),
    ("chatml", CHATML.format("Explain gravity to a five-year-old in two sentences.")),
]
N_GEN = 32


def model_path() -> str:
    from pyllong import hub
    return str(hub.resolve("smollm2", quiet=True))


# ---------------------------------------------------------------------------------------------
# Perplexity

def ppl_pyllong(model: str, text: str, n_ctx: int, chunks: int | None, threads: int) -> dict:
    cmd = [sys.executable, "-m", "pyllong.cli", "perplexity", "-m", model, "-f", text, "-c", str(n_ctx),
           "-t", str(threads), "--json", "-q"]
    if chunks:
        cmd += ["--chunks", str(chunks)]
    t0 = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT)).stdout
    r = json.loads(out)
    r["seconds"] = time.time() - t0
    r["cmd"] = " ".join(["pyllong"] + cmd[3:])
    return r


def ppl_llamacpp(bindir: str, model: str, text: str, n_ctx: int, chunks: int | None, threads: int) -> dict:
    cmd = [os.path.join(bindir, "llama-perplexity"), "-m", model, "-f", text, "-c", str(n_ctx), "-t", str(threads)]
    if chunks:
        cmd += ["--chunks", str(chunks)]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    log = p.stdout + p.stderr
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
    if p.returncode or not m:
        raise RuntimeError(f"llama-perplexity failed ({p.returncode}):\n{log[-3000:]}")
    n = re.search(r"calculating perplexity over (\d+) chunks", log)
    return {"ppl": float(m.group(1)), "stderr": float(m.group(2)), "n_chunks": int(n.group(1)) if n else None,
            "seconds": time.time() - t0, "cmd": "llama-perplexity " + " ".join(cmd[1:])}


def run_ppl(a, model: str) -> list[dict]:
    rows = []
    for n_ctx in a.ctx:
        ours = ppl_pyllong(model, a.text, n_ctx, a.chunks, a.threads)
        peer = ppl_llamacpp(a.bin, model, a.text, n_ctx, a.chunks, a.threads)
        rel = ours["ppl"] / peer["ppl"] - 1
        row = {"n_ctx": n_ctx, "pyllong": ours, "llama.cpp": peer, "rel_diff": rel}
        rows.append(row)
        print(f"c={n_ctx}: pyllong PPL {ours['ppl']:.4f} +/- {ours['stderr']:.4f} ({ours['n_chunks']} chunks, "
              f"{ours['n_tokens']} tokens, {ours['seconds']:.0f}s) | llama.cpp PPL {peer['ppl']:.4f} +/- "
              f"{peer['stderr']:.4f} ({peer['n_chunks']} chunks, {peer['seconds']:.0f}s) | diff {100 * rel:+.3f} %",
              flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# Greedy

def llama_completion(bindir: str, model: str, prompt: str, threads: int) -> str:
    cmd = [os.path.join(bindir, "llama-completion"), "-m", model, "-p", prompt, "-n", str(N_GEN), "--temp", "0",
           "--top-k", "1", "--repeat-penalty", "1.0", "-t", str(threads), "-no-cnv", "--no-display-prompt",
           "--seed", "0", "-c", "512", "--no-warmup"]
    p = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL)
    if p.returncode:
        raise RuntimeError(f"llama-completion failed:\n{p.stderr.decode(errors='replace')[-3000:]}")
    return p.stdout.decode("utf-8", errors="replace")


def dump_logits(exe: str, model: str, tokens: list[int]) -> np.ndarray:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.bin")
        subprocess.run([exe, model, out] + [str(t) for t in tokens], check=True, capture_output=True)
        return np.fromfile(out, dtype=np.float32).reshape(len(tokens), -1)


def top2(row: np.ndarray) -> tuple[int, float, int, float]:
    i = np.argsort(-row.astype(np.float64), kind="stable")[:2]
    return int(i[0]), float(row[i[0]]), int(i[1]), float(row[i[1]])


def reference_top2(model: str, tokens: list[int]) -> tuple[int, float, int, float]:
    """Top-2 of the float64 numpy reference (tests/reference/forward.py: dequantized weights,
    no activation quantization) for the next token: the "true" gap at a divergence."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from reference.forward import reference_logits
    return top2(reference_logits(model, tokens)[-1])


def text_match_tokens(llm, toks: list[int], peer_text: str) -> int:
    """How many of pyllong's tokens have text that is a prefix of llama-completion's output."""
    k = 0
    for n in range(1, len(toks) + 1):
        if peer_text.startswith(llm.detokenize(toks[:n])):
            k = n
        else:
            break
    return k


def run_greedy(a, model: str) -> list[dict]:
    import pyllong

    rows = []
    llm = pyllong.Model(model, n_ctx=512, n_threads=a.threads)
    for kind, prompt in PROMPTS:
        ptoks = llm.tokenize(prompt, add_special=True, parse_special=True)
        res = llm.generate(prompt, max_tokens=N_GEN, temperature=0, top_k=1, repeat_penalty=1.0)
        ours = list(res.tokens)
        row = {"kind": kind, "prompt": prompt, "n_prompt": len(ptoks), "pyllong_tokens": ours, "pyllong_text": str(res),
               "finish": res.finish_reason}
        if a.bin:
            peer_text = llama_completion(a.bin, model, prompt, a.threads)
            row["llama_completion_text"] = peer_text
            row["text_match"] = text_match_tokens(llm, ours, peer_text)
            # llama-completion prints a blank line when it stops: compare without trailing newlines
            row["text_equal"] = peer_text.rstrip("\n") == str(res).rstrip("\n")
        if a.dump_logits:
            # llama.cpp argmax stepping over the same prompt ids, up to N_GEN tokens or EOG
            seq = list(ptoks)
            peer = []
            for _ in range(N_GEN):
                t = int(np.argmax(dump_logits(a.dump_logits, model, seq)[-1]))
                peer.append(t)
                if t in llm.eog_ids:
                    break
                seq.append(t)
            row["llamacpp_tokens"] = peer
            n = 0
            while n < min(len(ours), len(peer)) and ours[n] == peer[n]:
                n += 1
            row["token_match"] = n
            if n < min(len(ours), len(peer)):
                ctx_toks = ptoks + ours[:n]
                llm.reset()
                mine = llm.eval(ctx_toks, logits_all=False)[-1]
                theirs = dump_logits(a.dump_logits, model, ctx_toks)[-1]
                row["divergence"] = {"step": n, "pyllong_top2": top2(mine), "llamacpp_top2": top2(theirs),
                                     "pyllong_gap": top2(mine)[1] - top2(mine)[3],
                                     "llamacpp_gap": top2(theirs)[1] - top2(theirs)[3],
                                     "max_abs_logit_diff": float(np.abs(mine - theirs).max())}
                if a.reference:
                    row["divergence"]["reference_top2"] = reference_top2(model, ctx_toks)
            if "llama_completion_text" in row:
                # llama.cpp against itself: its decode loop (llama-completion) vs its batch argmax stepping
                row["llamacpp_self_text_match"] = text_match_tokens(llm, peer, row["llama_completion_text"])
        rows.append(row)
        desc = f"[{kind}] {prompt[-40:]!r}: {len(ours)} tokens ({res.finish_reason})"
        if "text_match" in row:
            desc += f" | llama-completion text: {row['text_match']}/{len(ours)} match, equal={row['text_equal']}"
        if "token_match" in row:
            desc += f" | dump_logits ids: {row['token_match']}/{len(ours)} match"
        if "divergence" in row:
            d = row["divergence"]
            desc += (f" | diverges at {d['step']}: pyllong top2 {d['pyllong_top2']}, llama.cpp top2 "
                     f"{d['llamacpp_top2']}, reference top2 {d.get('reference_top2')}")
        if "llamacpp_self_text_match" in row:
            desc += f" | llama.cpp self (completion vs stepping): {row['llamacpp_self_text_match']}/{len(row['llamacpp_tokens'])}"
        print(desc, flush=True)
    llm.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=None, help="folder with llama-perplexity and llama-completion")
    ap.add_argument("--dump-logits", default=None, help="built tools/peer/dump_logits.cpp")
    ap.add_argument("--model", default=None, help="default: the smollm2 registry model")
    ap.add_argument("--text", default="/tmp/pydoc_topics.txt")
    ap.add_argument("--ctx", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--chunks", type=int, default=None, help="score at most this many chunks (both runtimes)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-ppl", action="store_true")
    ap.add_argument("--skip-greedy", action="store_true")
    ap.add_argument("--json", default=None, help="write all results here")
    ap.add_argument("--reference", action="store_true", help="also the float64 reference's top-2 at divergences")
    a = ap.parse_args()
    model = a.model or model_path()
    out = {"model": model}
    if not a.skip_greedy:
        out["greedy"] = run_greedy(a, model)
    if not a.skip_ppl:
        if not a.bin:
            sys.exit("--bin is needed for perplexity")
        if not os.path.exists(a.text):
            subprocess.run([sys.executable, os.path.join(HERE, "make_ppl_text.py"), a.text], check=True)
        out["perplexity"] = run_ppl(a, model)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
