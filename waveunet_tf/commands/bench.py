HELP = "measure the input pipeline, a training step, or whole-song inference (medians over several runs)"

# kind -> module under waveunet_tf.commands with add_arguments(parser) and run(args)
KINDS = {"input": "bench_input", "train": "bench_train", "inference": "bench_inference"}


def add_arguments(p):
    import importlib
    sub = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, module in KINDS.items():
        try:
            mod = importlib.import_module(f"waveunet_tf.commands.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"waveunet_tf.commands.{module}":
                raise
            continue
        sp = sub.add_parser(kind, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(sp)
        sp.set_defaults(_bench_run=mod.run)


def run(args):
    return args._bench_run(args)


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux reports ru_maxrss in KB)."""
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def print_result(result: dict, as_json: bool, text: str) -> None:
    """A bench's result: one JSON document on stdout with ``--json``, else the human-readable ``text``."""
    import json
    print(json.dumps(result) if as_json else text)
