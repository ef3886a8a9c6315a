"""pyllong-chat, the standalone chat binary, driven as a user would: by subprocess and (for
Ctrl-C on a terminal) pexpect. Greedy replies are compared token for token — through their
text — with the Python API (Model.chat / ChatSession at temperature 0, same penalties)."""
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

import pyllong
from pyllong.chat_template import render
from pyllong.models.synthetic import CHATML_TEMPLATE, LLAMA2_TEMPLATE, PHI3_TEMPLATE, cached_model, preset_params

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 300


@pytest.fixture(scope="session")
def tiny_bpe():
    return cached_model(**preset_params("tiny-llama-bpe"))


@pytest.fixture(scope="session")
def tiny_spm():
    return cached_model(**preset_params("tiny-llama-spm"))


def run(chat_bin, *args, stdin="", env=None, timeout=TIMEOUT):
    return subprocess.run([chat_bin, *map(str, args)], input=stdin.encode(), capture_output=True,
                          timeout=timeout, env=env)


def ok(res) -> str:
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res.stdout.decode("utf-8")  # strict: the binary never prints split UTF-8 sequences


def assert_one_line_error(res, code=None):
    assert res.returncode > 0, "a bad input must exit non-zero, never by a signal (crash)"
    if code is not None:
        assert res.returncode == code
    err = res.stderr.decode(errors="replace")
    assert err.startswith("pyllong-chat: ") and err.count("\n") == 1, err
    assert res.stdout == b""


# ---------------------------------------------------------------------------------------------
# Options, errors, the binary itself

OPTIONS = ["-m, --model", "-c, --ctx-size", "-t, --threads", "-b, --batch-size", "-n, --n-predict", "--temp",
           "--top-k", "--top-p", "--min-p", "--repeat-penalty", "--repeat-last-n", "--seed", "--system",
           "--chat-format", "-p, --prompt", "--json"]


def test_help_lists_every_option_with_its_default(chat_bin):
    out = ok(run(chat_bin, "--help"))
    lines = out.splitlines()
    for opt in OPTIONS:
        line = next((l for l in lines if l.strip().startswith(opt)), None)
        assert line is not None, f"{opt} missing from --help"
        assert "(default: " in line, line
    for default in ("(default: 0.8)", "(default: 40)", "(default: 0.95)", "(default: 0.05)", "(default: 1.1)",
                    "(default: 64)", "(default: 512)"):
        assert default in out  # the Python sampling defaults, and pyllong chat's -n


@pytest.mark.parametrize("args", [
    ["--temp", "x"], ["--temp", "-1"], ["--top-p", "0"], ["--top-p", "1.5"], ["--min-p", "2"], ["--top-k", "-3"],
    ["--repeat-penalty", "0"], ["--repeat-last-n", "-2"], ["-c", "0"], ["-c"], ["--bogus"], ["--json=1"],
    ["--chat-format", "vicuna"], ["-t", "many"], ["--seed", "-7"],
])
def test_bad_option_is_one_line_and_exit_2(chat_bin, args):
    assert_one_line_error(run(chat_bin, *args), code=2)


def test_bad_model_files_are_one_line_and_exit_1(chat_bin, tmp_path, smollm2_path):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file at all" * 100)
    truncated = tmp_path / "truncated.gguf"
    with open(smollm2_path, "rb") as f:
        truncated.write_bytes(f.read(1 << 20))
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    for model in (garbage, truncated, empty, tmp_path / "missing.gguf", tmp_path, "no-such-registry-name"):
        assert_one_line_error(run(chat_bin, "-m", model, "-p", "hi", "-n", "4"), code=1)


def test_no_libpython(chat_bin):
    ldd = subprocess.run(["ldd", chat_bin], capture_output=True, text=True)
    assert ldd.returncode == 0, ldd.stderr
    assert "libpython" not in ldd.stdout


def test_registry_name_already_pulled(chat_bin, tmp_path, smollm2_path):
    (tmp_path / "models" / "smollm2").mkdir(parents=True)
    os.symlink(smollm2_path, tmp_path / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    env = dict(os.environ, PYLLONG_HOME=str(tmp_path))
    res = run(chat_bin, "-m", "smollm2", "--print-prompt", "-p", "hi", env=env)
    assert "<|im_start|>user\nhi<|im_end|>" in ok(res)
    # Not pulled into this home: one line telling how to get it.
    os.unlink(tmp_path / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    res = run(chat_bin, "-m", "smollm2", "-p", "hi", env=env)
    assert_one_line_error(res, code=1)
    assert b"pyllong pull smollm2" in res.stderr


# ---------------------------------------------------------------------------------------------
# Chat formats: detected from the template text and rendered exactly as the Jinja template does

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

# (format name, template, whether the template has a system role)
FORMATS = [
    ("chatml", CHATML_TEMPLATE, True), ("chatml", SMOLLM2_TEMPLATE, True), ("chatml", "", True),
    ("llama2", LLAMA2_TEMPLATE, True), ("llama3", LLAMA3_TEMPLATE, True), ("mistral", MISTRAL_TEMPLATE, False),
    ("phi3", PHI3_TEMPLATE, True), ("zephyr", ZEPHYR_TEMPLATE, True), ("gemma", GEMMA_TEMPLATE, False),
]


def print_prompt(chat_bin, model, template, *args):
    res = run(chat_bin, "-m", model, "--chat-template", template, "--print-prompt", *args)
    return ok(res), res.stderr.decode()


@pytest.fixture(scope="module")
def special_texts(tiny_bpe):
    m = pyllong.Model(tiny_bpe, n_ctx=64)
    return dict(bos_token=m._special_text(m.bos), eos_token=m._special_text(m.eos))


@pytest.mark.parametrize("name,template,has_system", FORMATS, ids=[f"{f[0]}-{i}" for i, f in enumerate(FORMATS)])
def test_format_detected_and_rendered_like_jinja(chat_bin, tiny_bpe, special_texts, name, template, has_system):
    user = "  Hello there, who are you?  "
    out, err = print_prompt(chat_bin, tiny_bpe, template, "-p", user)
    assert f"chat format: {name}" in err
    jinja = render(template or CHATML_TEMPLATE, [{"role": "user", "content": user}], True, **special_texts)
    assert out == jinja
    system = "You are terse.\nAnswer in one line."
    out, _ = print_prompt(chat_bin, tiny_bpe, template, "--system", system, "-p", user)
    if has_system:
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        assert out == render(template or CHATML_TEMPLATE, msgs, True, **special_texts)
    else:  # no system role: the system prompt leads the first user message
        assert out == render(template, [{"role": "user", "content": system + "\n\n" + user}], True, **special_texts)


def test_chat_format_option_overrides_detection(chat_bin, tiny_bpe):
    out, err = print_prompt(chat_bin, tiny_bpe, CHATML_TEMPLATE, "--chat-format", "llama3", "-p", "hi")
    assert "chat format: llama3" in err and "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>" in out


def test_unknown_template_falls_back_to_chatml_with_a_warning(chat_bin, tiny_bpe):
    out, err = print_prompt(chat_bin, tiny_bpe, "{{ messages }}", "-p", "hi")
    assert "warning" in err and "chat format: chatml" in err
    assert out == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


# ---------------------------------------------------------------------------------------------
# Replies

def test_one_shot_answer(chat_bin, smollm2_path):
    out = ok(run(chat_bin, "-m", smollm2_path, "-p", "What is the capital of France?", "-n", "40", "--temp", "0"))
    assert "Paris" in out
    # Sampled (default chain): a seed makes it reproducible.
    args = ("-m", smollm2_path, "-p", "Name a fruit.", "-n", "24", "--seed", "7")
    a, b = ok(run(chat_bin, *args)), ok(run(chat_bin, *args))
    assert a.strip() and a == b


GREEDY_CASES = [
    dict(prompt="What is the capital of France?"),
    dict(prompt="Write a haiku about the sea.", system="You are a poet."),
    dict(prompt="List three colors.", repeat_penalty=1.3, repeat_last_n=16),
    dict(prompt="Count from one to twenty in words.", repeat_penalty=1.0),
]


def native_greedy_args(case, n):
    args = ["-p", case["prompt"], "-n", n, "--temp", "0"]
    if "system" in case:
        args += ["--system", case["system"]]
    for k in ("repeat_penalty", "repeat_last_n"):
        if k in case:
            args += ["--" + k.replace("_", "-"), case[k]]
    return args


def python_greedy(model, case, n):
    msgs = ([{"role": "system", "content": case["system"]}] if "system" in case else []) + \
           [{"role": "user", "content": case["prompt"]}]
    kw = {k: case[k] for k in ("repeat_penalty", "repeat_last_n") if k in case}
    return str(model.chat(msgs, temperature=0, max_tokens=n, **kw))


@pytest.mark.parametrize("case", GREEDY_CASES, ids=lambda c: c["prompt"][:20])
def test_greedy_equals_python_on_smollm2(chat_bin, smollm2_path, case):
    model = pyllong.Model(smollm2_path, n_ctx=1024)
    expected = python_greedy(model, case, 64)
    assert ok(run(chat_bin, "-m", smollm2_path, "-c", 1024, *native_greedy_args(case, 64))) == expected + "\n"


@pytest.mark.parametrize("preset", ["tiny-llama-bpe", "tiny-llama-spm"])
def test_greedy_equals_python_on_synthetic(chat_bin, preset):
    path = cached_model(**preset_params(preset))
    model = pyllong.Model(path, n_ctx=256)
    for case in GREEDY_CASES[:3]:
        expected = python_greedy(model, case, 40)
        assert ok(run(chat_bin, "-m", path, "-c", 256, *native_greedy_args(case, 40))) == expected + "\n", case


def session_replies(path, messages, n_ctx, max_tokens, system=None):
    session = pyllong.ChatSession(pyllong.Model(path, n_ctx=n_ctx), system=system, max_tokens=max_tokens,
                                  temperature=0)
    return [str(session.send(m)) for m in messages], session.dropped_turns


THREE_TURNS = ["Hi! My name is Ada.", "What is two plus two?", "What is my name?"]


@pytest.mark.parametrize("which", ["smollm2", "tiny-llama-spm"])
def test_three_turn_conversation_from_stdin_equals_chat_session(chat_bin, smollm2_path, which):
    path = smollm2_path if which == "smollm2" else cached_model(**preset_params(which))
    expected, _ = session_replies(path, THREE_TURNS, 1024, 48)
    out = ok(run(chat_bin, "-m", path, "-c", 1024, "-n", 48, "--temp", 0, stdin="\n".join(THREE_TURNS) + "\n"))
    assert out == "".join(r + "\n" for r in expected)


def test_json_transcript_and_stdin_commands(chat_bin, smollm2_path):
    stdin = "Hello\n/reset\n\nTell me a joke \\\nabout cats.\n/system Be brief.\nBye\n/exit\nnever read\n"
    res = run(chat_bin, "-m", smollm2_path, "-n", 24, "--temp", 0, "--json", stdin=stdin)
    doc = json.loads(ok(res))
    roles = [m["role"] for m in doc["messages"]]
    assert roles == ["user", "assistant"] * 3
    assert doc["messages"][2]["content"] == "Tell me a joke \nabout cats."  # backslash continues the message
    assert doc["system"] == "Be brief." and doc["chat_format"] == "chatml"
    for m in doc["messages"][1::2]:
        assert m["content"] and m["finish_reason"] in ("stop", "length") and m["completion_tokens"] > 0
    assert b"[conversation reset]" in res.stderr


def test_context_overflow_drops_old_turns_like_chat_session(chat_bin, smollm2_path):
    msgs = ["Tell me about the moon.", "And the sun?", "What about Mars?", "And Jupiter?", "Thanks, bye!"]
    expected, dropped = session_replies(smollm2_path, msgs, 160, 40, system="You are an astronomer.")
    assert dropped > 0, "the test must actually overflow the context"
    res = run(chat_bin, "-m", smollm2_path, "-c", 160, "-n", 40, "--temp", 0, "--system", "You are an astronomer.",
              "--json", stdin="\n".join(msgs) + "\n")
    doc = json.loads(ok(res))
    assert [m["content"] for m in doc["messages"][1::2]] == expected
    assert doc["dropped_turns"] == dropped and doc["system"] == "You are an astronomer."


def test_message_too_long_for_the_context_is_reported_and_the_chat_goes_on(chat_bin, smollm2_path):
    long_msg = "word " * 400
    res = run(chat_bin, "-m", smollm2_path, "-c", 128, "-n", 16, "--temp", 0, stdin=long_msg + "\nHi\n")
    assert res.returncode == 0
    assert b"context" in res.stderr and res.stdout.decode().strip()
    # One-shot: the same failure is the exit status.
    assert_one_line_error(run(chat_bin, "-m", smollm2_path, "-c", 128, "-p", long_msg), code=1)


def test_output_is_valid_utf8_from_random_byte_tokens(chat_bin, tiny_bpe):
    # A random-weight byte-level BPE model emits byte tokens that split UTF-8 characters;
    # streamed output must still be whole characters (ok() decodes strictly).
    for seed in range(4):
        ok(run(chat_bin, "-m", tiny_bpe, "-c", 256, "-n", 120, "--seed", seed, "--temp", 1.5, "--top-k", 0,
               "--top-p", 1, "--min-p", 0, "-p", "héllo wörld ✓"))


def test_eof_exits_cleanly(chat_bin, smollm2_path):
    res = run(chat_bin, "-m", smollm2_path, stdin="")
    assert res.returncode == 0 and res.stdout == b""


def test_sigint_during_a_piped_reply_ends_the_reply_not_the_program(chat_bin, smollm2_path):
    # The signal goes out once the reply has started streaming (not after a fixed delay: on a
    # fast machine the whole reply can be over within one), so it lands mid-reply.
    p = subprocess.Popen([chat_bin, "-m", smollm2_path, "-n", "3000", "--temp", "0"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(b"Write a very long story about a dragon who learns to read.\n")
        p.stdin.flush()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([p.stdout], [], [], 1.0)
            if ready and os.read(p.stdout.fileno(), 1):
                break
        else:
            pytest.fail("pyllong-chat streamed nothing within the timeout")
        p.send_signal(signal.SIGINT)
        time.sleep(0.5)
        out, err = p.communicate(b"Say hi.\n", timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err                  # the program went on to the next message and EOF
    assert err.count(b"[reply interrupted]") == 1, err  # the first reply, and only it, was cut short
    reply2 = out.rstrip(b"\n").rsplit(b"\n", 1)
    assert len(reply2) == 2 and reply2[1].strip(), out  # a second reply after the interrupted one


# ---------------------------------------------------------------------------------------------
# A terminal session (pexpect)

def test_interactive_session_with_ctrl_c(chat_bin, smollm2_path):
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(chat_bin, ["-m", smollm2_path, "-n", "3000", "--temp", "0"], timeout=120,
                          encoding="utf-8", dimensions=(50, 200))
    try:
        child.expect_exact("> ")
        child.sendline("Write a very long story about a dragon who learns to read.")
        child.expect(r"\w+ \w+ \w+ \w+")  # the reply is streaming
        child.sendintr()
        child.expect_exact("[reply interrupted]")
        child.expect_exact("> ")
        child.sendintr()  # Ctrl-C at the prompt does not quit either
        child.expect_exact("(Ctrl-D or /exit to quit)")
        child.expect_exact("> ")
        child.sendline("What is the capital of France? \\")
        child.expect_exact(". ")  # continuation prompt
        child.sendline("Answer in one word.")
        child.expect(r"\w+")  # a reply to the two-line message
        child.expect_exact("> ")
        child.sendline("/reset")
        child.expect_exact("[conversation reset]")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0 and child.signalstatus is None


# ---------------------------------------------------------------------------------------------
# The native sampler chain

@pytest.mark.parametrize("narrowing", [["--top-k", "1"], ["--min-p", "1"], ["--top-p", "1e-9"]],
                         ids=["top-k 1", "min-p 1", "top-p ~0"])
def test_filters_that_keep_one_token_sample_greedily(chat_bin, smollm2_path, narrowing):
    # Penalties run before the filters (llama.cpp's order, as in Python): a chain cut to one
    # candidate is the greedy choice after penalties, whatever the temperature and seed.
    base = ["-m", smollm2_path, "-p", "Describe a sunset.", "-n", "48", "--repeat-penalty", "1.2"]
    greedy = ok(run(chat_bin, *base, "--temp", "0"))
    assert ok(run(chat_bin, *base, "--temp", "1.5", "--seed", "3", *narrowing)) == greedy


def test_sampling_depends_on_the_seed(chat_bin, tiny_bpe):
    base = ["-m", tiny_bpe, "-c", 256, "-p", "hello", "-n", 40, "--temp", 1.0]
    outs = {ok(run(chat_bin, *base, "--seed", s)) for s in range(4)}
    assert len(outs) > 1


def test_json_escapes_control_characters_and_invalid_utf8_input(chat_bin, smollm2_path):
    res = subprocess.run([chat_bin, "-m", smollm2_path, "-n", "8", "--temp", "0", "--json"],
                         input=b"tab\there \xff\xfe \"quoted\"\n", capture_output=True, timeout=TIMEOUT)
    doc = json.loads(ok(res))
    assert doc["messages"][0]["content"] == 'tab\there \ufffd\ufffd "quoted"'


def test_self_extend_and_q8_0_greedy_equal_python(chat_bin):
    # A window of 8 tokens: the chat prompt is far past it, so grouped pairs are exercised.
    path = cached_model(**preset_params("tiny-llama-k", qtype="F32"))  # head_dim 64 (q8_0 needs % 32)
    model = pyllong.Model(path, n_ctx=256, self_extend=(2, 8), kv_type="q8_0")
    plain = pyllong.Model(path, n_ctx=256)
    for case in GREEDY_CASES[:2]:
        expected = python_greedy(model, case, 40)
        got = ok(run(chat_bin, "-m", path, "-c", 256, "--self-extend", "2,8", "--kv-type", "q8_0",
                     *native_greedy_args(case, 40)))
        assert got == expected + "\n", case
    assert any(python_greedy(model, c, 40) != python_greedy(plain, c, 40) for c in GREEDY_CASES[:2])


@pytest.mark.parametrize("args,frag", [(["--self-extend", "4,6"], "multiple of the group size"),
                                       (["--self-extend", "4"], "expects G,W"),
                                       (["--kv-type", "q4_0"], "f16 or q8_0")])
def test_self_extend_and_kv_type_option_errors(chat_bin, args, frag):
    r = run(chat_bin, "-m", cached_model(**preset_params("tiny-llama-bpe")), "-p", "hi", *args)
    assert_one_line_error(r)
    assert frag in r.stderr.decode()
