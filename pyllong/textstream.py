"""Turning generated token bytes into text that is safe to show.

Two things must never reach the reader: half a UTF-8 character (a token may end in the
middle of one), and the beginning of a stop string that may still complete. `TextAssembler`
holds both back and releases text as soon as it cannot change any more.
"""
from __future__ import annotations

import codecs
from typing import Optional, Sequence


class TextAssembler:
    def __init__(self, stop: Sequence[str] = ()):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = [s for s in stop if s]
        self._hold = max((len(s) for s in self._stop), default=1) - 1  # longest possible partial match
        self._pending = ""      # decoded text not yet released
        self.text = ""          # everything released so far
        self.stopped: Optional[str] = None  # the stop string that matched

    def _release(self, n: int) -> str:
        out, self._pending = self._pending[:n], self._pending[n:]
        self.text += out
        return out

    def _partial_stop_len(self) -> int:
        """Length of the longest suffix of the pending text that is a proper prefix of a stop string."""
        tail = self._pending[-self._hold:] if self._hold else ""
        for n in range(len(tail), 0, -1):
            suffix = tail[-n:]
            if any(s.startswith(suffix) for s in self._stop):
                return n
        return 0

    def feed(self, data: bytes) -> str:
        """Add a token's bytes; return the text that is now final (possibly '')."""
        if self.stopped is not None:
            return ""
        self._pending += self._decoder.decode(data)
        if not self._stop:
            return self._release(len(self._pending))
        hits = [(i, s) for s in self._stop if (i := self._pending.find(s)) >= 0]
        if hits:
            i, s = min(hits)
            self.stopped = s
            out = self._release(i)
            self._pending = ""
            return out
        return self._release(len(self._pending) - self._partial_stop_len())

    def finish(self) -> str:
        """The end: release what was held back (an incomplete UTF-8 tail becomes U+FFFD)."""
        if self.stopped is not None:
            return ""
        self._pending += self._decoder.decode(b"", final=True)
        return self._release(len(self._pending))
