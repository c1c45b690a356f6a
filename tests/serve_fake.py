"""Run the tests' stand-in for tensorflow_model_server (tests/fake_tf_serving.py) from the command line."""

import argparse
import threading
from pathlib import Path

from fake_tf_serving import FakeTFServing


def main(argv=None):
    """``python tests/serve_fake.py DIR/VERSION... [--name NAME] [--rest-port P] [--grpc-port P]``: serve until
    interrupted (for `waveunet bench client` on a machine without tensorflow_model_server)."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("version_dir", nargs="+", help="SavedModel version folders (DIR/VERSION) of one model")
    p.add_argument("--name", default="waveunet")
    p.add_argument("--rest-port", type=int, default=0)
    p.add_argument("--grpc-port", type=int, default=0)
    p.add_argument("--batching", type=int, default=0, metavar="N", help="join up to N requests, as --enable_batching")
    args = p.parse_args(argv)
    server = FakeTFServing({int(Path(d).name): d for d in args.version_dir}, args.name, lifetime=10**9,
                           rest_port=args.rest_port, grpc_port=args.grpc_port, batching=args.batching)
    with server:
        print(f"serving {args.name} on {server.rest_url} and {server.grpc_target} (Ctrl-C stops)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
