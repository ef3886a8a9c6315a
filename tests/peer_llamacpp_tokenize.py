"""Run llama.cpp's tokenizer (through llama-cpp-python) on requests read as JSON from stdin.

Run as a subprocess by test_tokenizer_llamacpp.py so that the peer library, and the stubs a
source checkout of llama-cpp-python needs, stay out of the test process.
stdin:  {"model": PATH, "encode": [[HEX_BYTES, add_bos, special], ...],
         "decode": [[[ids...], special], ...]}
stdout: {"encode": [[ids...], ...], "decode": [HEX_BYTES, ...]}
"""
import json
import sys
import types

try:
    import diskcache  # noqa: F401  (llama-cpp-python imports it; tokenizing does not use it)
except ImportError:
    stub = types.ModuleType("diskcache")
    stub.Cache = object
    sys.modules["diskcache"] = stub

import llama_cpp  # noqa: E402


def main():
    req = json.load(sys.stdin)
    llm = llama_cpp.Llama(req["model"], vocab_only=True, verbose=False)
    out = {"encode": [], "decode": []}
    for text_hex, add_bos, special in req["encode"]:
        out["encode"].append(llm.tokenize(bytes.fromhex(text_hex), add_bos=add_bos, special=special))
    for ids, special in req["decode"]:
        out["decode"].append(llm.detokenize(ids, special=special).hex())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
