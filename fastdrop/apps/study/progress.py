"""The study's progress bar."""
from __future__ import annotations

import math
import sys
import time

__all__ = ["Progress"]


class Progress:
    """A text progress bar on stderr (a line per 10 % when stderr is not a terminal).

    Parameters
    ----------
    total : int
        Number of runs.
    stream : file-like, optional
        Where to write (default ``sys.stderr``).
    enabled : bool
        False: write nothing.
    width : int
        Characters in the bar.
    """

    def __init__(self, total: int, stream=None, enabled: bool = True, width: int = 30):
        self.total, self.done, self.width = total, 0, width
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled and total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self._last_decile = -1
        self._draw()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more runs done and redraw."""
        self.done += n
        self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        frac = self.done / self.total
        decile = int(frac * 10)
        if not self.tty and decile == self._last_decile and self.done != self.total:
            return
        self._last_decile = decile
        el = time.perf_counter() - self.t0
        eta = el / self.done * (self.total - self.done) if self.done else float("nan")
        bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
        eta_s = "?" if math.isnan(eta) else f"{eta:.0f}s"
        line = f"dropout study [{bar}] {self.done}/{self.total} runs, {el:.0f}s, eta {eta_s}"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()
