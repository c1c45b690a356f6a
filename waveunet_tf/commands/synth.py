import math
from pathlib import Path

from data_pipeline.synth import SAMPLE_RATE, STEMS, make_synthetic_dataset
from waveunet_tf.errors import UsageError, UserError
from waveunet_tf.resources import require_disk, require_memory

# Peak memory of synthesizing one track, per stereo frame: 148 bytes measured with tracemalloc around
# data_pipeline.synth.synth_track (10 s and 40 s tracks), plus the int32 sum that makes the mixture.
TRACK_BYTES_PER_FRAME = 200
WAV_BYTES_PER_FRAME = 4  # 16-bit stereo
WAV_MAX_BYTES = 2 ** 32 - 1 - 44  # a WAV file's sizes are 32-bit: 4 GiB less its header

HELP = "write a synthetic multitrack dataset in the MUSDB18-HQ layout (for tests and the demo)"

DESCRIPTION = """Write a synthetic dataset in the MUSDB18-HQ layout:
OUT/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav, 44.1 kHz stereo 16-bit.

Every track has a sung-like line (vocals), a drum kit on a tempo grid (drums), a low bass line (bass) and
chords or arpeggios (other), with random key, tempo, levels and panning; the mixture is the exact sum of the
stems, with headroom so nothing clips. The same --seed gives the same files. Prepare it with
`waveunet prepare --musdb-root OUT --wav --cache CACHE` (its train tracks have no official musdb validation
split: `--split musdb` then holds out the last quarter of the train tracks by name).

Sizes that cannot fit are refused before anything is written: a WAV file holds at most 4 GiB (24347 s of 44.1 kHz
stereo 16-bit), one track needs about 200 bytes of memory per frame while it is made, and all tracks need their
stems and mixture (20 bytes per frame) of free disk under OUT. Progress: a bar in a terminal, a few lines when
stderr is a file or a pipe."""


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
    check_size(out, args.tracks + args.test_tracks, args.seconds)
    make_synthetic_dataset(out, tracks=args.tracks, test_tracks=args.test_tracks, seconds=args.seconds,
                           seed=args.seed, progress=True)
    print(out)
    return 0


def check_size(out, tracks: int, seconds: float) -> None:
    """Refuse, before any work, ``tracks`` tracks of ``seconds`` that do not fit: in a WAV file, in the memory
    one track needs while it is made, or on the disk under ``out`` (each track: its stems and the mixture)."""
    if seconds == math.inf:
        raise UsageError("--seconds must be a finite number of seconds, not inf")
    if not seconds > 0 or tracks < 1:
        return  # make_synthetic_dataset says what is wrong
    frames = round(seconds * SAMPLE_RATE)
    if frames * WAV_BYTES_PER_FRAME > WAV_MAX_BYTES:
        raise UsageError(f"--seconds {seconds:g} makes WAV files over 4 GiB, which the format cannot hold; give at "
                         f"most {WAV_MAX_BYTES // WAV_BYTES_PER_FRAME // SAMPLE_RATE} seconds")
    require_memory(frames * TRACK_BYTES_PER_FRAME, f"a track of {seconds:g} s", "--seconds")
    require_disk(tracks * (len(STEMS) + 1) * frames * WAV_BYTES_PER_FRAME, out,
                 f"writing {tracks} tracks of {seconds:g} s", "--seconds or --tracks/--test-tracks")
