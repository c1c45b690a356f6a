"""The size and time of the report's listening excerpts (README, "The report").

    .venv/bin/python experiments/report_budget.py            # one synthetic MUSDB18-like track, and x 50
    .venv/bin/python experiments/report_budget.py runs/demo  # the test tracks of a reproduce run directory

The first: a 4-minute, 4-source track (noise audio, random frame SDRs) and that times 50, the MUSDB18 test set.
The second writes the excerpts of an evaluated run's test tracks again, into a temporary folder (the run is only
read), as ``evaluate`` does: each track decoded once, then the excerpts timed.
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


def run_dir(run: Path) -> None:
    import musdb
    from waveunet_tf.evaluation.evaluate import _decoded_once
    from waveunet_tf.evaluation.record import read_record
    record = read_record(run)
    sources = json.loads((run / "config.json").read_text())["sources"]
    db = musdb.DB(root=record["musdb_root"], is_wav=record["wav"], subsets=record["subset"])
    wall = cpu = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for name in ("scores", record["subset"]):  # what the excerpts read, unchanged
            (out / name).symlink_to((run / name).resolve())
        for track in db.tracks:
            with _decoded_once(track):
                start, cpu_start = time.perf_counter(), time.process_time()
                excerpts.write_track_excerpts(track, out, record["subset"], sources)
                wall += time.perf_counter() - start
                cpu += time.process_time() - cpu_start
        files = [p for p in (out / excerpts.FILES_DIR).rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
    print(f"{len(db.tracks)} tracks: {sum(p.suffix == '.mp3' for p in files)} excerpts, {size:,} bytes, "
          f"{wall:.1f} s ({cpu:.1f} s of CPU)")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        run_dir(Path(sys.argv[1]))
    else:
        main()
