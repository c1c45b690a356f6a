from pathlib import Path

from data_pipeline.synth import make_synthetic_dataset
from waveunet_tf.errors import UserError

HELP = "write a synthetic multitrack dataset in the MUSDB18-HQ layout (for tests and the demo)"

DESCRIPTION = """Write a synthetic dataset in the MUSDB18-HQ layout:
OUT/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav, 44.1 kHz stereo 16-bit.

Every track has a sung-like line (vocals), a drum kit on a tempo grid (drums), a low bass line (bass) and
chords or arpeggios (other), with random key, tempo, levels and panning; the mixture is the exact sum of the
stems, with headroom so nothing clips. The same --seed gives the same files. Prepare it with
`waveunet prepare --musdb-root OUT --wav --cache CACHE` (its train tracks have no official musdb validation
split: `--split musdb` then holds out the last quarter of the train tracks by name)."""


def add_arguments(p):
    p.add_argument("out", metavar="OUT", help="output folder (must not hold tracks already, unless --force)")
    p.add_argument("--tracks", type=int, default=8, help="train tracks (default 8)")
    p.add_argument("--test-tracks", type=int, default=2, help="test tracks (default 2)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each track in seconds (default 20)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite tracks already in OUT")


def run(args):
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    existing = [p for sub in ("train", "test") for p in (out / sub).glob("*/mixture.wav")]
    if existing and not args.force:
        raise UserError(f"{out} already holds {len(existing)} tracks; choose another folder or pass --force")
    make_synthetic_dataset(out, tracks=args.tracks, test_tracks=args.test_tracks, seconds=args.seconds,
                           seed=args.seed, progress=True)
    print(out)
    return 0
