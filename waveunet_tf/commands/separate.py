from waveunet_tf import precision
from waveunet_tf.separate import separate_files

HELP = "separate songs (any format ffmpeg decodes) into the model's sources: OUT/<song>/<source>.wav"

DESCRIPTION = """Separate songs into the model's sources.

Each AUDIO file is decoded (wav, flac, ogg, mp3 via libsndfile; m4a/aac, mp4 and others via ffmpeg), its
channels matched as the official code did (if the counts differ, the mean of the channels goes to every model
channel: a mono model gets the mean, a mono file is duplicated for a stereo model, a 6-channel file gives a stereo
model its mean in both), resampled to the model's rate, separated, and each source brought back. The stems are
written as 32-bit float WAV at the input's sample rate, channel count and exact length: OUT/<song>/<source>.wav.
An all-silent file gives silent stems. Existing stems are not overwritten without --force; each song's stems are
written together (never a partial set), and a song another run is writing is refused. A file that fails is
reported and the others go on; the exit code is then 1.

Songs are streamed: decoded block by block, separated window by window and written as they come, so memory does
not grow with a song's length (a 3-hour recording needs no more than a 3-minute song). Progress is shown in
seconds of audio (a bar on a terminal, a line at each quarter in a log) with each song's real-time factor; a
truncated file is separated as far as it decodes, with a warning saying how much that was.

--window default runs long windows (equal lengths of at most 2**19 output samples, 23.8 s at 22050 Hz),
aligned to the network's decimation, so the result does not depend on the window length; --window paper runs
the paper's training window for comparison. Models without context (M1, M2) always use their training window.

MODEL: a run directory (best.keras), a .keras file, official:NAME (the official M4, M6, M5-HighSR; see
`waveunet models`), or a SavedModel version folder from `waveunet export`."""


def add_arguments(p):
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files to separate")
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="run directory, .keras file, official:NAME, or exported SavedModel folder")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder: OUT/<song>/<source>.wav")
    p.add_argument("--force", action="store_true", help="overwrite existing stems")
    p.add_argument("--window", choices=("default", "paper"), default="default",
                   help="default: long phase-aligned windows (fast); paper: the training window (default: default)")
    p.add_argument("--precision", choices=precision.INFERENCE_CHOICES, default=precision.SEPARATE_DEFAULT,
                   help="arithmetic of the model: auto is bfloat16 on a CPU with native bfloat16 (avx512_bf16 or "
                        "AMX), else float32; bfloat16 is refused on a CPU without it; a SavedModel runs in float32 "
                        f"(default: {precision.SEPARATE_DEFAULT})")


def run(args):
    separate_files(args.audio, args.model, args.out, force=args.force, window=args.window, precision=args.precision,
                   on_written=lambda folder: print(folder, flush=True), threads_per_window=True)
    return 0
