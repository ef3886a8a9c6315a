"""Chat templates from GGUF files, rendered only inside Jinja's immutable sandbox.

A template inside a downloaded model is untrusted code (CVE-2024-34359 was a plain
`jinja2.Environment` rendering one). The sandbox refuses attribute access to
internals (`__class__`, `__subclasses__`, ...), mutation of passed-in objects, and huge
`range()`s; any failure becomes ChatTemplateError.
"""
from __future__ import annotations

import datetime
import functools
import json

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import Error

MAX_TEMPLATE_BYTES = 256 * 1024  # the same cap the native loader applies
MAX_OUTPUT_CHARS = 4 * 1024 * 1024


class ChatTemplateError(Error, ValueError):
    """A chat template failed to parse or render, or tried something the sandbox forbids."""


def _raise_exception(message):
    raise ChatTemplateError(f"chat template raised: {message}")


def _tojson(value, indent=None, ensure_ascii=False):
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


@functools.lru_cache(maxsize=16)
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env.from_string(source)


def render(template: str, messages: list[dict], add_generation_prompt: bool = True, bos_token: str = "",
           eos_token: str = "", **extra) -> str:
    """Render `messages` ([{"role": ..., "content": ...}]) with a Hugging Face-style template."""
    if len(template.encode("utf-8", "replace")) > MAX_TEMPLATE_BYTES:
        raise ChatTemplateError(f"chat template is over {MAX_TEMPLATE_BYTES} bytes; refusing to render it")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ChatTemplateError(f"message {i} must be a dict with 'role' and 'content'")
    try:
        out = _compile(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                        bos_token=bos_token, eos_token=eos_token, **extra)
    except ChatTemplateError:
        raise
    except jinja2.exceptions.SecurityError as e:
        raise ChatTemplateError(f"chat template tried an unsafe operation and was stopped: {e}") from None
    except (jinja2.exceptions.TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError,
            OverflowError, RecursionError) as e:
        raise ChatTemplateError(f"chat template failed: {type(e).__name__}: {e}") from None
    if len(out) > MAX_OUTPUT_CHARS:
        raise ChatTemplateError("chat template produced more than 4 MiB of text")
    return out
