"""pyllong-chat's kNN memory options (--memory, --memory-*), against the Python API.

The reference is pyllong.ChatSession over pyllong.Model(memory=pyllong.Memory(...)) at
temperature 0 — the Python path whose fot/knn attention is checked against the numpy oracle in
test_knn_memory.py / test_memory_api.py. Conversations are long enough for the window W (-c)
to overflow several times, so tokens flow into memory; replies must match token for token
(through their text), and so must what the binary's --json transcript reports of the prefix
cache (tokens evaluated) and of the memory (layers, tokens held, evictions, window fill).
--memory-save writes the very bytes Memory.save writes, and --memory-load reads them.
Subprocesses run with cwd outside the source tree.
"""
import json
import subprocess

import pytest

import pyllong
from pyllong.memory import Memory
from pyllong.models.synthetic import cached_model, preset_params

TIMEOUT = 300
THREADS = 2  # the same on both sides: decode attention splits the memory over threads

MESSAGES = ["Hi! My name is Ada.", "What is two plus two?", "Tell me a story about a cat.", "What is my name?",
            "Thanks, bye!"]


@pytest.fixture(scope="module")
def tiny():
    return cached_model(**preset_params("tiny-llama-bpe"))  # 2 layers: default memory layers 0, 1


def run(chat_bin, cwd, *args, stdin=""):
    return subprocess.run([str(chat_bin), *map(str, args)], input=stdin.encode(), capture_output=True,
                          timeout=TIMEOUT, cwd=cwd)


def transcript(chat_bin, cwd, path, W, n, messages, *args):
    res = run(chat_bin, cwd, "-m", path, "-c", W, "-t", THREADS, "-n", n, "--temp", 0, "--json", *args,
              stdin="\n".join(messages) + "\n")
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return json.loads(res.stdout.decode("utf-8")), res.stderr.decode()


def python_chat(path, W, n, messages, memory, system=None, doc=None):
    model = pyllong.Model(path, n_ctx=W, n_threads=THREADS, memory=memory)
    if doc is not None:
        model.memory.add_document(doc)
    session = pyllong.ChatSession(model, system=system, max_tokens=n, temperature=0)
    replies = []
    for m in messages:
        if m == "/reset":
            session.reset()
        else:
            replies.append(session.send(m))
    return model, replies


def assert_same(doc, model, replies):
    assert [m["content"] for m in doc["messages"][1::2]] == [str(r) for r in replies]
    assert [m["finish_reason"] for m in doc["messages"][1::2]] == [r.finish_reason for r in replies]
    assert [m["prompt_tokens"] for m in doc["messages"][1::2]] == [r.prompt_tokens for r in replies]
    st, mem = model.memory.stats(), doc["memory"]
    for key in ("layers", "mode", "k", "cap", "window", "last_context_length", "index", "distance", "tokens",
                "evicted", "local_tokens"):
        assert mem[key] == st[key], key
    # The prefix cache: the binary evaluated exactly what the Python session did (continuing
    # the conversation where it can, restarting from the documents where it cannot).
    assert doc["evaluated_tokens"] == model.n_evaluated
    assert doc["dropped_turns"] == 0  # with memory nothing is dropped


CASES = [
    ([], {}),
    (["--memory-layers", "1", "--memory-mode", "knn", "--memory-k", "4"], dict(layers=[1], mode="knn", k=4)),
    (["--memory-cap", "40", "--memory-last", "8"], dict(cap=40, last_context_length=8)),
    (["--memory-distance", "16", "--memory-layers", "0"], dict(distance=16, layers=[0])),
    (["--memory-mode", "knn", "--memory-index", "ivf", "--memory-k", "8"], dict(mode="knn", index="ivf", k=8)),
]


@pytest.mark.parametrize("args,opts", CASES, ids=lambda x: " ".join(x) if isinstance(x, list) else None)
def test_conversation_through_memory_equals_chat_session(chat_bin, tmp_path, tiny, args, opts):
    W, n = 48, 24  # every reply alone is half a window: the window flushes into memory every turn
    model, replies = python_chat(tiny, W, n, MESSAGES, Memory(**opts))
    doc, _ = transcript(chat_bin, tmp_path, tiny, W, n, MESSAGES, "--memory", *args)
    assert_same(doc, model, replies)
    assert sum(r.prompt_tokens for r in replies) > 3 * W  # the conversation is far longer than the window
    assert doc["memory"]["tokens"] > 0
    if opts.get("cap"):
        assert doc["memory"]["evicted"] > 0 and doc["memory"]["tokens"] == 40


def test_memory_changes_the_replies(chat_bin, tmp_path, tiny):
    # The options reach the attention: knn with a small k reads other keys than fot, and a
    # conversation without memory drops turns instead.
    W, n = 48, 24
    fot, _ = transcript(chat_bin, tmp_path, tiny, W, n, MESSAGES, "--memory")
    knn, _ = transcript(chat_bin, tmp_path, tiny, W, n, MESSAGES, "--memory-mode", "knn", "--memory-k", "1")
    plain, _ = transcript(chat_bin, tmp_path, tiny, W, n, MESSAGES)
    contents = [[m["content"] for m in d["messages"][1::2]] for d in (fot, knn, plain)]
    assert contents[0] != contents[1] and contents[0] != contents[2]
    assert plain["dropped_turns"] > 0 and "memory" not in plain


def test_system_prompt_reset_and_cut_replies(chat_bin, tmp_path, tiny):
    # Replies cut by -n are re-tokenized next turn (a restart from the documents where the
    # tokens differ); /reset starts a new conversation from the documents.
    msgs = MESSAGES[:3] + ["/reset"] + MESSAGES[3:]
    model, replies = python_chat(tiny, 32, 10, msgs, Memory(mode="knn", k=3), system="You are a pirate.")
    doc, err = transcript(chat_bin, tmp_path, tiny, 32, 10, msgs, "--memory-mode", "knn", "--memory-k", "3",
                          "--system", "You are a pirate.")
    assert "[conversation reset]" in err
    assert_same(doc, model, replies)


def test_memory_doc_equals_add_document(chat_bin, tmp_path, tiny):
    text = "The secret code is 4711.\r\nRemember it well. " * 12 + "\n<|im_start|> ünïcödé"
    (tmp_path / "doc.txt").write_bytes(text.encode("utf-8"))
    pytext = open(tmp_path / "doc.txt", encoding="utf-8").read()  # as `pyllong chat --memory-doc` reads it
    model, replies = python_chat(tiny, 40, 16, MESSAGES[:3], Memory(layers=[1]), doc=pytext)
    doc, err = transcript(chat_bin, tmp_path, tiny, 40, 16, MESSAGES[:3], "--memory-layers", "1",
                          "--memory-doc", "doc.txt")
    n_doc = len(model.tokenize(pytext, add_special=True, parse_special=True))
    assert f"[memory: read {n_doc} tokens of doc.txt]" in err
    assert_same(doc, model, replies)
    assert doc["memory"]["tokens"] >= n_doc


def test_real_model_conversation_equals_chat_session(chat_bin, tmp_path, smollm2_path):
    # SmolLM2 ends most replies on <|im_end|>: the next turn continues the cached conversation
    # (only the new tokens are evaluated) while older turns flow into memory.
    msgs = ["Hi! My name is Ada.", "What is two plus two?", "Name three colors.", "What is my name?"]
    model, replies = python_chat(smollm2_path, 96, 32, msgs, Memory(layers=[8, 15, 22]), system="You are brief.")
    doc, _ = transcript(chat_bin, tmp_path, smollm2_path, 96, 32, msgs, "--memory-layers", "8,15,22",
                        "--system", "You are brief.")
    assert_same(doc, model, replies)
    assert any(r.stop_token is not None for r in replies[:-1]) and doc["memory"]["tokens"] > 0
    assert model.n_evaluated < sum(r.prompt_tokens for r in replies)  # some turn re-used the cache


def test_defaults_follow_the_model(chat_bin, tmp_path):
    # Default layers: a quarter, half and three quarters deep with Python's round (half to
    # even: 6 layers -> 2, 3, 4); the GGUF's memory metadata wins over -c and the defaults.
    six = cached_model(**preset_params("tiny-llama-bpe", n_layer=6))
    doc, _ = transcript(chat_bin, tmp_path, six, 32, 4, ["hi"], "--memory")
    assert doc["memory"]["layers"] == pyllong.Model(six, n_ctx=32, memory=True).memory.layers == [2, 3, 4]
    meta = {"llama.memory.layers": [1], "llama.memory.window": 24, "llama.memory.last_context_length": 6}
    fot = cached_model(**preset_params("tiny-llama-bpe"), extra_metadata=meta)
    model, replies = python_chat(fot, 64, 16, MESSAGES[:3], Memory())
    doc, _ = transcript(chat_bin, tmp_path, fot, 64, 16, MESSAGES[:3], "--memory")
    assert (doc["memory"]["layers"], doc["memory"]["window"], doc["memory"]["last_context_length"]) == ([1], 24, 6)
    assert_same(doc, model, replies)
    doc, _ = transcript(chat_bin, tmp_path, fot, 64, 4, ["hi"], "--memory-layers", "0", "--memory-last", "5")
    assert (doc["memory"]["layers"], doc["memory"]["window"], doc["memory"]["last_context_length"]) == ([0], 24, 5)


def test_help_documents_the_memory_options(chat_bin, tmp_path):
    out = run(chat_bin, tmp_path, "--help").stdout.decode()
    lines = out.splitlines()
    for opt in ("--memory", "--memory-layers", "--memory-mode", "--memory-k", "--memory-index", "--memory-distance",
                "--memory-cap", "--memory-last", "--memory-doc", "--memory-save", "--memory-load"):
        line = next((l for l in lines if l.strip().split(" ")[0] == opt), None)
        assert line is not None and "(default: " in line, opt


def assert_one_line_error(res, code):
    err = res.stderr.decode(errors="replace")
    assert res.returncode == code, (res.returncode, err)
    assert err.startswith("pyllong-chat: ") and err.count("\n") == 1, err
    assert res.stdout == b""


@pytest.mark.parametrize("args,frag", [
    (["--memory-mode", "dense"], "fot or knn"),
    (["--memory-k", "0"], "--memory-k"),
    (["--memory-k", "x"], "expects an integer"),
    (["--memory-layers", "a,b"], "layer indices like 6,12,18"),
    (["--memory-layers", ""], "layer indices"),
    (["--memory-layers", "-1"], ">= 0"),
    (["--memory-cap", "0"], "--memory-cap"),
    (["--memory-last", "-3"], "--memory-last"),
    (["--memory-distance", "0"], "--memory-distance"),
    (["--memory-index", "hnsw"], "exact or ivf"),
    (["--memory-layers"], "needs a value"),
    (["--memory=1"], "takes no value"),
    (["--memory-mode", "fot", "--memory-index", "ivf"], "--memory-mode knn"),
    (["--memory", "--evict", "shift"], "--evict rebuild"),
    (["--memory", "--self-extend", "2,8"], "--self-extend"),
    (["--memory", "--transition"], "Attention Transition"),
])
def test_bad_memory_options_exit_2(chat_bin, tmp_path, tiny, args, frag):
    res = run(chat_bin, tmp_path, "-m", tiny, "-p", "hi", *args)
    assert_one_line_error(res, 2)
    assert frag in res.stderr.decode()


@pytest.mark.parametrize("args,frag", [
    (["--memory-layers", "0,2"], "outside this model's layers [0, 2)"),
    (["-c", "16", "--memory-last", "17"], "must not exceed the window"),
    (["--memory-doc", "missing.txt"], "missing.txt"),
    (["--memory-doc", "bad.txt"], "not valid UTF-8"),
    (["--memory-doc", "empty.txt"], "empty"),
])
def test_memory_options_the_model_refuses_exit_1(chat_bin, tmp_path, tiny, args, frag):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\n")
    (tmp_path / "empty.txt").write_bytes(b"")
    res = run(chat_bin, tmp_path, "-m", tiny, "-p", "hi", "-n", 4, *args)
    assert_one_line_error(res, 1)
    assert frag in res.stderr.decode()


def test_python_chat_session_refuses_evict_shift_with_memory(tiny):
    model = pyllong.Model(tiny, n_ctx=32, n_threads=1, memory=True)
    with pytest.raises(pyllong.InvalidArgumentError, match="evict='rebuild'"):
        pyllong.ChatSession(model, evict="shift")


# ---------------------------------------------------------------------------------------------
# Memory files: --memory-save / --memory-load read and write pyllong.Memory's format


def _saved_by_python(path, file, text, **opts):
    model = pyllong.Model(path, n_ctx=32, n_threads=THREADS, memory=Memory(**opts))
    model.memory.add_document(text)
    model.memory.save(file)
    return model.memory.tokens


DOC = "the quick brown fox jumps over the lazy dog. " * 30


@pytest.mark.parametrize("opts,args", [
    (dict(layers=[1], cap=500), ["--memory-layers", "1", "--memory-cap", "500"]),
    (dict(mode="knn", k=5, distance=7, last_context_length=9), ["--memory-mode", "knn", "--memory-k", "5",
                                                                "--memory-distance", "7", "--memory-last", "9"]),
])
def test_memory_save_writes_the_file_python_writes(chat_bin, tmp_path, tiny, opts, args):
    (tmp_path / "doc.txt").write_text(DOC, encoding="utf-8")
    _saved_by_python(tiny, tmp_path / "py.pmem", DOC, **opts)
    res = run(chat_bin, tmp_path, "-m", tiny, "-c", 32, "-t", THREADS, "-p", "hi", "-n", 2, "--memory-doc", "doc.txt",
              "--memory-save", "c.pmem", *args)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "c.pmem").read_bytes() == (tmp_path / "py.pmem").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temporary left behind


def test_memory_load_of_a_python_file_equals_chat_session(chat_bin, tmp_path, tiny):
    n = _saved_by_python(tiny, tmp_path / "doc.pmem", DOC, layers=[1])
    model = pyllong.Model(tiny, n_ctx=64, n_threads=THREADS, memory=Memory.load(tmp_path / "doc.pmem", mode="knn", k=4))
    session = pyllong.ChatSession(model, max_tokens=16, temperature=0)
    replies = [session.send(m) for m in MESSAGES[:3]]
    # -c is ignored for the window (the file's W = 32), as Model(n_ctx=64, memory=Memory.load(...)).
    doc, _ = transcript(chat_bin, tmp_path, tiny, 64, 16, MESSAGES[:3], "--memory-load", "doc.pmem",
                        "--memory-mode", "knn", "--memory-k", "4", "--memory-layers", "0")
    assert_same(doc, model, replies)
    assert doc["memory"]["window"] == 32 and doc["memory"]["layers"] == [1] and doc["memory"]["tokens"] > n


def test_bad_memory_files_exit_1(chat_bin, tmp_path, tiny):
    import hashlib

    f = tmp_path / "m.pmem"
    _saved_by_python(tiny, f, DOC[:200], layers=[1])
    data = f.read_bytes()
    restamp = lambda b: b[:-32] + hashlib.sha256(b[:-32]).digest()  # a forger can compute the checksum
    hlen = int.from_bytes(data[12:16], "little")
    header = json.loads(data[16:16 + hlen])
    cases = {
        "truncated.pmem": (data[:-1], "corrupted or truncated"),
        "text.pmem": (b"hello, not a memory file at all" * 3, "not a pyllong memory file"),
        "v2.pmem": (restamp(data[:8] + (2).to_bytes(4, "little") + data[12:]), "version 2"),
        "tokens.pmem": (restamp(data.replace(b'"tokens": %d' % header["tokens"], b'"tokens": %d' % (header["tokens"] + 1))),
                        "rows do not match"),
        "layers.pmem": (restamp(data.replace(b'"layers": [1]', b'"layers": "1"')), "malformed header"),
        "hlen.pmem": (restamp(data[:12] + (1 << 30).to_bytes(4, "little") + data[16:]), "malformed header"),
    }
    other_shape = cached_model(**preset_params("tiny-llama-bpe", n_layer=3))
    other_weights = cached_model(**preset_params("tiny-llama-bpe", seed=123))
    for name, (blob, frag) in cases.items():
        (tmp_path / name).write_bytes(blob)
        res = run(chat_bin, tmp_path, "-m", tiny, "-p", "hi", "-n", 2, "--memory-load", name)
        assert_one_line_error(res, 1)
        assert frag in res.stderr.decode(), name
    for model, frag in ((other_shape, "made for a model with"), (other_weights, "other weights")):
        res = run(chat_bin, tmp_path, "-m", model, "-p", "hi", "-n", 2, "--memory-load", "m.pmem")
        assert_one_line_error(res, 1)
        assert frag in res.stderr.decode()
    res = run(chat_bin, tmp_path, "-m", tiny, "-p", "hi", "-n", 2, "--memory-load", "missing.pmem")
    assert_one_line_error(res, 1)
