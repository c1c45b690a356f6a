HELP = "separate songs on a running TensorFlow Serving (REST or gRPC): OUT/<song>/<source>.wav"

DESCRIPTION = """Separate songs with a model served by TensorFlow Serving (a SavedModel from `waveunet export`).

The songs are decoded and resampled here; the model's facts (channels, sources, sample rate, context) come from
the server (its metadata and the model_info signature). Each song goes to the `piece` signature in requests of
about --chunk-seconds of audio that carry their context, so the stems are exactly those of one whole-song call.
Stems are written like `waveunet separate`: OUT/<song>/<source>.wav at the input's rate and exact length; an
existing output is not overwritten without --force."""


def add_arguments(p):
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files to separate")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", metavar="http://HOST:8501", help="TF Serving's REST API")
    where.add_argument("--grpc", metavar="HOST:8500", help="TF Serving's gRPC API")
    p.add_argument("--model-name", required=True, metavar="NAME", help="the model's name on the server")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder: OUT/<song>/<source>.wav")
    p.add_argument("--chunk-seconds", type=float, default=30.0,
                   help="seconds of audio per request, plus its context (default: 30)")
    p.add_argument("--force", action="store_true", help="overwrite existing stems")


def run(args):
    from waveunet_tf.errors import UsageError
    from waveunet_tf.serving_client import client_files
    if args.chunk_seconds <= 0:
        raise UsageError(f"--chunk-seconds must be positive, not {args.chunk_seconds}")
    for folder in client_files(args.audio, args.out, url=args.url, grpc_target=args.grpc, name=args.model_name,
                               chunk_seconds=args.chunk_seconds, force=args.force):
        print(folder)
    return 0
