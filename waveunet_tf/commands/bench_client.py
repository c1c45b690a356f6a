import statistics
import time

import numpy as np

from waveunet_tf.commands import client as client_command
from waveunet_tf.commands.bench_common import print_result
from waveunet_tf.errors import UsageError
from waveunet_tf.serving import client, pieces

HELP = "a TF Serving deployment seen by `waveunet client`: seconds per song and requests per second"

DESCRIPTION = """Send synthetic stereo songs (noise at the model's rate, so no decoding or resampling is counted)
through `waveunet client`'s path to a running TensorFlow Serving, one song after another, and report the median
seconds per song and the requests per second (pieces of --chunk-seconds, --concurrency in flight). A first,
untimed song warms the server and the connection."""


def add_arguments(p):
    client_command.add_server_arguments(p)
    p.add_argument("--seconds", type=float, default=60.0, help="length of each song (default: 60)")
    p.add_argument("--songs", type=int, default=3, help="timed songs; the median is reported (default: 3)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def run(args):
    if not args.seconds > 0 or args.songs < 1:
        raise UsageError(f"--seconds must be positive and --songs at least 1, not {args.seconds} and {args.songs}")
    chunk = pieces.check_chunk_seconds(args.chunk_seconds)
    client.check_concurrency(args.concurrency)
    server = client_command.connect(args)
    facts = client.served_facts(server)
    client.fit_messages(server, facts, chunk)
    rate = facts["sample_rate"]
    song = np.random.default_rng(0).standard_normal((int(args.seconds * rate), facts["channels"]), dtype=np.float32)
    song *= 0.1
    requests = pieces.piece_plan(facts, len(song), chunk).count
    client.separate_with_server(server, facts, song[:rate], rate, chunk, concurrency=args.concurrency)
    times = []
    for _ in range(args.songs):
        start = time.perf_counter()
        client.separate_with_server(server, facts, song, rate, chunk, concurrency=args.concurrency)
        times.append(time.perf_counter() - start)
    per_song = statistics.median(times)
    result = {"api": "rest" if args.url else "grpc", "model": args.model_name, "version": server.version,
              "audio_s": round(len(song) / rate, 3), "chunk_seconds": chunk, "concurrency": args.concurrency,
              "requests_per_song": requests, "s_per_song": round(per_song, 3),
              "requests_per_s": round(requests * len(times) / sum(times), 2)}
    print_result(result, args.json,
                 f"{result['audio_s']:g} s songs on {server.where}, version {server.version}: {per_song:.2f} s per "
                 f"song (median of {len(times)}), {result['requests_per_s']:g} requests/s "
                 f"({requests} pieces of {chunk:g} s per song, {args.concurrency} in flight)")
    return 0
