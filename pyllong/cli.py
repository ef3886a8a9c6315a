"""The `pyllong` command line."""
from __future__ import annotations

import argparse
import json
import sys

from .errors import Error


class _DefaultsFormatter(argparse.HelpFormatter):
    """Shows "(default: X)" unless the help already says its default or there is none."""

    def _get_help_string(self, action):
        h = action.help or ""
        if "default" in h or action.default in (None, argparse.SUPPRESS, False) or not action.option_strings:
            return h
        return f"{h} (default: {action.default})"


def _parse_ctx(s: str) -> int:
    s = s.strip().lower()
    mult = 1024 if s.endswith("k") else 1
    try:
        n = int(s[:-1] if s.endswith("k") else s) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a context length: {s!r} (e.g. 4096 or 4k)") from None
    if n < 1:
        raise argparse.ArgumentTypeError("context length must be at least 1")
    return n


def _parse_transition(s: str):
    from .transition import parse_transition

    try:
        return parse_transition(s)
    except Error as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _parse_self_extend(s: str) -> tuple[int, int]:
    try:
        g, w = (int(x) for x in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--self-extend takes G,W (e.g. 4,1024), got {s!r}") from None
    if g < 1 or w < 1 or w % g:
        raise argparse.ArgumentTypeError(f"--self-extend {s}: need G >= 1, W >= 1 and W a multiple of G")
    return g, w


def cmd_pull(a) -> int:
    from .hub import pull

    print(pull(a.name, force=a.force, quiet=a.quiet))
    return 0


def cmd_list(a) -> int:
    from .hub import list_models

    rows = list_models()
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = "pulled" if r["pulled"] else "not pulled"
        print(f"{r['name']:<10} {r['size'] / 1e6:7.1f} MB  {state:<10}  {r['description']}")
        if r["pulled"]:
            print(f"{'':<10} {r['path']}")
    return 0


def cmd_info(a) -> int:
    from .hub import resolve
    from .info import format_summary, model_summary

    s = model_summary(resolve(a.model, quiet=a.json), a.ctx)
    if a.self_extend:
        from .model import self_extend_reach

        g, w = a.self_extend
        s["self_extend"] = {"group": g, "window": w, "reach": self_extend_reach(s["n_ctx_train"], g, w)}
    text = format_summary(s)
    if a.self_extend:
        text += f"\nself-extend     G={g}, W={w}: reach {s['self_extend']['reach']} tokens"
    print(json.dumps(s, indent=2) if a.json else text)
    return 0


# ---------------------------------------------------------------------------------------------
# generate / chat / perplexity

def _memory(a):
    """A pyllong.Memory from the --memory options (None when none is given)."""
    from .memory import Memory

    if getattr(a, "memory_load", None):
        return Memory.load(a.memory_load, mode=a.memory_mode, k=a.memory_k, cap=a.memory_cap)
    if not getattr(a, "memory", False) and not any(
            getattr(a, f"memory_{o}", None) for o in ("layers", "mode", "k", "cap", "last", "doc", "save", "index", "distance")):
        return None
    ivf = a.memory_index == "ivf"
    return Memory(layers=a.memory_layers, mode=a.memory_mode or ("knn" if ivf else "fot"), k=a.memory_k or 64,
                  cap=a.memory_cap, last_context_length=a.memory_last, index=a.memory_index or "exact",
                  distance=a.memory_distance)


def _load_model(a, **extra):
    from .model import Model

    memory = _memory(a)
    model = Model(a.model, n_ctx=a.ctx, n_threads=a.threads, seed=a.seed, kv_type=a.kv_type,
                  self_extend=a.self_extend, n_gpu_layers=a.n_gpu_layers, memory=memory,
                  transition=getattr(a, "transition", None),
                  context_shift=getattr(a, "context_shift", False), **extra)
    if memory is not None and getattr(a, "memory_doc", None):
        with open(a.memory_doc, encoding="utf-8") as f:
            n = memory.add_document(f.read())
        print(f"[memory: read {n} tokens of {a.memory_doc}]", file=sys.stderr)
    if memory is not None and getattr(a, "memory_save", None):
        memory.save(a.memory_save)
    return model


def _sampling(a) -> dict:
    return dict(temperature=a.temp, top_k=a.top_k, top_p=a.top_p, min_p=a.min_p,
                repeat_penalty=a.repeat_penalty, repeat_last_n=a.repeat_last_n,
                frequency_penalty=a.frequency_penalty, presence_penalty=a.presence_penalty)


def _write(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()


def cmd_generate(a) -> int:
    model = _load_model(a)
    prompt = a.prompt
    if a.file:
        with open(a.file, encoding="utf-8") as f:
            prompt = f.read()
    if prompt is None:
        raise Error("give a prompt with -p TEXT or -f FILE")
    res = model.generate(prompt, max_tokens=a.n_predict, stop=a.stop or None, stream=a.stream, **_sampling(a))
    if a.stream:
        try:
            for piece in res:
                _write(piece)
        except KeyboardInterrupt:
            res.close()
            _write("\n")
            print("pyllong: interrupted", file=sys.stderr)
            return 130
        res = res.result
    else:
        _write(str(res))
    _write("\n")
    if a.verbose:
        print(f"[{res.prompt_tokens} prompt tokens, {len(res.tokens)} generated, finish: {res.finish_reason}]",
              file=sys.stderr)
    return 0


_CHAT_HELP = ("commands: /reset (forget the conversation), /system [TEXT] (show or set the system prompt), "
              "/exit; end a line with \\ to continue it; Ctrl-C stops a reply; Ctrl-D exits")


def _read_message(tty: bool) -> str | None:
    """One user message (lines ending in a backslash continue it); None at end of input."""
    lines = []
    while True:
        if tty:
            try:
                line = input("> " if not lines else ". ")
            except EOFError:
                return None if not lines else "\n".join(lines)
        else:
            line = sys.stdin.readline()
            if not line:
                return None if not lines else "\n".join(lines)
            line = line.rstrip("\n")
        if line.endswith("\\"):
            lines.append(line[:-1])
            continue
        lines.append(line)
        return "\n".join(lines)


def _reply(session, text: str) -> None:
    stream = session.send(text, stream=True)
    try:
        for piece in stream:
            _write(piece)
    except KeyboardInterrupt:  # stop this reply, keep the program (and what was said so far)
        stream.close()
        _write("\n")
        print("[reply interrupted]", file=sys.stderr)
        return
    _write("\n")


def cmd_chat(a) -> int:
    from .session import ChatSession

    model = _load_model(a)
    session = ChatSession(model, system=a.system, max_tokens=a.n_predict, evict=a.evict, **_sampling(a))
    if a.prompt is not None:
        _reply(session, a.prompt)
        return 0
    tty = sys.stdin.isatty()
    if tty:
        print(f"pyllong chat — {model.path}\n{_CHAT_HELP}", file=sys.stderr)
    while True:
        try:
            msg = _read_message(tty)
        except KeyboardInterrupt:
            if not tty:
                return 130
            print("\n(Ctrl-D or /exit to quit)", file=sys.stderr)
            continue
        if msg is None:
            if tty:
                _write("\n")
            return 0
        cmd = msg.strip()
        if not cmd:
            continue
        if cmd in ("/exit", "/quit"):
            return 0
        if cmd == "/reset":
            session.reset()
            print("[conversation reset]", file=sys.stderr)
            continue
        if cmd == "/help":
            print(_CHAT_HELP, file=sys.stderr)
            continue
        if cmd == "/system" or cmd.startswith("/system "):
            new = cmd[len("/system"):].strip()
            if new:
                session.set_system(new)
                print("[system prompt set]", file=sys.stderr)
            else:
                print(f"[system prompt: {session.system!r}]", file=sys.stderr)
            continue
        _reply(session, msg)


def _ctx_sweep(a, text: str) -> int:
    """Perplexity at each context length, plain and (with --self-extend) SelfExtend: the
    first --chunks chunks (default 1) of the text at each length."""
    from .perplexity import perplexity

    configs = [None] + ([a.self_extend] if a.self_extend else [])
    rows = []
    for length in a.ctx_sweep:
        for se in configs:
            model = _load_model(argparse.Namespace(**{**vars(a), "ctx": length, "self_extend": se}))
            try:
                r = perplexity(model, text, max_chunks=a.chunks or 1)
            finally:
                model.close()
            rows.append({"n_ctx": length, "self_extend": se, "ppl": r["ppl"], "n_chunks": r["n_chunks"]})
            if not a.json:
                label = f"SelfExtend G={se[0]} W={se[1]}" if se else "plain"
                print(f"{length:>7} {label:<24} PPL {r['ppl']:10.4f}  ({r['n_chunks']} chunk(s))", flush=True)
    if a.json:
        print(json.dumps({"model": a.model, "file": a.file, "records": rows}, indent=2))
    if a.plot:
        from .passkey import _pyplot

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for se in configs:
            pts = [(r["n_ctx"], r["ppl"]) for r in rows if r["self_extend"] == se]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=f"SelfExtend G={se[0]} W={se[1]}" if se else "plain attention")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("perplexity")
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.plot, dpi=120)
    return 0


def cmd_perplexity(a) -> int:
    from .perplexity import perplexity

    with open(a.file, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if a.ctx_sweep:
        return _ctx_sweep(a, text)
    model = _load_model(a)
    bar = None
    if not a.json:
        from tqdm import tqdm

        bar = tqdm(desc="perplexity", unit="chunk", file=sys.stderr, disable=a.quiet)

    def on_chunk(i, n, ppl):
        if bar is not None:
            bar.total = n
            bar.set_postfix_str(f"ppl {ppl:.4f}")
            bar.update(1)

    r = perplexity(model, text, max_chunks=a.chunks, on_chunk=on_chunk)
    if bar is not None:
        bar.close()
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"{r['n_chunks']} chunks of {r['n_ctx']} tokens ({r['n_tokens']} tokens in the text, "
              f"{r['n_scored']} scored)")
        print(f"Final estimate: PPL = {r['ppl']:.4f} +/- {r['stderr']:.5f}")
    return 0


def _parse_lengths(s: str) -> list[int]:
    return [_parse_ctx(x) for x in s.split(",") if x.strip()]


def _parse_depths(s: str) -> list[float]:
    try:
        ds = [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"depths are numbers in [0, 1], e.g. 0,0.5,1; got {s!r}") from None
    if not ds or any(d < 0 or d > 1 for d in ds):
        raise argparse.ArgumentTypeError(f"depths must be in [0, 1], got {s!r}")
    return ds


def cmd_passkey(a) -> int:
    from . import passkey

    memory = _memory(a) is not None
    n_ctx = a.ctx or (None if memory else max(a.lengths) + 64)  # with memory, --ctx is the window W
    model = _load_model(argparse.Namespace(**{**vars(a), "ctx": n_ctx}))
    label = f"SelfExtend G={a.self_extend[0]}, W={a.self_extend[1]}" if a.self_extend else "plain attention"
    if model.memory is not None:
        m = model.memory
        label = (f"kNN memory {m.mode}{f' k={m.k}' if m.mode == 'knn' else ''}{' ivf' if m.index == 'ivf' else ''} "
                 f"layers {m.layers} W={m.window} "
                 f"last={m.last_context_length}{f' distance={m.distance}' if m.distance else ''}")

    def show(r):
        if not a.json:
            mark = "ok " if r["correct"] else "MISS"
            print(f"{mark} length {r['length']:>6} ({r['n_prompt']} tokens) depth {r['depth']:.2f} "
                  f"key {r['key']} answer {r['answer']!r}", file=sys.stderr, flush=True)

    recs = passkey.run(model, a.lengths, a.depths, a.trials, a.seed or 0, on_result=show)
    if a.json:
        print(json.dumps({"model": model.path, "self_extend": a.self_extend, "memory": label if memory else None,
                          "records": recs}, indent=2))
    else:
        print(f"passkey accuracy, {label}, {model.path}")
        print(passkey.table(recs))
    if a.plot:
        passkey.plot(recs, a.plot, f"passkey: {label}")
    return 0


def _parse_int_list(s: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers (e.g. 0,5,29), got {s!r}") from None


def cmd_attention_map(a) -> int:
    from .attention_map import capture_chat, draw

    msgs = list(a.message)
    if a.file:
        with open(a.file, encoding="utf-8") as f:
            msgs += [line.rstrip("\n") for line in f if line.strip()]
    if not msgs:
        raise Error("give user messages with -p (repeatable) or -f FILE (one per line)")
    model = _load_model(a)
    cap = capture_chat(model, a.instruction, msgs, layers=a.layers, heads=a.heads, max_tokens=a.n_predict,
                       as_system=not a.first_turn, repeat_penalty=1.0)
    draw(cap, a.out, title=f"{model.path.rsplit('/', 1)[-1]}: {a.instruction[:60]}", per_head=a.per_head)
    mass = cap.instruction_mass()
    if a.json:
        print(json.dumps({"instruction_span": cap.instruction, "turns": cap.turns, "layers": cap.layers,
                          "heads": cap.heads, "instruction_mass": [float(x) for x in mass], "png": a.out}))
    else:
        for i, x in enumerate(mass, 1):
            print(f"turn {i:3d}: attention on the instruction {x:.4f}")
        print(f"wrote {a.out}", file=sys.stderr)
    return 0

# ---------------------------------------------------------------------------------------------
# bench

def _parse_counts(s: str) -> list[int]:
    """llama-bench's list syntax for -p/-n/-d: comma-separated, each a count like 512 or 4k."""
    try:
        return [_parse_count(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated token counts (e.g. 0,4k,16k), got {s!r}") from None


def _parse_count(s: str) -> int:
    s = s.strip().lower()
    n = int(s[:-1]) * 1024 if s.endswith("k") else int(s)
    if n < 0:
        raise ValueError(s)
    return n


def cmd_bench(a) -> int:
    from . import bench
    from .hub import resolve
    from .model import _default_threads

    path = str(resolve(a.model, quiet=a.json))
    threads = a.threads or _default_threads()

    def progress(r):
        if not a.json:
            print(f"  {bench.markdown([r]).splitlines()[2]}", file=sys.stderr, flush=True)

    recs = bench.bench(path, threads, a.n_prompt, a.n_gen, a.n_depth, reps=a.repetitions, n_batch=a.batch_size,
                       kv_type=a.kv_type, self_extend=a.self_extend, n_gpu_layers=a.n_gpu_layers,
                       seed=a.seed, warmup=not a.no_warmup, generate=a.generate, roofline=a.roofline,
                       on_record=progress)
    print(json.dumps(recs, indent=2) if a.json else bench.markdown(recs))
    return 0


def _add_model_args(s, default_ctx_help: str) -> None:
    s.add_argument("-m", "--model", default=None, help="registry name or .gguf path (default: smollm2, pulled on first use)")
    s.add_argument("-c", "--ctx", type=_parse_ctx, default=None, help=default_ctx_help)
    s.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: all this process may use, max 16)")
    s.add_argument("-s", "--seed", type=int, default=None, help="sampler seed (default: random)")
    s.add_argument("--kv-type", choices=["f16", "q8_0"], default="f16",
                   help="KV-cache storage: f16, or q8_0 at about half the memory (default: f16)")
    s.add_argument("--self-extend", type=_parse_self_extend, default=None, metavar="G,W",
                   help="SelfExtend grouped attention: group size G, neighbour window W; reads up to "
                        "(L - W) * G + W tokens of a model trained on L (default: off)")
    s.add_argument("-ngl", "--n-gpu-layers", type=int, default=0, metavar="N",
                   help="layers to run on the GPU (CUDA builds): N = the first N, -1 = all (default: 0, CPU only)")
    s.add_argument("--transition", type=_parse_transition, nargs="?", const="on", default=None,
                   metavar="ALPHA,BETA[,BANDS]",
                   help="Attention Transition on the prompt pass (CPU and GPU layers): bare = the reference 0.5,0.1,2 "
                        "(default: off)")


def _parse_layers(s: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--memory-layers takes layer indices like 6,12,18, got {s!r}") from None


def _add_memory_args(s, documents: bool) -> None:
    g = s.add_argument_group("kNN memory (LongLLaMA-style; --ctx is then the local window W, inputs may be longer)")
    g.add_argument("--memory", action="store_true", help="attend to a kNN key-value memory of earlier text")
    g.add_argument("--memory-layers", type=_parse_layers, default=None, metavar="L,L,..",
                   help="memory layers (default: a quarter, half and three quarters deep)")
    g.add_argument("--memory-mode", choices=["fot", "knn"], default=None, help="all memory keys, or top-k (default: fot)")
    g.add_argument("--memory-k", type=int, default=None, help="knn: memory keys per query (default: 64)")
    g.add_argument("--memory-index", choices=["exact", "ivf"], default=None,
                   help="knn search: exact scan, or an approximate IVF index (default: exact)")
    g.add_argument("--memory-distance", type=int, default=None, metavar="D",
                   help="see every memory key D tokens back (default: LongLLaMA's, the query's window position)")
    g.add_argument("--memory-cap", type=int, default=None, help="most tokens in memory, oldest dropped first")
    g.add_argument("--memory-last", type=int, default=None, metavar="N",
                   help="tokens of a long input kept in the window (default: W/2)")
    g.add_argument("--memory-load", default=None, metavar="FILE", help="start from a memory saved with --memory-save")
    if documents:
        g.add_argument("--memory-doc", default=None, metavar="FILE", help="read this UTF-8 file into memory first")
        g.add_argument("--memory-save", default=None, metavar="FILE", help="save the memory after --memory-doc")


def _add_sampling_args(s, n_predict: int) -> None:
    g = s.add_argument_group("sampling (llama.cpp order: penalties, top-k, top-p, min-p, temperature)")
    g.add_argument("-n", "--n-predict", type=int, default=n_predict, help="most tokens to generate")
    g.add_argument("--temp", type=float, default=0.8, help="temperature; 0 = greedy")
    g.add_argument("--top-k", type=int, default=40, help="keep the k most likely tokens; 0 = off")
    g.add_argument("--top-p", type=float, default=0.95, help="nucleus probability mass; 1 = off")
    g.add_argument("--min-p", type=float, default=0.05, help="keep tokens with p >= min_p * p(top); 0 = off")
    g.add_argument("--repeat-penalty", type=float, default=1.1, help="penalty for recent tokens; 1 = off")
    g.add_argument("--repeat-last-n", type=int, default=64, help="penalty window in tokens; -1 = whole context")
    g.add_argument("--frequency-penalty", type=float, default=0.0, help="subtract count * this")
    g.add_argument("--presence-penalty", type=float, default=0.0, help="subtract this once per seen token")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyllong", description="Local inference for quantized GGUF models.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("pull", help="download a registry model into the cache ($PYLLONG_HOME or ~/.cache/pyllong)")
    s.add_argument("name", nargs="?", default="smollm2", help="registry name (default: smollm2)")
    s.add_argument("--force", action="store_true", help="download again even if cached")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_pull)

    s = sub.add_parser("list", help="list registry models and whether they are pulled")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("info", help="print a model's architecture, sizes, quant mix, rope, vocab, KV bytes")
    s.add_argument("--self-extend", type=_parse_self_extend, default=None, metavar="G,W",
                   help="also print the reach of SelfExtend with these G, W")
    s.add_argument("model", nargs="?", default="smollm2", help="registry name or .gguf path (default: smollm2)")
    s.add_argument("--ctx", type=_parse_ctx, default=None,
                   help="context length for the KV-cache size (default: the training context)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_info)

    fmt = _DefaultsFormatter
    ctx_help = "context length, e.g. 4096 or 4k (default: min(training context, 4096))"
    s = sub.add_parser("generate", help="continue a prompt", formatter_class=fmt,
                       description="Continue a prompt (special-token spellings in it are parsed).")
    _add_model_args(s, ctx_help)
    s.add_argument("-p", "--prompt", default=None, help="prompt text")
    s.add_argument("-f", "--file", default=None, help="read the prompt from this file")
    s.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    s.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True, help="print tokens as they come")
    s.add_argument("--context-shift", action="store_true", help="when the context fills, drop old tokens instead of failing")
    s.add_argument("-v", "--verbose", action="store_true", help="print token counts and the finish reason to stderr")
    _add_memory_args(s, documents=True)
    _add_sampling_args(s, 128)
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("chat", help="chat with a model (interactive; reads stdin line by line when piped)",
                       formatter_class=fmt, description="Chat using the model's chat template. " + _CHAT_HELP)
    _add_model_args(s, ctx_help)
    s.add_argument("--system", default=None, help="system prompt (kept when old turns are dropped)")
    s.add_argument("--evict", choices=["rebuild", "shift"], default="rebuild",
                   help="when the context fills, drop whole old turns (never the system prompt) and re-evaluate "
                        "the rest (rebuild), or cut them out of the KV cache without re-evaluating (shift)")
    s.add_argument("-p", "--prompt", default=None, help="one message: print the reply and exit")
    _add_memory_args(s, documents=True)
    _add_sampling_args(s, 512)
    s.set_defaults(func=cmd_chat)

    s = sub.add_parser("perplexity", help="perplexity of a text file (llama-perplexity's method)", formatter_class=fmt)
    _add_model_args(s, "chunk length = context length")
    s.set_defaults(ctx=512)
    s.add_argument("-f", "--file", required=True, help="UTF-8 text file")
    s.add_argument("--chunks", type=int, default=None, help="score at most this many chunks (default: all of them; "
                                                            "1 per length with --ctx-sweep)")
    s.add_argument("--ctx-sweep", type=_parse_lengths, default=None, metavar="L1,L2,...",
                   help="perplexity at each context length (e.g. 2k,4k,8k,16k,32k), plain and, with "
                        "--self-extend, SelfExtend too; prints the table")
    s.add_argument("--plot", default=None, metavar="PNG", help="with --ctx-sweep: draw PPL against context length")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_perplexity)

    s = sub.add_parser("passkey", help="passkey retrieval accuracy over prompt lengths and key depths")
    _add_model_args(s, "context length (default: the longest length + 64)")
    s.add_argument("--lengths", type=_parse_lengths, default=[4096], help="prompt lengths, e.g. 4k,8k,16k (default: 4k)")
    s.add_argument("--depths", type=_parse_depths, default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="key depths in [0, 1] (default: 0,0.25,0.5,0.75,1)")
    s.add_argument("--trials", type=int, default=1, help="random keys per cell (default: 1)")
    s.add_argument("--json", action="store_true", help="print JSON records")
    s.add_argument("--plot", default=None, metavar="PNG", help="draw the length x depth grid")
    _add_memory_args(s, documents=False)
    s.set_defaults(func=cmd_passkey)

    s = sub.add_parser("bench", help="prompt and generation speed, like llama-bench (tok/s, mean ± stddev)",
                       formatter_class=fmt,
                       description="llama-bench's measurements: ppN = one eval of N random tokens, tgN = N "
                                   "single-token evals, after D tokens already in the cache (-d); tokenization and "
                                   "sampling excluded. Lists (-p 128,512) run every combination.")
    s.add_argument("-m", "--model", default=None, help="registry name or .gguf path (default: smollm2)")
    s.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: all this process may use)")
    s.add_argument("-p", "--n-prompt", type=_parse_counts, default=[512], help="prompt lengths (default: 512)")
    s.add_argument("-n", "--n-gen", type=_parse_counts, default=[128], help="generated tokens (default: 128)")
    s.add_argument("-d", "--n-depth", type=_parse_counts, default=[0],
                   help="tokens already in the cache before the measured part (default: 0)")
    s.add_argument("-r", "--repetitions", type=int, default=5, help="timed repetitions per test")
    s.add_argument("-b", "--batch-size", type=int, default=512, help="prompt tokens per forward chunk (n_batch)")
    s.add_argument("-ctk", "--kv-type", choices=["f16", "q8_0"], default="f16", help="KV-cache storage")
    s.add_argument("--self-extend", type=_parse_self_extend, default=None, metavar="G,W",
                   help="run with SelfExtend grouped attention (G, W)")
    s.add_argument("-ngl", "--n-gpu-layers", type=int, default=0, metavar="N", help="layers on the GPU (CUDA builds)")
    s.add_argument("--generate", action="store_true",
                   help="also time tgN three ways: the native C++ loop, and Model.generate's Python sampling loop")
    s.add_argument("--roofline", action="store_true",
                   help="also measure this machine's read bandwidth with the same threads (1 GiB buffer, after the "
                        "tests) and report each tgN's bytes read per token and the fraction of it reached")
    s.add_argument("--no-warmup", action="store_true", help="skip the warm-up run before each test")
    s.add_argument("-s", "--seed", type=int, default=0, help="seed of the random token ids")
    s.add_argument("--json", action="store_true", help="print llama-bench's JSON records")
    s.set_defaults(func=cmd_bench)

    from . import quantize_model

    s = sub.add_parser("attention-map", formatter_class=fmt,
                       help="capture attention over a chat and draw it: heat map + attention on the instruction per turn (PNG)")
    _add_model_args(s, "context length; the whole chat must fit (default: 2048)")
    s.add_argument("--instruction", required=True, help="the instruction (system prompt, or the first turn's prefix)")
    s.add_argument("-p", "--message", action="append", default=[], help="a user message (repeatable)")
    s.add_argument("-f", "--file", default=None, help="user messages, one per line")
    s.add_argument("--first-turn", action="store_true",
                   help="put the instruction in front of the first user message instead of the system prompt")
    s.add_argument("--layers", type=_parse_int_list, default=None, metavar="L1,L2",
                   help="layers to capture (default: 4 spread over the depth)")
    s.add_argument("--heads", type=_parse_int_list, default=None, metavar="H1,H2", help="heads (default: all)")
    s.add_argument("--per-head", action="store_true", help="one heat map per head (averaged over layers)")
    s.add_argument("-n", "--n-predict", type=int, default=48, help="most tokens per reply (greedy)")
    s.add_argument("-o", "--out", required=True, help="PNG to write")
    s.add_argument("--json", action="store_true", help="print the instruction span, turn spans and mass as JSON")
    s.set_defaults(func=cmd_attention_map, ctx=2048)

    s = sub.add_parser("quantize", help="convert a GGUF file to another quant type (Q4_K_M, Q8_0, ...)")
    quantize_model.add_arguments(s)
    s.set_defaults(func=quantize_model.run)

    from . import convert

    s = sub.add_parser("convert", help="convert a Hugging Face checkpoint folder to GGUF (F16, Q8_0, Q4_K_M, ...)",
                       description="Convert a Hugging Face checkpoint (config.json, safetensors or .bin shards, "
                                   "tokenizer.model or tokenizer.json) to GGUF. Architectures, metadata keys "
                                   "and limits: python -m pydoc pyllong.convert")
    convert.add_arguments(s)
    s.set_defaults(func=convert.run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `pyllong info | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("pyllong: interrupted", file=sys.stderr)
        return 130
    except (Error, OSError) as e:
        print(f"pyllong: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
