"""`pyllong info`: what a model is, from its validated GGUF."""
from __future__ import annotations

from pathlib import Path

from ._core import ModelFile


def model_summary(path: str | Path, n_ctx: int | None = None) -> dict:
    """Facts about a model: architecture, sizes, quant mix, rope, vocab, KV bytes at n_ctx."""
    mf = ModelFile(str(path))
    hp, vocab = mf.hparams, mf.vocab
    n_ctx = n_ctx or hp["n_ctx_train"]
    mix = {t: {"tensors": n, "bytes": b} for t, (n, b) in sorted(mf.quant_mix.items())}
    return {
        "path": str(path),
        "architecture": hp["architecture"],
        "name": mf.gguf.metadata.get("general.name"),
        "n_params": mf.n_params,
        "file_size": sum(v["bytes"] for v in mix.values()),
        "quant_mix": mix,
        "n_layer": hp["n_layer"],
        "n_head": hp["n_head"],
        "n_head_kv": hp["n_head_kv"],
        "head_dim": hp["head_dim"],
        "n_embd": hp["n_embd"],
        "n_ff": hp["n_ff"],
        "n_ctx_train": hp["n_ctx_train"],
        "sliding_window": hp["sliding_window"],
        "rope": {"n_rot": hp["n_rot"], "freq_base": hp["rope_freq_base"], "freq_scale": hp["rope_freq_scale"],
                 "scaling": hp["rope_scaling_type"]},
        "norm_eps": hp["norm_eps"],
        "vocab": {"type": vocab["type"], "pre": vocab["pre"], "size": vocab["n_vocab"], "bos": vocab["bos"],
                  "eos": vocab["eos"]},
        "chat_template": vocab["has_chat_template"],
        "tied_embeddings": mf.tied_embeddings,
        "kv_cache": {"n_ctx": n_ctx, "f16_bytes": mf.kv_bytes(n_ctx, 2.0), "q8_0_bytes": mf.kv_bytes(n_ctx, 34 / 32)},
        "warnings": list(mf.warnings),
    }


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def format_summary(s: dict) -> str:
    mix = ", ".join(f"{t} x{v['tensors']} ({_mib(v['bytes'])})" for t, v in s["quant_mix"].items())
    rope = s["rope"]
    lines = [
        f"model           {s['path']}",
        f"name            {s['name']}",
        f"architecture    {s['architecture']}",
        f"parameters      {s['n_params'] / 1e6:.1f} M",
        f"tensor data     {_mib(s['file_size'])}: {mix}",
        f"layers          {s['n_layer']}",
        f"heads           {s['n_head']} (kv heads {s['n_head_kv']}), head dim {s['head_dim']}",
        f"embedding       {s['n_embd']}, feed-forward {s['n_ff']}",
        f"context (train) {s['n_ctx_train']}"
        + (f", sliding window {s['sliding_window']}" if s["sliding_window"] else ""),
        f"rope            {rope['n_rot']} dims, base {rope['freq_base']:g}, scale {rope['freq_scale']:g}"
        f" ({rope['scaling']})",
        f"vocab           {s['vocab']['type']} ({s['vocab']['pre']}), {s['vocab']['size']} tokens,"
        f" bos {s['vocab']['bos']}, eos {s['vocab']['eos']}",
        f"chat template   {'yes' if s['chat_template'] else 'no'}",
        f"embeddings      {'tied (output = token_embd)' if s['tied_embeddings'] else 'separate output'}",
        f"KV cache        {_mib(s['kv_cache']['f16_bytes'])} f16 / {_mib(s['kv_cache']['q8_0_bytes'])} q8_0"
        f" at {s['kv_cache']['n_ctx']} tokens",
    ]
    lines += [f"warning         {w}" for w in s["warnings"]]
    return "\n".join(lines)
