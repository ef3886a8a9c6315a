"""A Hugging Face tokenizer -> GGUF `tokenizer.*` metadata, as llama.cpp stores it.

* SentencePiece (`tokenizer.model`, read with the `sentencepiece` package): model "llama",
  pieces with their scores and types; added tokens from `tokenizer_config.json`
  (`added_tokens_decoder`), `tokenizer.json` (`added_tokens`) or `added_tokens.json` replace
  or extend the pieces (Phi-3's `<|user|>` ...).
* Byte-level BPE (`tokenizer.json`, model type BPE): model "gpt2", the vocabulary by id, the
  merges, and `tokenizer.ggml.pre` recognised from the pre-tokenizer definition — only the
  pre-tokenizers pyllong implements are accepted (gpt-2 / phi-2, smollm, llama-bpe), since a
  wrong guess would tokenize differently without any error.

Both are padded with unused `[PADn]` tokens up to the model's embedding rows. Special token
ids come from `tokenizer_config.json`, then `config.json`, then the SentencePiece model;
add_bos/add_eos from `tokenizer_config.json` (else the tokenizer's own default), and the chat
template from `tokenizer_config.json`, `chat_template.jinja` or `chat_template.json`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..errors import ConvertError

# llama.cpp token types (tokenizer.ggml.token_type)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
                r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
SPECIAL_KINDS = ("bos", "eos", "unk", "pad", "sep")


@dataclass
class TokenizerMeta:
    """Everything written under `tokenizer.*`."""
    model: str                                  # "llama" (SPM) | "gpt2" (byte-level BPE)
    pre: str
    tokens: list[str]
    types: list[int]
    scores: list[float] | None = None           # SPM only
    merges: list[str] | None = None             # BPE only, "A B"
    special_ids: dict[str, int] = field(default_factory=dict)
    add_bos: bool = False
    add_eos: bool = False
    add_space_prefix: bool | None = None
    chat_templates: dict[str, str] = field(default_factory=dict)  # "default" -> template


def _load_json(directory: str, name: str) -> dict:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConvertError(f"{path}: expected a JSON object")
    return data


def _token_content(entry) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("content"), str):
        return entry["content"]
    return None


def _added_tokens(directory: str, tok_json: dict, tok_config: dict) -> list[tuple[int, str, bool]]:
    """(id, text, special) of every added token the checkpoint declares."""
    out = {}
    for text, id_ in _load_json(directory, "added_tokens.json").items():  # {"<|user|>": 32010}
        out[int(id_)] = (text, False)
    for id_, entry in (tok_config.get("added_tokens_decoder") or {}).items():
        out[int(id_)] = (entry["content"], bool(entry.get("special")))
    for entry in tok_json.get("added_tokens") or []:
        out[int(entry["id"])] = (entry["content"], bool(entry.get("special")))
    return [(i, text, special) for i, (text, special) in sorted(out.items())]


def _pad(tokens: list[str], types: list[int], scores: list[float] | None, n_vocab: int) -> None:
    while len(tokens) < n_vocab:
        tokens.append(f"[PAD{len(tokens)}]")
        types.append(UNUSED)
        if scores is not None:
            scores.append(-10000.0)


def _apply_added(tokens, types, scores, added, n_vocab: int) -> None:
    """Put the added tokens at their ids: CONTROL when special, else USER_DEFINED."""
    index = {t: i for i, t in enumerate(tokens)}
    for i, text, special in added:
        if i >= n_vocab:
            raise ConvertError(f"added token {text!r} has id {i}, outside the model's {n_vocab} embedding rows")
        if index.get(text, i) != i:
            raise ConvertError(f"added token {text!r} (id {i}) duplicates token {index[text]}")
        index.pop(tokens[i], None)
        tokens[i], index[text] = text, i
        types[i] = CONTROL if special else USER_DEFINED
        if scores is not None:
            scores[i] = -1000.0


# ---------------------------------------------------------------------------------------------
# SentencePiece

def _spm(directory: str, n_vocab: int, tok_json: dict, tok_config: dict) -> TokenizerMeta:
    try:
        import sentencepiece
    except ImportError:
        raise ConvertError("reading tokenizer.model needs the sentencepiece package: "
                           "pip install 'pyllong[convert]'") from None
    path = os.path.join(directory, "tokenizer.model")
    sp = sentencepiece.SentencePieceProcessor()
    try:
        sp.Load(path)
    except (OSError, RuntimeError) as e:
        raise ConvertError(f"{path}: not a SentencePiece model ({e})") from None
    n = sp.get_piece_size()
    if n > n_vocab:
        raise ConvertError(f"{path} has {n} pieces but the model has only {n_vocab} embedding rows "
                           f"(config.json vocab_size); the tokenizer does not belong to these weights")
    tokens, types, scores = [], [], []
    for i in range(n):
        tokens.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        types.append(UNKNOWN if sp.is_unknown(i) else CONTROL if sp.is_control(i) else BYTE if sp.is_byte(i)
                     else UNUSED if sp.is_unused(i) else NORMAL)
    _pad(tokens, types, scores, n_vocab)
    _apply_added(tokens, types, scores, _added_tokens(directory, tok_json, tok_config), n_vocab)
    defaults = {k: v for k, v in (("bos", sp.bos_id()), ("eos", sp.eos_id()), ("unk", sp.unk_id()),
                                  ("pad", sp.pad_id())) if v >= 0}
    # pyllong implements SentencePiece without remove_extra_whitespaces (as LLaMA's tokenizer
    # is trained); a model that collapses spaces would tokenize differently without an error.
    probe = "x  y"
    if sp.decode(sp.encode(probe)) != probe:
        raise ConvertError(f"{path} collapses repeated spaces (remove_extra_whitespaces); only "
                           f"identity normalization, as in LLaMA's tokenizer, is supported")
    # add_dummy_prefix of the normalizer spec, observed instead of parsing the protobuf.
    pieces = sp.encode("a", out_type=str)
    add_space_prefix = bool(pieces) and pieces[0].startswith("\u2581")
    meta = TokenizerMeta("llama", "default", tokens, types, scores=scores, add_space_prefix=add_space_prefix)
    meta.special_ids = defaults
    meta.add_bos = True   # LlamaTokenizer's default
    return meta


# ---------------------------------------------------------------------------------------------
# Byte-level BPE (tokenizer.json)

def _describe(pre) -> str:
    return json.dumps(pre, sort_keys=True)[:300]


def _pre_tokenizer_name(pre, arch: str) -> str:
    """tokenizer.ggml.pre for a tokenizer.json pre_tokenizer, or ConvertError."""
    def byte_level(p, use_regex):
        return (isinstance(p, dict) and p.get("type") == "ByteLevel" and bool(p.get("use_regex", True)) == use_regex
                and not p.get("add_prefix_space", False))

    if byte_level(pre, True):
        return "phi-2" if arch == "phi2" else "gpt-2"
    steps = pre.get("pretokenizers") if isinstance(pre, dict) and pre.get("type") == "Sequence" else None
    if steps and len(steps) == 2:
        first, second = steps
        if first.get("type") == "Digits" and first.get("individual_digits") and byte_level(second, True):
            return "smollm"
        if (first.get("type") == "Split" and (first.get("pattern") or {}).get("Regex") == LLAMA3_REGEX
                and str(first.get("behavior", "")).lower() == "isolated" and byte_level(second, False)):
            return "llama-bpe"
    raise ConvertError(f"tokenizer.json pre-tokenizer {_describe(pre)} is not one pyllong implements "
                       f"(GPT-2 ByteLevel, SmolLM digits + ByteLevel, LLaMA-3 split + ByteLevel); "
                       f"a guess would tokenize differently without any error")


def _bpe(directory: str, n_vocab: int, tok_json: dict, tok_config: dict, arch: str) -> TokenizerMeta:
    path = os.path.join(directory, "tokenizer.json")
    model = tok_json.get("model") or {}
    if model.get("type") != "BPE":
        raise ConvertError(f"{path}: tokenizer model {model.get('type')!r} is not supported (byte-level BPE only; "
                           f"SentencePiece models need tokenizer.model)")
    if model.get("byte_fallback") or (tok_json.get("pre_tokenizer") or {}).get("type") == "Metaspace":
        raise ConvertError(f"{path} is a SentencePiece-style tokenizer; put its tokenizer.model beside it")
    if tok_json.get("normalizer") is not None:
        raise ConvertError(f"{path}: normalizer {_describe(tok_json['normalizer'])} is not supported "
                           f"(byte-level BPE tokenizers have none)")
    pre = _pre_tokenizer_name(tok_json.get("pre_tokenizer"), arch)
    # pyllong's LLaMA-3 pre-tokenizer emits whole in-vocabulary words before merging
    # (HF ignore_merges), the others never do; a file that says otherwise would tokenize differently.
    if bool(model.get("ignore_merges", False)) != (pre == "llama-bpe"):
        raise ConvertError(f"{path}: ignore_merges = {model.get('ignore_merges', False)} with the {pre} "
                           f"pre-tokenizer is not supported (llama-bpe needs true, the others false)")
    vocab = model.get("vocab") or {}
    added = _added_tokens(directory, tok_json, tok_config)
    size = max([n_vocab] + [i + 1 for i in vocab.values()] + [i + 1 for i, _, _ in added])
    if size > n_vocab:
        raise ConvertError(f"{path} has token ids up to {size - 1} but the model has only {n_vocab} embedding rows")
    tokens: list[str | None] = [None] * n_vocab
    for text, i in vocab.items():
        tokens[i] = text
    types = [NORMAL if t is not None else UNUSED for t in tokens]
    tokens = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
    _apply_added(tokens, types, None, added, n_vocab)
    merges = []
    for m in model.get("merges") or []:
        a, b = m.split(" ") if isinstance(m, str) else m
        if " " in a or " " in b:
            raise ConvertError(f"{path}: merge {m!r} contains a space, which GGUF merges cannot represent")
        merges.append(f"{a} {b}")
    meta = TokenizerMeta("gpt2", pre, tokens, types, merges=merges, add_space_prefix=False)
    if isinstance(model.get("unk_token"), str) and model["unk_token"] in vocab:
        meta.special_ids["unk"] = vocab[model["unk_token"]]
    # A TemplateProcessing post-processor that starts with a special token adds it (LLaMA-3's BOS).
    post = tok_json.get("post_processor") or {}
    for proc in post.get("processors", [post]):
        single = (proc.get("single") or []) if proc.get("type") == "TemplateProcessing" else []
        if single and "SpecialToken" in single[0]:
            meta.add_bos = True
            bos_text = single[0]["SpecialToken"]["id"]
            if bos_text in tokens:
                meta.special_ids["bos"] = tokens.index(bos_text)
    return meta


# ---------------------------------------------------------------------------------------------

def _chat_templates(directory: str, tok_config: dict) -> dict[str, str]:
    tmpl = tok_config.get("chat_template")
    if tmpl is None:
        jinja = os.path.join(directory, "chat_template.jinja")
        if os.path.isfile(jinja):
            with open(jinja, encoding="utf-8") as f:
                tmpl = f.read()
        else:
            tmpl = _load_json(directory, "chat_template.json").get("chat_template")
    if tmpl is None:
        return {}
    if isinstance(tmpl, str):
        return {"default": tmpl}
    if isinstance(tmpl, list) and all(isinstance(t, dict) and {"name", "template"} <= t.keys() for t in tmpl):
        return {t["name"]: t["template"] for t in tmpl}
    raise ConvertError(f"{directory}: chat_template is neither a string nor a list of {{name, template}}")


def load_tokenizer(directory: str, n_vocab: int, arch: str, config: dict) -> TokenizerMeta:
    """The tokenizer of a checkpoint directory, for a model with n_vocab embedding rows."""
    tok_json = _load_json(directory, "tokenizer.json")
    tok_config = _load_json(directory, "tokenizer_config.json")
    try:
        if os.path.isfile(os.path.join(directory, "tokenizer.model")):
            meta = _spm(directory, n_vocab, tok_json, tok_config)
        elif tok_json:
            meta = _bpe(directory, n_vocab, tok_json, tok_config, arch)
        else:
            raise ConvertError(f"{directory}: no tokenizer (expected tokenizer.model or tokenizer.json)")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, ConvertError):
            raise
        raise ConvertError(f"{directory}: malformed tokenizer files ({type(e).__name__}: {e})") from None

    ids = {t: i for i, t in enumerate(meta.tokens)}
    for kind in SPECIAL_KINDS:
        text = _token_content(tok_config.get(f"{kind}_token"))
        if text is not None:
            if text not in ids:
                raise ConvertError(f"tokenizer_config.json: {kind}_token {text!r} is not in the vocabulary")
            meta.special_ids[kind] = ids[text]
        elif isinstance(config.get(f"{kind}_token_id"), int) and kind not in meta.special_ids:
            meta.special_ids[kind] = config[f"{kind}_token_id"]
    for kind, i in meta.special_ids.items():
        if not 0 <= i < n_vocab:
            raise ConvertError(f"{kind} token id {i} is outside the vocabulary [0, {n_vocab})")
    if isinstance(tok_config.get("add_bos_token"), bool):
        meta.add_bos = tok_config["add_bos_token"]
    if isinstance(tok_config.get("add_eos_token"), bool):
        meta.add_eos = tok_config["add_eos_token"]
    if meta.add_bos and "bos" not in meta.special_ids:
        raise ConvertError("the tokenizer adds a BOS token but none is defined "
                           "(set bos_token in tokenizer_config.json)")
    meta.chat_templates = _chat_templates(directory, tok_config)
    return meta


def write_tokenizer(writer, meta: TokenizerMeta) -> None:
    """Add the tokenizer.* keys to a gguf.GGUFWriter."""
    writer.add_tokenizer_model(meta.model)
    writer.add_tokenizer_pre(meta.pre)
    writer.add_token_list(meta.tokens)
    if meta.scores is not None:
        writer.add_token_scores(meta.scores)
    writer.add_token_types(meta.types)
    if meta.merges is not None:
        writer.add_token_merges(meta.merges)
    key_of = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id",
              "pad": "padding_token_id", "sep": "seperator_token_id"}  # sic: llama.cpp's spelling
    for kind, i in meta.special_ids.items():
        writer.add_uint32(f"tokenizer.ggml.{key_of[kind]}", i)
    writer.add_bool("tokenizer.ggml.add_bos_token", meta.add_bos)
    writer.add_bool("tokenizer.ggml.add_eos_token", meta.add_eos)
    if meta.add_space_prefix is not None:
        writer.add_bool("tokenizer.ggml.add_space_prefix", meta.add_space_prefix)
    for name, tmpl in meta.chat_templates.items():
        writer.add_string("tokenizer.chat_template" if name == "default" else f"tokenizer.chat_template.{name}", tmpl)
    others = [n for n in meta.chat_templates if n != "default"]
    if others:
        writer.add_array("tokenizer.chat_templates", others)
