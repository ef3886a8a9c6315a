"""Fuzz entry point for the tokenizer: encode arbitrary bytes, decode arbitrary ids.

    python tests/fuzz/fuzz_tokenizer.py MODEL.gguf [libFuzzer flags, e.g. -runs=100000]

Only pyllong's own errors (out-of-range ids) are expected; anything else -- another
exception, an id outside the vocabulary, a crash -- is a finding.
"""
import sys

from pyllong import _core
from pyllong.errors import Error as PyllongError


def make_target(tokenizer):
    """The function libFuzzer calls with each input; also callable directly from tests."""
    n_vocab = tokenizer.n_vocab

    def test_one_input(data: bytes) -> None:
        if not data:
            return
        flags, body = data[0], data[1:]
        split = len(body) // 2 if flags & 4 else len(body)
        text, id_bytes = body[:split], body[split:]

        ids = tokenizer.encode(text, add_special=bool(flags & 1), parse_special=bool(flags & 2))
        if any(not 0 <= i < n_vocab for i in ids):
            raise AssertionError(f"encode produced an id outside [0, {n_vocab}): {ids}")
        tokenizer.decode_bytes(ids, special=bool(flags & 8))

        # Arbitrary ids, some out of range (negative or >= n_vocab) on purpose.
        raw_ids = [int.from_bytes(id_bytes[i:i + 3], "little", signed=True) for i in range(0, len(id_bytes), 3)]
        try:
            tokenizer.decode(raw_ids, special=bool(flags & 16))
        except PyllongError:
            if all(0 <= i < n_vocab for i in raw_ids):
                raise
        for i in raw_ids[:4]:
            try:
                tokenizer.token_to_bytes(i)
            except PyllongError:
                if 0 <= i < n_vocab:
                    raise

    return test_one_input


def main(argv):
    import atheris

    if len(argv) < 2 or argv[1].startswith("-"):
        sys.exit(__doc__)
    tokenizer = _core.Tokenizer(argv[1])
    atheris.Setup([argv[0]] + argv[2:], make_target(tokenizer))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
