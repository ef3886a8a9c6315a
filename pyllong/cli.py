"""The `pyllong` command line."""
from __future__ import annotations

import argparse
import json
import sys

from .errors import Error


def _parse_ctx(s: str) -> int:
    s = s.strip().lower()
    mult = 1024 if s.endswith("k") else 1
    try:
        n = int(s[:-1] if s.endswith("k") else s) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a context length: {s!r} (e.g. 4096 or 4k)") from None
    if n < 1:
        raise argparse.ArgumentTypeError("context length must be at least 1")
    return n


def cmd_pull(a) -> int:
    from .hub import pull

    print(pull(a.name, force=a.force, quiet=a.quiet))
    return 0


def cmd_list(a) -> int:
    from .hub import list_models

    rows = list_models()
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = "pulled" if r["pulled"] else "not pulled"
        print(f"{r['name']:<10} {r['size'] / 1e6:7.1f} MB  {state:<10}  {r['description']}")
        if r["pulled"]:
            print(f"{'':<10} {r['path']}")
    return 0


def cmd_info(a) -> int:
    from .hub import resolve
    from .info import format_summary, model_summary

    s = model_summary(resolve(a.model, quiet=a.json), a.ctx)
    print(json.dumps(s, indent=2) if a.json else format_summary(s))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyllong", description="Local inference for quantized GGUF models.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser("pull", help="download a registry model into the cache ($PYLLONG_HOME or ~/.cache/pyllong)")
    s.add_argument("name", nargs="?", default="smollm2", help="registry name (default: smollm2)")
    s.add_argument("--force", action="store_true", help="download again even if cached")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_pull)

    s = sub.add_parser("list", help="list registry models and whether they are pulled")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("info", help="print a model's architecture, sizes, quant mix, rope, vocab, KV bytes")
    s.add_argument("model", nargs="?", default="smollm2", help="registry name or .gguf path (default: smollm2)")
    s.add_argument("--ctx", type=_parse_ctx, default=None,
                   help="context length for the KV-cache size (default: the training context)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `pyllong info | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("pyllong: interrupted", file=sys.stderr)
        return 130
    except (Error, OSError) as e:
        print(f"pyllong: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
