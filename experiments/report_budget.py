"""The size and time of the report's listening excerpts for one synthetic MUSDB18-like track (4 minutes, 4 sources,
random frame SDRs, noise audio) and that times 50, the MUSDB18 test set (README, "The report").

    .venv/bin/python experiments/report_budget.py
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's packages

from waveunet_tf.audio import write_wav  # noqa: E402
from waveunet_tf.evaluation import excerpts  # noqa: E402
from waveunet_tf.evaluation.scores import METRICS  # noqa: E402

RATE, SECONDS, SOURCES, NAME = 44100, 240, ("vocals", "bass", "drums", "other"), "synthetic song"


class Stem:
    def __init__(self, audio):
        self.audio = audio


class Track:
    """The parts of a musdb track the excerpts read."""

    def __init__(self, rng):
        self.name, self.rate = NAME, RATE
        self.targets = {s: Stem((0.1 * rng.standard_normal((SECONDS * RATE, 2))).astype(np.float32))
                        for s in SOURCES}
        self.audio = sum(t.audio for t in self.targets.values())


def main() -> None:
    rng = np.random.default_rng(0)
    track = Track(rng)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for s in SOURCES:
            write_wav(out / "test" / NAME / f"{s}.wav", 0.5 * track.targets[s].audio, RATE)
        def frames():  # each source its own random SDRs: its own windows, few shared excerpts
            return [{"time": i, "duration": 1, "metrics": {m: float(rng.normal(5, 4)) for m in METRICS}}
                    for i in range(SECONDS)]
        scores = out / "scores" / "test" / f"{NAME}.json"
        scores.parent.mkdir(parents=True)
        scores.write_text(json.dumps({"targets": [{"name": s, "frames": frames()} for s in SOURCES]}))
        start = time.perf_counter()
        excerpts.write_track_excerpts(track, out, "test", SOURCES)
        seconds = time.perf_counter() - start
        files = [p for p in (out / excerpts.FILES_DIR).rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
    print(f"one track: {sum(p.suffix == '.mp3' for p in files)} excerpts, {size:,} bytes, {seconds:.1f} s; "
          f"x 50 tracks: {50 * size / 1e6:.1f} MB, {50 * seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
