"""Progress of a long job on stderr, as training shows it: a bar in a terminal; elsewhere (stderr redirected to a
log file or a pipe) a line at each quarter of the job and one at its end, so a log grows by a few lines instead
of a bar's redraws. Used by the download of the official models, ``synth``, ``prepare`` and ``separate``.
"""

from __future__ import annotations

import sys

from waveunet_tf.resources import size_text


class Progress:
    """``total`` units of work (``unit``: "B" for bytes, "s" for seconds of audio, or a name such as "track";
    ``total`` None when not known), ``initial`` of them done already (a resumed job). ``enabled`` False shows nothing. ``stream``:
    where to show it (default: stderr at the time of the call)."""

    def __init__(self, total, desc: str, unit: str, *, initial: int = 0, enabled: bool = True, stream=None):
        self.total, self.desc, self.unit, self.done = total, desc, unit, initial
        self.stream = stream or sys.stderr
        self.bar, self.lines = None, False
        if enabled and self.stream.isatty():
            from tqdm import tqdm
            scale = {"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}
            if unit == "s":
                scale = {"bar_format": "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio "
                                       "[{elapsed}<{remaining}]"}
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream, **scale)
        else:
            self.lines = enabled
        self.told, self.quarter = initial, self._quarter()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _quarter(self) -> int:
        return 4 * self.done // self.total if self.total else 0

    def update(self, n: float = 1) -> None:
        """``n`` more units done."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.lines and self._quarter() > self.quarter and self.done < (self.total or 0):
            self.quarter = self._quarter()
            self._line()

    def close(self) -> None:
        """End the bar, or write the line of where the job ended (when it moved since the last line)."""
        if self.bar is not None:
            self.bar.close()
        elif self.lines and self.done != self.told:
            self._line()

    def _line(self) -> None:
        self.told = self.done
        if self.unit == "B":
            amount = size_text(self.done) + (f" of {size_text(self.total)}" if self.total else "")
        elif self.unit == "s":
            amount = f"{self.done:.1f}" + (f" of {self.total:.1f}" if self.total else "") + " s of audio"
        else:
            amount = f"{self.done}" + (f"/{self.total}" if self.total else "") + f" {self.unit}s"
        percent = f" ({round(100 * self.done / self.total)}%)" if self.total else ""
        print(f"{self.desc}: {amount}{percent}", file=self.stream, flush=True)
