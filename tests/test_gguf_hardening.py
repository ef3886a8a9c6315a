"""Hardening checklist items 1-25 (../shared/spec/gguf-hardening.md): each hostile input is
rejected with pyllong.GGUFError naming the field and byte offset, never a crash."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

import pyllong
from raw_gguf import (ARRAY, F32, GGUF, I32, KV, STRING, T_F16, T_F32, T_Q4_K, T_Q8_0, U8, U32, U64, Tensor,
                      byte_level_chars, gguf_string, kv, kv_array, tiny_llama)


def rejects(data: bytes, *fragments: str, model: bool = False) -> str:
    load = pyllong.ModelFile.from_bytes if model else pyllong.GGUFFile.from_bytes
    with pytest.raises(pyllong.GGUFError) as e:
        load(data)
    msg = str(e.value)
    assert "byte offset" in msg, msg
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


def test_baseline_tiny_model_is_valid():
    m = pyllong.ModelFile.from_bytes(tiny_llama().build())
    assert m.hparams["n_layer"] == 1 and m.vocab["n_vocab"] == 259
    assert m.warnings == []


# --- 1. too short -------------------------------------------------------------------------
@pytest.mark.parametrize("data", [b"", b"GG", b"GGU"])
def test_01_shorter_than_magic(data):
    rejects(data, "magic", "too short")


def test_01_shorter_than_header():
    rejects(b"GGUF" + struct.pack("<I", 3) + b"\0" * 8, "header", "24-byte")


# --- 2. wrong magic -----------------------------------------------------------------------
@pytest.mark.parametrize("data", [
    b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
    bytes.fromhex("ffd8ffe000104a464946") + b"\0" * 30,
    np.random.default_rng(2).integers(0, 256, 64, dtype=np.uint8).tobytes(),
])
def test_02_bad_magic(data):
    rejects(data, "magic", "not a GGUF file")


# --- 3. version -----------------------------------------------------------------------------
@pytest.mark.parametrize("version,hint", [(0, ""), (1, "obsolete"), (4, ""), (0x03000000, "big-endian")])
def test_03_version(version, hint):
    g = tiny_llama()
    g.version = version
    rejects(g.build(), "version", hint)


def test_03_versions_2_and_3_accepted():
    for v in (2, 3):
        g = tiny_llama()
        g.version = v
        assert pyllong.GGUFFile.from_bytes(g.build()).version == v


# --- 4. counts ------------------------------------------------------------------------------
@pytest.mark.parametrize("field_name,value", [
    ("n_tensors", -1), ("n_tensors", 2**63), ("n_tensors", 2**64 // 40 + 1), ("n_tensors", 10**6),
    ("n_kv", -1), ("n_kv", 2**62), ("n_kv", 10**6),
])
def test_04_counts(field_name, value):
    g = tiny_llama()
    setattr(g, field_name, value)
    rejects(g.build(), field_name, "cannot fit")


# --- 5. key length ----------------------------------------------------------------------------
def test_05_key_length_beyond_file():
    g = GGUF(kvs=[KV(b"k", U32, struct.pack("<I", 1))])
    data = bytearray(g.build())
    data[24:32] = struct.pack("<Q", 10**9)
    rejects(bytes(data), "kv[0].key", "exceeds")


def test_05_key_length_over_cap():
    g = GGUF(kvs=[kv("x" * 70000, U32, 1)])
    rejects(g.build(), "kv[0].key", "cap")


# --- 6. empty or duplicate key -------------------------------------------------------------------
def test_06_empty_key():
    rejects(GGUF(kvs=[kv("", U32, 1)]).build(), "kv[0].key", "empty key")


def test_06_key_not_utf8():
    rejects(GGUF(kvs=[kv(b"a\xfe", U32, 1)]).build(), "kv[0].key", "not valid UTF-8")


def test_06_duplicate_key():
    g = tiny_llama()
    g.kvs.append(kv("general.name", STRING, "again"))
    rejects(g.build(), "duplicate key", "general.name")


# --- 7. value type ------------------------------------------------------------------------------
@pytest.mark.parametrize("vtype", [13, 0xFFFFFFFF, 1000])
def test_07_bad_value_type(vtype):
    rejects(GGUF(kvs=[KV("a.b", vtype, b"\0" * 16)]).build(), "'a.b' type", "not a GGUF type")


def test_07_array_of_array():
    rejects(GGUF(kvs=[KV("a.b", ARRAY, struct.pack("<IQ", ARRAY, 1) + b"\0" * 16)]).build(),
            "'a.b'", "arrays of arrays")


# --- 8. array counts --------------------------------------------------------------------------------
@pytest.mark.parametrize("elem,count", [(U32, 2**62), (U32, 2**64 - 1), (U64, 2**61), (U8, 10**6)])
def test_08_array_count_overflow(elem, count):
    rejects(GGUF(kvs=[kv_array("a.b", elem, [1, 2], count=count)]).build(), "'a.b' count", "exceeds")


def test_08_string_array_count():
    rejects(GGUF(kvs=[kv_array("a.b", STRING, ["x"], count=2**61)]).build(), "'a.b' count", "8 bytes each")


# --- 9. string length -------------------------------------------------------------------------------
@pytest.mark.parametrize("length", [2**64 - 1, 2**63, 1000])
def test_09_string_length(length):
    g = GGUF(kvs=[KV("a.b", STRING, gguf_string("hello", length=length))])
    rejects(g.build(), "'a.b'", "string length")


def test_09_string_in_array_length():
    g = GGUF(kvs=[KV("a.b", ARRAY, struct.pack("<IQ", STRING, 1) + gguf_string("x", length=2**64 - 1))])
    rejects(g.build(), "'a.b'[0]", "string length")


# --- 10. alignment ------------------------------------------------------------------------------------
@pytest.mark.parametrize("vtype,value,frag", [
    (U64, 32, "must be UINT32"), (STRING, "32", "must be UINT32"), (U32, 0, "power of two"),
    (U32, 48, "power of two"), (U32, 0x80000000, "power of two"),
])
def test_10_alignment(vtype, value, frag):
    g = tiny_llama()
    g.kvs.insert(0, kv("general.alignment", vtype, value))
    rejects(g.build(), "general.alignment", frag)


def test_10_alignment_honoured():
    g = tiny_llama()
    g.kvs.insert(0, kv("general.alignment", U32, 64))
    g.alignment = 64
    f = pyllong.GGUFFile.from_bytes(g.build())
    assert f.alignment == 64 and all(t.offset % 64 == 0 for t in f.tensors.values())


# --- 11. typed-consumer confusion -----------------------------------------------------------------------
def _replace(g: GGUF, new: KV) -> bytes:
    g.kvs = [new if k.key == new.key else k for k in g.kvs]
    if not any(k.key == new.key for k in g.kvs):
        g.kvs.append(new)
    return g.build()


@pytest.mark.parametrize("new,frag", [
    (kv_array("tokenizer.ggml.scores", U8, [1] * 259), "ARRAY of FLOAT32"),
    (kv_array("tokenizer.ggml.token_type", F32, [1.0] * 259), "ARRAY of INT32"),
    (kv_array("tokenizer.ggml.token_type", U8, [1] * 259), "ARRAY of INT32"),
    (kv("general.architecture", U32, 7), "expected STRING"),
    (kv("llama.block_count", STRING, "1"), "expected an integer"),
    (kv("tokenizer.ggml.tokens", STRING, "abc"), "ARRAY of STRING"),
    (kv_array("tokenizer.ggml.scores", F32, [0.0] * 100), "100 entries for 259 tokens"),
    (kv_array("tokenizer.ggml.token_type", I32, [1] * 258), "258 entries for 259 tokens"),
    (kv_array("tokenizer.ggml.token_type", I32, [9] * 259), "valid: 0..6"),
])
def test_11_typed_consumer(new, frag):
    rejects(_replace(tiny_llama(), new), new.key, frag, model=True)


# --- 12. hyper-parameters -------------------------------------------------------------------------------
@pytest.mark.parametrize("key,vtype,value,frag", [
    ("llama.block_count", U32, 0, "outside the valid range"),
    ("llama.block_count", U32, 2**31, "outside the valid range"),
    ("llama.embedding_length", U32, 0, "outside the valid range"),
    ("llama.attention.head_count", U32, 0, "outside the valid range"),
    ("llama.attention.head_count_kv", U32, 0, "outside the valid range"),
    ("llama.attention.head_count_kv", U32, 3, "not a multiple of head_count_kv"),
    ("llama.attention.head_count", U32, 5, "not a multiple of head_count"),
    ("llama.rope.dimension_count", U32, 16, "exceeds the head dimension"),
    ("llama.context_length", U32, 0, "outside the valid range"),
    ("llama.feed_forward_length", U32, 0, "outside the valid range"),
    ("llama.vocab_size", U32, 300, "disagrees"),
    ("llama.attention.layer_norm_rms_epsilon", F32, float("nan"), "finite"),
    ("llama.attention.layer_norm_rms_epsilon", F32, 0.0, "finite number in (0, 1]"),
    ("llama.attention.layer_norm_rms_epsilon", F32, -1e-5, "finite number in (0, 1]"),
])
def test_12_hparams(key, vtype, value, frag):
    rejects(_replace(tiny_llama(), kv(key, vtype, value)), key, frag, model=True)


def test_12_vocab_inconsistent_with_embedding_shape():
    g = tiny_llama()
    t = g.tensor("token_embd.weight")
    t.ne = [32, 258]
    t.data = t.data[: 32 * 258 * 4]
    rejects(g.build(), "token_embd.weight", "does not match (32, 259)", model=True)


# --- 13. vocabulary ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                 "tokenizer.ggml.eot_token_id", "tokenizer.ggml.padding_token_id",
                                 "tokenizer.ggml.unknown_token_id"])
@pytest.mark.parametrize("vtype,value", [(I32, -1), (U32, 259), (U32, 2**32 - 1)])
def test_13_special_token_ids(key, vtype, value):
    rejects(_replace(tiny_llama(), kv(key, vtype, value)), key, "outside the vocabulary", model=True)


def _spm(tokens, types):
    g = tiny_llama()
    n = len(tokens)
    for new in [kv("tokenizer.ggml.model", STRING, "llama"), kv_array("tokenizer.ggml.tokens", STRING, tokens),
                kv_array("tokenizer.ggml.token_type", I32, types), kv_array("tokenizer.ggml.scores", F32, [0.0] * n),
                kv("tokenizer.ggml.bos_token_id", U32, 1), kv("tokenizer.ggml.eos_token_id", U32, 2)]:
        g.kvs = [new if k.key == new.key else k for k in g.kvs]
        if not any(k.key == new.key for k in g.kvs):
            g.kvs.append(new)
    g.drop_kv("tokenizer.ggml.merges")
    t = g.tensor("token_embd.weight")
    t.ne = [32, n]
    t.data = np.zeros(32 * n, "<f4").tobytes()
    return g.build()


def _spm_vocab():
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["▁the", "▁a"]
    types = [2, 3, 3] + [6] * 256 + [1, 1]
    return tokens, types


def test_13_spm_baseline_valid():
    tokens, types = _spm_vocab()
    assert pyllong.ModelFile.from_bytes(_spm(tokens, types)).vocab["type"] == "llama"


@pytest.mark.parametrize("bad", ["<0x-1>", "<0xZZ>", "<0x1>", "0x41"])
def test_13_malformed_byte_token(bad):
    tokens, types = _spm_vocab()
    tokens[3 + 0x41] = bad
    rejects(_spm(tokens, types), "tokenizer.ggml.tokens", "byte token", model=True)


def test_13_missing_byte_tokens():
    tokens, types = _spm_vocab()
    del tokens[3 + 7], types[3 + 7]
    rejects(_spm(tokens, types), "tokenizer.ggml.tokens", "255 of the 256", model=True)


def test_13_duplicate_token():
    g = tiny_llama()
    tokens = byte_level_chars() + ["Ġt", "Ġt", "<|endoftext|>"]
    rejects(_replace(g, kv_array("tokenizer.ggml.tokens", STRING, tokens)), "tokenizer.ggml.tokens", "duplicates",
            model=True)


def test_13_token_over_cap():
    tokens = byte_level_chars() + ["x" * 70000, "he", "<|endoftext|>"]
    rejects(_replace(tiny_llama(), kv_array("tokenizer.ggml.tokens", STRING, tokens)), "tokenizer.ggml.tokens",
            "over the cap", model=True)


@pytest.mark.parametrize("merges,frag", [
    (["Ġ t", "q zzz"], "not in the vocabulary"),
    (["Ġt"], "not of the form"),
    (["Ġ t x"], "not of the form"),
    (["Ġ "], "not of the form"),
])
def test_13_merges(merges, frag):
    rejects(_replace(tiny_llama(), kv_array("tokenizer.ggml.merges", STRING, merges)), "tokenizer.ggml.merges", frag,
            model=True)


@pytest.mark.parametrize("key,value,frag", [
    ("tokenizer.ggml.model", "t5", "not supported"), ("tokenizer.ggml.pre", "made-up", "not supported"),
])
def test_13_unknown_tokenizer(key, value, frag):
    rejects(_replace(tiny_llama(), kv(key, STRING, value)), key, frag, model=True)


# --- 14. chat template: capped here, rendered only in a sandbox (tests/test_chat_template.py) -----------------
def test_14_chat_template_size_cap():
    rejects(_replace(tiny_llama(), kv("tokenizer.chat_template", STRING, "{{ x }}" * 60000)),
            "tokenizer.chat_template", "cap", model=True)


# --- 15. tensor names ---------------------------------------------------------------------------------------
def test_15_tensor_name_too_long():
    g = tiny_llama()
    g.tensors[0].name = "t" * 64
    rejects(g.build(), "tensor[0].name", "exceeds the maximum of 63")


def test_15_tensor_name_beyond_file():
    g = GGUF(tensors=[Tensor("a", [1], T_F32, b"\0" * 4)])
    data = bytearray(g.build())
    data[24:32] = struct.pack("<Q", 2**40)
    rejects(bytes(data), "tensor[0].name", "exceeds")


def test_15_tensor_name_not_utf8():
    rejects(GGUF(tensors=[Tensor(b"\xfe\xff", [1], T_F32, b"\0" * 4)]).build(), "tensor[0].name", "not valid UTF-8")


def test_15_duplicate_tensor_names():
    g = tiny_llama()
    g.tensors[1].name = g.tensors[0].name
    rejects(g.build(), "duplicate tensor name")


# --- 16. dims -----------------------------------------------------------------------------------------------
def test_16_too_many_dims():
    g = GGUF(tensors=[Tensor("a", [1, 1, 1, 1, 1], T_F32, b"\0" * 4)])
    rejects(g.build(), "n_dims", "outside 1..4")


@pytest.mark.parametrize("ne", [[-1], [4, -2], [0], [4, 0]])
def test_16_17_nonpositive_dims(ne):
    rejects(GGUF(tensors=[Tensor("a", ne, T_F32, b"\0" * 16)]).build(), "ne[", "must be positive")


# --- 17. element count overflow -------------------------------------------------------------------------------
def test_17_element_count_overflow():
    rejects(GGUF(tensors=[Tensor("a", [2**32, 2**32], T_F32, b"")]).build(), "ne[1]", "overflows int64")


# --- 18. type allow-list ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ttype", [4, 5, 9, 15, 16, 31, 32, 33, 36, 37, 38, 39, 2**31])
def test_18_unsupported_type(ttype):
    rejects(GGUF(tensors=[Tensor("a", [256], ttype, b"\0" * 1024)]).build(), "type", "not supported")


# --- 19. block multiple ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ttype,ne0", [(T_Q8_0, 33), (T_Q8_0, 16), (T_Q4_K, 32), (T_Q4_K, 300)])
def test_19_row_not_block_multiple(ttype, ne0):
    rejects(GGUF(tensors=[Tensor("a", [ne0], ttype, b"\0" * 1024)]).build(), "ne[0]", "block size")


# --- 20. byte-size overflow ----------------------------------------------------------------------------------------
def test_20_byte_size_overflow():
    # 2^62 F32 elements fit int64, but 2^64 bytes overflow size_t.
    rejects(GGUF(tensors=[Tensor("a", [2**31, 2**31], T_F32, b"")]).build(), "byte size overflows")


def test_20_padding_wrap():
    rejects(GGUF(tensors=[Tensor("a", [8], T_F32, b"\0" * 32, offset=2**64 - 32)]).build(), "offset")


# --- 21. offsets ----------------------------------------------------------------------------------------------------
def test_21_unaligned_offset():
    g = tiny_llama()
    g.tensors[1].offset = 32 * 259 * 4 + 4
    rejects(g.build(), "output_norm.weight' offset", "not a multiple of the alignment")


def test_21_aliasing_offset():
    g = tiny_llama()
    g.tensors[1].offset = 0
    rejects(g.build(), "output_norm.weight' offset", "overlaps")


def test_21_offset_plus_size_overflow():
    g = GGUF(tensors=[Tensor("a", [8], T_F32, b"\0" * 32), Tensor("b", [8], T_F32, b"\0" * 32, offset=2**64 - 64)])
    rejects(g.build(), "'b' offset")


@pytest.mark.parametrize("cut", [1, 100, 4000])
def test_21_truncated_download(cut):
    data = tiny_llama().build()
    rejects(data[:-cut], "runs past the end", "truncated")


def test_21_truncated_download_on_disk(tmp_path):
    # Under mmap a truncated file would SIGBUS on first touch; the offsets are checked first.
    p = tmp_path / "cut.gguf"
    p.write_bytes(tiny_llama().build()[:-500])
    with pytest.raises(pyllong.GGUFError, match="truncated"):
        pyllong.GGUFFile(str(p))


# --- 22. data section -----------------------------------------------------------------------------------------------
def test_22_data_section_beyond_eof():
    # header 24 + tensor info 33 = 57 bytes; the data section starts at the next multiple of 32.
    data = GGUF(tensors=[Tensor("a", [1], T_F32, b"\0" * 4)]).build()
    assert pyllong.GGUFFile.from_bytes(data).data_offset == 64
    rejects(data[:60], "data section", "beyond the end")


# --- 23. model tensors ---------------------------------------------------------------------------------------------
def test_23_missing_required_tensor():
    g = tiny_llama()
    g.tensors = [t for t in g.tensors if t.name != "blk.0.ffn_up.weight"]
    with pytest.raises(pyllong.GGUFError, match="required tensor 'blk.0.ffn_up.weight' is missing"):
        pyllong.ModelFile.from_bytes(g.build())


def test_23_wrong_shape():
    g = tiny_llama()
    t = g.tensor("blk.0.attn_k.weight")
    t.ne = [16, 32]
    rejects(g.build(), "blk.0.attn_k.weight", "does not match (32, 16)", model=True)


def test_23_unknown_tensor_warns():
    g = tiny_llama()
    g.tensors.append(Tensor("blk.0.mystery.weight", [4], T_F32, b"\0" * 16))
    m = pyllong.ModelFile.from_bytes(g.build())
    assert any("mystery" in w for w in m.warnings)


def test_23_wrong_tensor_count():
    g = tiny_llama()
    g.n_tensors = len(g.tensors) + 1
    with pytest.raises(pyllong.GGUFError, match="byte offset"):
        pyllong.GGUFFile.from_bytes(g.build())


def test_23_norm_must_be_f32():
    g = tiny_llama()
    t = g.tensor("blk.0.ffn_norm.weight")
    t.ttype, t.data = T_F16, np.ones(32, "<f2").tobytes()
    rejects(g.build(), "blk.0.ffn_norm.weight", "norm weights must be F32", model=True)


# --- 24. NaN/Inf scales and norms ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.float16("nan"), np.float16("inf"), np.float16("-inf")])
def test_24_nonfinite_block_scale(bad):
    g = tiny_llama()
    t = g.tensor("blk.0.attn_q.weight")
    data = bytearray(t.data)
    data[34 * 5: 34 * 5 + 2] = bad.tobytes()
    t.data = bytes(data)
    rejects(g.build(), "blk.0.attn_q.weight' data", "block 5", model=True)
    # The check is a load-time option; without it the file opens.
    pyllong.ModelFile.from_bytes(g.build(), check_data=False)


def test_24_nonfinite_norm():
    g = tiny_llama()
    t = g.tensor("output_norm.weight")
    w = np.ones(32, "<f4")
    w[3] = np.inf
    t.data = w.tobytes()
    rejects(g.build(), "output_norm.weight' data", "element 3", model=True)


# --- 25. split files ---------------------------------------------------------------------------------------------------
def _write_split(tmp_path, count=2, tensors_count=None, second_no=1, second_count=None, skip_second=False):
    full = tiny_llama()
    half = len(full.tensors) // 2
    parts = [full.tensors[:half], full.tensors[half:]]
    paths = []
    for i in range(min(count, 2)):  # count=3 leaves the third shard missing
        g = GGUF()
        g.kvs = (list(full.kvs) if i == 0 else []) + [
            kv("split.no", U32, i if i == 0 else second_no),
            kv("split.count", U32, count if i == 0 else (second_count or count)),
            kv("split.tensors.count", I32, tensors_count or len(full.tensors)),
        ]
        g.tensors = parts[i]
        p = tmp_path / f"m-{i + 1:05d}-of-{count:05d}.gguf"
        if not (skip_second and i == 1):
            p.write_bytes(g.build())
        paths.append(p)
    return paths


def test_25_split_valid(tmp_path):
    paths = _write_split(tmp_path)
    m = pyllong.ModelFile(str(paths[0]))
    assert m.n_shards == 2 and m.hparams["n_layer"] == 1


def test_25_split_missing_shard(tmp_path):
    paths = _write_split(tmp_path, skip_second=True)
    with pytest.raises(pyllong.GGUFError, match="shard 2 of 2 is missing"):
        pyllong.ModelFile(str(paths[0]))


@pytest.mark.parametrize("kw,frag", [
    ({"second_no": 0}, "expected shard 2 of 2"), ({"second_count": 3}, "expected shard 2 of 2"),
    ({"tensors_count": 99}, "declares 99 tensors"), ({"count": 3}, "shard 3 of 3 is missing"),
])
def test_25_split_inconsistent(tmp_path, kw, frag):
    paths = _write_split(tmp_path, **kw)
    with pytest.raises(pyllong.GGUFError, match=frag):
        pyllong.ModelFile(str(paths[0]))


def test_25_split_open_second_shard(tmp_path):
    paths = _write_split(tmp_path)
    with pytest.raises(pyllong.GGUFError, match="open the first shard"):
        pyllong.ModelFile(str(paths[1]))


def test_25_split_no_out_of_range():
    g = tiny_llama()
    g.kvs += [kv("split.no", U32, 5), kv("split.count", U32, 2)]
    rejects(g.build(), "split.no", "outside [0, 2)", model=True)


def test_hostile_bytes_in_messages_do_not_break_the_error():
    # The error quotes the file's bytes; invalid UTF-8 there must still give a GGUFError.
    g = tiny_llama()
    g.kvs = [KV("general.architecture", STRING, gguf_string(b"\xff\xfe-arch")) if k.key == "general.architecture"
             else k for k in g.kvs]
    rejects(g.build(), "general.architecture", "-arch' is not supported", model=True)
