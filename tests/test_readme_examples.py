"""The README's examples run as written: its Python code blocks that use pyllong.Model or
GGUFFile (on the real SmolLM2, "model.gguf" replaced by its path, max_tokens capped) and
the `pyllong ...` lines of its ```sh blocks (through `python -m pyllong.cli`, from an empty
temporary directory). A line `expr  # literal` in a Python block also checks expr == literal."""
from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys

import pytest

from fake_context import native_available

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
MAX_TOKENS = 8

pytestmark = pytest.mark.skipif(not native_available(), reason="needs the native forward pass")


def _blocks(lang: str) -> list[str]:
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"^```" + lang + r"\n(.*?)^```", text, flags=re.S | re.M)


def _python_blocks() -> list[str]:
    return [b for b in _blocks("python") if "pyllong.Model" in b or "GGUFFile" in b]


def _cli_lines() -> list[str]:
    return [line.strip() for b in _blocks("sh") for line in b.splitlines() if line.strip().startswith("pyllong ")]


def _with_checks(src: str) -> str:
    """Turn `expr  # literal` lines into checks that expr equals the literal."""
    out = []
    for line in src.splitlines():
        m = re.match(r"^(\S.*?)\s+#\s*(.+)$", line)
        if m:
            try:
                ast.parse(m.group(1), mode="eval")
                expected = ast.literal_eval(m.group(2))
            except (SyntaxError, ValueError):
                pass
            else:
                line = f"__check(({m.group(1)}), {expected!r}, {m.group(1)!r})"
        out.append(line)
    return "\n".join(out)


def _check(got, expected, expr):
    assert got == expected, f"README says {expr} is {expected!r}, it is {got!r}"


def test_readme_has_examples():
    assert _python_blocks(), "README lost its Python example"
    assert any(c.split()[1] == "generate" for c in _cli_lines()), "README lost its CLI example"


@pytest.mark.parametrize("i", range(len(_python_blocks())))
def test_python_block_runs(i, smollm2_path):
    src = _python_blocks()[i].replace('"model.gguf"', repr(smollm2_path))
    src = re.sub(r"max_tokens=(\d+)", lambda m: f"max_tokens={min(int(m.group(1)), MAX_TOKENS)}", src)
    src = _with_checks(src)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(src, f"README.md python block {i}", "exec"), {"__check": _check, "__name__": "__readme__"})
    assert out.getvalue().strip(), "the example printed nothing"


@pytest.mark.parametrize("line", _cli_lines())
def test_cli_line_runs(line, smollm2_path, tmp_path):
    argv = shlex.split(line)
    assert argv[0] == "pyllong"
    if argv[1] == "generate":
        assert "-n" in argv and int(argv[argv.index("-n") + 1]) <= 32, "keep README generate examples short"
    p = subprocess.run([sys.executable, "-m", "pyllong.cli"] + argv[1:], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip()
    if argv[1] == "info":
        assert "llama" in p.stdout
