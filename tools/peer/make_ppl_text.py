"""Write a long English text for perplexity comparisons, from files every Python ships with.

The text is the Python reference documentation topics that `pydoc` prints for `help("if")`,
`help("NUMBERS")`, ... (pydoc_data.topics: 79 sections of the Language Reference, plain
English with some grammar snippets), in sorted topic order, joined by blank lines. Nothing is
downloaded; the output is a function of the Python version alone (CPython 3.11.7 here:
465,048 characters, 112,955 SmolLM2 tokens). Not committed: build it where it is needed.

    python tools/peer/make_ppl_text.py /tmp/pydoc_topics.txt
"""
import hashlib
import sys

from pydoc_data.topics import topics


def text() -> str:
    return "\n\n".join(topics[k].strip("\n") for k in sorted(topics)) + "\n"


def main(path: str) -> None:
    t = text()
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(t)
    digest = hashlib.sha256(t.encode("utf-8")).hexdigest()
    print(f"{path}: {len(t)} characters, {len(topics)} topics, python {sys.version.split()[0]}, sha256 {digest[:16]}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/pydoc_topics.txt")
