from waveunet_tf.serving import client, pieces

HELP = "separate songs on a running TensorFlow Serving (REST or gRPC): OUT/<song>/<source>.wav"

DESCRIPTION = """Separate songs with a model served by TensorFlow Serving (a SavedModel from `waveunet export`).

The songs are decoded and resampled here; the model's facts (channels, sources, sample rate, context) come from
the server (its metadata and the model_info signature). Each song goes to the `piece` signature in requests of
--chunk-seconds of audio plus their context, all of one length (the last zero-padded, its answer cropped), so the
stems are exactly those of one whole-song call and TF Serving's batching can join any two requests.
Stems are written like `waveunet separate`: OUT/<song>/<source>.wav at the input's rate and exact length; an
existing output is not overwritten without --force.

Without --model-version or --version-label the latest version answers; every piece of a run then goes to the
version that answered first. A refused or reset connection, gRPC UNAVAILABLE or HTTP 503 (a server restarting or
loading) is retried --retries times with backoff; a request unanswered after --timeout seconds fails."""


def add_arguments(p):
    p.add_argument("audio", nargs="+", metavar="AUDIO", help="audio files to separate")
    add_server_arguments(p)
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder: OUT/<song>/<source>.wav")
    p.add_argument("--force", action="store_true", help="overwrite existing stems")


def add_server_arguments(p):
    """Where the model is served and how requests go to it (shared with `waveunet bench client`): --url or
    --grpc, --model-name, --model-version / --version-label, --timeout, --retries, --chunk-seconds,
    --concurrency."""
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", metavar="http://HOST:8501", help="TF Serving's REST API")
    where.add_argument("--grpc", metavar="HOST:8500", help="TF Serving's gRPC API")
    p.add_argument("--model-name", required=True, metavar="NAME", help="the model's name on the server")
    version = p.add_mutually_exclusive_group()
    version.add_argument("--model-version", type=int, metavar="N", help="this version (default: the latest)")
    version.add_argument("--version-label", metavar="LABEL", help="the version a label names, e.g. stable or canary")
    p.add_argument("--timeout", type=float, default=client.DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help=f"seconds to wait for one answer (default: {client.DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--retries", type=int, default=client.DEFAULT_RETRIES, metavar="N",
                   help=f"retries of a request the server could not take (default: {client.DEFAULT_RETRIES})")
    p.add_argument("--chunk-seconds", type=float, default=pieces.DEFAULT_CHUNK_SECONDS,
                   help=f"seconds of audio per request, plus its context (default: {pieces.DEFAULT_CHUNK_SECONDS:g})")
    p.add_argument("--concurrency", type=int, default=client.DEFAULT_CONCURRENCY, metavar="N",
                   help=f"requests in flight at once (default: {client.DEFAULT_CONCURRENCY})")


def connect(args):
    """The server named by the arguments of :func:`add_server_arguments`."""
    return client.connect(args.url, args.grpc, args.model_name, args.model_version, args.version_label,
                          args.timeout, args.retries)


def run(args):
    server = connect(args)  # no request yet: client_files checks its arguments before the first
    for folder in client.client_files(args.audio, args.out, server, args.chunk_seconds, args.force,
                                      args.concurrency):
        print(folder)
    return 0
