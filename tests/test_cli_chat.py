"""ChatSession (cache reuse, pinned system prompt, dropping turns) and the CLI commands
generate / chat / perplexity, in-process, on a tiny synthetic ChatML model.

The CLI builds its Model with the native Context; where this build has none, the tests
point it at the numpy FakeContext (pytest's header says which ran)."""
import io
import json
import math
import sys

import numpy as np
import pytest

import pyllong.model as pm
from fake_context import FakeContext, context_factory, native_available
from pyllong.models.synthetic import cached_preset
from pyllong import ChatSession, ContextOverflowError, Model, cli
from pyllong.sampling import Sampler
from reference.forward import reference_logits

GREEDY = dict(temperature=0, repeat_penalty=1.0)


@pytest.fixture(scope="module")
def path():
    return cached_preset("tiny-llama-bpe")


@pytest.fixture
def cli_context(monkeypatch):
    if not native_available():
        monkeypatch.setattr(pm, "_native_context", FakeContext)


def make(path, **kw):
    return Model(path, _context_factory=context_factory(), **kw)


def end_turn_after(model, n):
    """A logits processor that ends the reply with <|im_end|> after n generated tokens."""
    im_end = model.tokenize("<|im_end|>", False, True)[0]
    state = {"start": None}

    def proc(input_ids, scores):
        if state["start"] is None:
            state["start"] = len(input_ids)
        if len(input_ids) - state["start"] >= n:
            scores = np.full_like(scores, -np.inf)
            scores[im_end] = 0.0
        else:
            scores = scores.copy()
            scores[list(model.eog_ids)] = -np.inf
        return scores
    return proc


# -- ChatSession -----------------------------------------------------------------------------

def test_session_evaluates_only_new_tokens(path):
    m = make(path)
    s = ChatSession(m, system="You are terse.")
    r1 = s.send("hi", logits_processor=[end_turn_after(m, 3)], **GREEDY)
    assert r1.finish_reason == "stop" and len(r1.tokens) == 3
    before = m.n_evaluated
    r2 = s.send("how are you?", logits_processor=[end_turn_after(m, 2)], **GREEDY)
    delta = m.tokenize("<|im_end|>\n<|im_start|>user\nhow are you?<|im_end|>\n<|im_start|>assistant\n", False, True)
    # the new template text, then one forward per generated token (the end token needs none)
    assert m.n_evaluated - before == len(delta) + len(r2.tokens)
    # what is cached spells exactly the conversation
    expected = m.render_chat(s.messages[:-1]) + str(r2)
    assert m.detokenize(m.cached_tokens, special=True) == expected
    assert [t["role"] for t in s.turns] == ["user", "assistant", "user", "assistant"]


def test_session_drops_old_turns_and_pins_system(path):
    m = make(path, n_ctx=96)
    s = ChatSession(m, system="SYS", max_tokens=8)
    sys_tokens = m.tokenize_chat(m.render_chat([{"role": "system", "content": "SYS"}], add_generation_prompt=False))
    for i in range(8):
        r = s.send(f"message number {i} with some words", **GREEDY)
        assert len(r.tokens) <= 8
        assert m.n_past <= m.n_ctx
        assert m.cached_tokens[:len(sys_tokens)] == sys_tokens
    assert s.dropped_turns > 0 and s.messages[0] == {"role": "system", "content": "SYS"}
    assert s.turns[-2]["content"] == "message number 7 with some words"


def test_session_message_too_long(path):
    m = make(path, n_ctx=32)
    s = ChatSession(m, system="SYS")
    with pytest.raises(ContextOverflowError, match="context holds 32"):
        s.send("word " * 60)
    assert s.turns == []


def test_session_stream_close_keeps_partial_reply(path):
    m = make(path)
    s = ChatSession(m)
    st = s.send("hello", stream=True, max_tokens=30, logit_bias={t: -math.inf for t in m.eog_ids}, seed=1)
    got = ""
    for piece in st:
        got += piece
        if len(got) >= 3:
            break
    st.close()
    assert st.result.finish_reason == "interrupted" and s.turns[-1] == {"role": "assistant", "content": str(st.result)}
    assert str(st.result).startswith(got)
    s.reset()
    assert s.turns == [] and s.messages == []


# -- CLI -------------------------------------------------------------------------------------

def run_cli(argv, capsys, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_generate_cli_matches_api(path, capsys, cli_context):
    rc, out, _ = run_cli(["generate", "-m", path, "-p", "Hello", "-n", "12", "--temp", "0", "--repeat-penalty", "1"], capsys)
    expected = make(path).generate("Hello", max_tokens=12, **GREEDY)
    assert rc == 0 and out == expected + "\n"
    rc, out2, _ = run_cli(["generate", "-m", path, "-p", "Hello", "-n", "12", "--temp", "0", "--repeat-penalty", "1",
                           "--no-stream"], capsys)
    assert out2 == out


def test_generate_cli_bad_parameter(path, capsys, cli_context):
    rc, _, err = run_cli(["generate", "-m", path, "-p", "Hi", "--top-p", "3"], capsys)
    assert rc == 1 and "top_p" in err


def test_chat_cli_reads_piped_stdin(path, capsys, monkeypatch, cli_context):
    script = "hi there\n/system Be brief.\n/system\nline one \\\nline two\n/reset\nlast\n"
    rc, out, err = run_cli(["chat", "-m", path, "-n", "5", "--seed", "3"], capsys, script, monkeypatch)
    assert rc == 0
    assert "[system prompt set]" in err and "Be brief." in err and "[conversation reset]" in err
    assert out.count("\n") >= 3 and out.endswith("\n")  # three replies, each ended by a newline


def test_chat_cli_exit_command_and_eof(path, capsys, monkeypatch, cli_context):
    rc, out, _ = run_cli(["chat", "-m", path, "-n", "3"], capsys, "/exit\nnever sent\n", monkeypatch)
    assert rc == 0 and out == ""
    rc, out, _ = run_cli(["chat", "-m", path, "-n", "3"], capsys, "", monkeypatch)
    assert rc == 0 and out == ""


def test_chat_cli_ctrl_c_stops_reply_not_program(path, capsys, monkeypatch, cli_context):
    real = Sampler.sample
    calls = {"n": 0}

    def flaky(self, logits, history):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, logits, history)

    monkeypatch.setattr(Sampler, "sample", flaky)
    rc, out, err = run_cli(["chat", "-m", path, "-n", "4", "--temp", "0"], capsys, "one\ntwo\n", monkeypatch)
    assert rc == 0 and "[reply interrupted]" in err and calls["n"] > 4  # the second message got its reply


def test_chat_cli_one_shot(path, capsys, cli_context):
    rc, out, _ = run_cli(["chat", "-m", path, "-p", "hi", "-n", "6", "--temp", "0", "--repeat-penalty", "1",
                          "--system", "S"], capsys)
    m = make(path)
    expected = m.chat([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}], max_tokens=6, **GREEDY)
    assert rc == 0 and out == expected + "\n"


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["generate", "--help"])
    out = capsys.readouterr().out
    assert "(default: 0.8)" in out and "(default: 40)" in out and "smollm2" in out
    with pytest.raises(SystemExit):
        cli.main(["perplexity", "--help"])
    assert "(default: 512)" in capsys.readouterr().out


# -- perplexity ------------------------------------------------------------------------------

def reference_ppl(path, tokens, n_ctx, bos, add_bos):
    """llama-perplexity's method, written out directly."""
    nlls = []
    for c in range(len(tokens) // n_ctx):
        chunk = list(tokens[c * n_ctx:(c + 1) * n_ctx])
        if add_bos:
            chunk[0] = bos
        logits = reference_logits(path, chunk)
        for j in range(n_ctx // 2, n_ctx - 1):
            row = logits[j]
            lse = row.max() + math.log(np.exp(row - row.max()).sum())
            nlls.append(lse - row[tokens[c * n_ctx + j + 1]])
    nlls = np.array(nlls)
    ppl = math.exp(nlls.mean())
    return ppl, math.sqrt(nlls.var() / (len(nlls) - 1)) * ppl, len(nlls)


@pytest.mark.parametrize("preset", ["tiny-llama-bpe", "tiny-llama-spm"])
def test_perplexity_cli_matches_reference(preset, tmp_path, capsys, cli_context):
    path = cached_preset(preset)
    text = "The quick brown fox jumps over the lazy dog. " * 12
    f = tmp_path / "t.txt"
    f.write_text(text)
    rc, out, _ = run_cli(["perplexity", "-m", path, "-f", str(f), "-c", "32", "--json"], capsys)
    assert rc == 0
    r = json.loads(out)
    m = make(path, n_ctx=32)
    tokens = m.tokenize(text, add_special=True)
    ppl, err, n = reference_ppl(path, tokens, 32, m.bos, bool(m.model_file.vocab["add_bos"]))
    assert r["n_chunks"] == len(tokens) // 32 and r["n_scored"] == n
    tol = 1e-3 if native_available() else 1e-6  # logits arrive as float32
    assert r["ppl"] == pytest.approx(ppl, rel=tol) and r["stderr"] == pytest.approx(err, rel=max(tol, 1e-6))
    rc, out, _ = run_cli(["perplexity", "-m", path, "-f", str(f), "-c", "32", "-q"], capsys)
    assert rc == 0 and f"PPL = {r['ppl']:.4f} +/- " in out


def test_perplexity_text_too_short(path, tmp_path, capsys, cli_context):
    f = tmp_path / "short.txt"
    f.write_text("too short")
    rc, _, err = run_cli(["perplexity", "-m", path, "-f", str(f), "-c", "64"], capsys)
    assert rc == 1 and "needs at least 128" in err
