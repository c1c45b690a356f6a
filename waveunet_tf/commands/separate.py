HELP = "separate songs (any format ffmpeg decodes) into the model's sources: OUT/<song>/<source>.wav"

DESCRIPTION = """Separate songs into the model's sources.

Each AUDIO file is decoded (wav, flac, ogg via libsndfile; mp3, m4a/aac, mp4 and others via ffmpeg), resampled
to the model's rate, its channels matched as the official code did (mono model: mean of the channels; stereo
model and mono file: duplicated), separated, and each source resampled back. The stems are written as 32-bit
float WAV at the input's sample rate and exact length: OUT/<song>/<source>.wav. An all-silent file gives silent
stems. Existing stems are not overwritten without --force; every file is written atomically.

--window default runs long windows (equal lengths of at most 2**19 output samples, 23.8 s at 22050 Hz),
aligned to the network's decimation, so the result does not depend on the window length; --window paper runs the paper's training
window for comparison. Models without context (M1, M2) always use their training window.

MODEL: a run directory (best.keras), a .keras file, or a SavedModel version folder from `waveunet export`."""


def add_arguments(p):
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files to separate")
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="run directory, .keras file, or exported SavedModel folder")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder: OUT/<song>/<source>.wav")
    p.add_argument("--force", action="store_true", help="overwrite existing stems")
    p.add_argument("--window", choices=("default", "paper"), default="default",
                   help="default: long phase-aligned windows (fast); paper: the training window (default: default)")


def run(args):
    from waveunet_tf.separation import separate_files
    for folder in separate_files(args.audio, args.model, args.out, force=args.force, window=args.window):
        print(folder)
    return 0
