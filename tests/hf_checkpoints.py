"""Small synthetic Hugging Face checkpoints for the converter tests: config.json, random
weights in HF names and layouts (written with the `safetensors` package), and a real tokenizer
— a SentencePiece BPE model trained here with `sentencepiece`, or a byte-level BPE
tokenizer.json trained with `tokenizers` — plus tokenizer_config.json (special tokens, chat
template)."""
from __future__ import annotations

import functools
import io
import json
import os

import numpy as np

from pyllong.models._corpus import TEXT

CHATML = ("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n'}}{% endif %}")
PHI3_ADDED = ["<|endoftext|>", "<|assistant|>", "<|end|>", "<|system|>", "<|user|>"]
LLAMA3_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
                r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

ARCH_CLASS = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "phi2": "PhiForCausalLM",
              "phi3": "Phi3ForCausalLM", "longllama": "LongLlamaForCausalLM"}
MODEL_TYPE = {"llama": "llama", "mistral": "mistral", "phi2": "phi", "phi3": "phi3", "longllama": "longllama"}


@functools.lru_cache(maxsize=None)
def spm_model(vocab_size: int = 400) -> bytes:
    """A SentencePiece BPE model trained on the corpus, LLaMA's settings (byte fallback,
    identity normalization, dummy prefix, digits split)."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXT.splitlines()), model_writer=out, model_type="bpe", vocab_size=vocab_size,
        hard_vocab_limit=False, character_coverage=1.0, byte_fallback=True, split_digits=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    return out.getvalue()


@functools.lru_cache(maxsize=None)
def bpe_tokenizer_json(style: str, vocab_size: int = 400) -> str:
    """A byte-level BPE tokenizer.json trained on the corpus. style: gpt2 | smollm | llama3."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] if style != "llama3" else \
        ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tk = Tokenizer(models.BPE(ignore_merges=style == "llama3"))
    if style == "gpt2":
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif style == "smollm":
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    else:
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated"),
                                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(TEXT.splitlines(), trainer)
    if style == "llama3":
        bos = specials[0]
        tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                          special_tokens=[(bos, tk.token_to_id(bos))])
    return tk.to_str()


def _tensors(arch: str, c: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    E, L, H = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]
    KV = c.get("num_key_value_heads") or H
    D = c.get("head_dim") or E // H
    F, V = c["intermediate_size"], c["vocab_size"]

    def w(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def bias(n):
        return (0.1 * rng.standard_normal(n)).astype(np.float32)

    t = {"model.embed_tokens.weight": w(V, E)}
    for i in range(L):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm(E)
        if arch == "phi2":
            t[p + "input_layernorm.bias"] = bias(E)
            for x, rows in (("q", H * D), ("k", KV * D), ("v", KV * D)):
                t[p + f"self_attn.{x}_proj.weight"], t[p + f"self_attn.{x}_proj.bias"] = w(rows, E), bias(rows)
            t[p + "self_attn.dense.weight"], t[p + "self_attn.dense.bias"] = w(E, H * D), bias(E)
            t[p + "mlp.fc1.weight"], t[p + "mlp.fc1.bias"] = w(F, E), bias(F)
            t[p + "mlp.fc2.weight"], t[p + "mlp.fc2.bias"] = w(E, F), bias(E)
            continue
        if arch == "phi3":
            t[p + "self_attn.qkv_proj.weight"] = w((H + 2 * KV) * D, E)
        else:
            t[p + "self_attn.q_proj.weight"] = w(H * D, E)
            t[p + "self_attn.k_proj.weight"] = w(KV * D, E)
            t[p + "self_attn.v_proj.weight"] = w(KV * D, E)
        t[p + "self_attn.o_proj.weight"] = w(E, H * D)
        t[p + "post_attention_layernorm.weight"] = norm(E)
        if arch == "phi3":
            t[p + "mlp.gate_up_proj.weight"] = w(2 * F, E)
        else:
            t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"] = w(F, E), w(F, E)
        t[p + "mlp.down_proj.weight"] = w(E, F)
        if arch == "longllama":  # LongLLaMA saves its rotary buffer (recomputed, never converted)
            t[p + "self_attn.rotary_emb.inv_freq"] = (1e4 ** -(np.arange(0, D, 2) / D)).astype(np.float32)
    if arch == "phi2":
        t["model.final_layernorm.weight"], t["model.final_layernorm.bias"] = norm(E), bias(E)
        t["lm_head.weight"], t["lm_head.bias"] = w(V, E), bias(V)
    else:
        t["model.norm.weight"] = norm(E)
        if not c.get("tie_word_embeddings"):
            t["lm_head.weight"] = w(V, E)
    return t


def write_safetensors(directory: str, tensors: dict[str, np.ndarray], shards: int = 1) -> None:
    from safetensors.numpy import save_file

    names = list(tensors)
    if shards == 1:
        save_file(tensors, os.path.join(directory, "model.safetensors"))
        return
    weight_map = {}
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s::shards]}
        save_file(part, os.path.join(directory, fname))
        weight_map.update({n: fname for n in part})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)


def make_checkpoint(directory, arch: str = "llama", tokenizer: str = "spm", *, dtype=np.float32, shards: int = 1,
                    seed: int = 0, chat_template: str | None = CHATML, **config_overrides) -> str:
    """Write a checkpoint folder; returns its path. tokenizer: spm | gpt2 | smollm | llama3."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    tok_config: dict = {}
    if tokenizer == "spm":
        with open(os.path.join(directory, "tokenizer.model"), "wb") as f:
            f.write(spm_model())
        import sentencepiece as spm

        n_vocab = spm.SentencePieceProcessor(model_proto=spm_model()).get_piece_size()
        tok_config.update(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True)
        if arch == "phi3":
            tok_config["added_tokens_decoder"] = {
                str(n_vocab + i): {"content": t, "special": True} for i, t in enumerate(PHI3_ADDED)}
            tok_config["eos_token"] = "<|endoftext|>"
            n_vocab += len(PHI3_ADDED)
        n_vocab += 3  # padding rows, as real models round their vocabulary up
    else:
        text = bpe_tokenizer_json(tokenizer)
        with open(os.path.join(directory, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(text)
        n_vocab = len(json.loads(text)["model"]["vocab"])
        if tokenizer == "llama3":
            tok_config.update(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
        else:
            tok_config.update(bos_token="<|endoftext|>", eos_token="<|im_end|>")
    if chat_template is not None:
        tok_config["chat_template"] = chat_template
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump(tok_config, f)

    config = {"architectures": [ARCH_CLASS[arch]], "model_type": MODEL_TYPE[arch], "hidden_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
              "vocab_size": n_vocab, "max_position_embeddings": 256, "rope_theta": 10000.0,
              "tie_word_embeddings": False}
    if arch == "phi2":
        config.update(num_key_value_heads=4, partial_rotary_factor=0.5, layer_norm_eps=1e-5, hidden_act="gelu_new")
    else:
        config.update(rms_norm_eps=1e-5, hidden_act="silu")
    if arch == "longllama":  # OpenLLaMA-shaped: multi-head attention, no num_key_value_heads, no rope_theta
        del config["num_key_value_heads"], config["rope_theta"]
        config.update(mem_layers=[1], last_context_length=32, max_position_embeddings=64, mem_positionals=True,
                      mem_dtype="bfloat16")
    config.update(config_overrides)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    tensors = _tensors(arch, config, np.random.default_rng(seed))
    write_safetensors(directory, {k: v.astype(dtype) for k, v in tensors.items()}, shards)
    return directory
