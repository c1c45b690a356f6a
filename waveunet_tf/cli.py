"""``waveunet``: the command line. Thin: each command lives in ``waveunet_tf/commands/<name>.py`` and imports
TensorFlow and other heavy modules only inside its ``run``, so ``--help`` answers at once.

Exit codes: 0 success, 2 bad arguments, 1 failure; one line on stderr, a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from waveunet_tf.errors import UserError

# command name -> module under waveunet_tf.commands (each defines HELP, add_arguments(parser), run(args))
COMMANDS = {
    "variants": "variants",
    "synth": "synth",
    "prepare": "prepare",
    "train": "train",
    "evaluate": "evaluate",
    "stats": "stats",
    "table": "table",
    "separate": "separate",
    "export": "export",
    "import-official": "import_official",
    "client": "client",
    "bench": "bench",
    "reproduce": "reproduce",
}


def _available_commands():
    for name, module in COMMANDS.items():
        try:
            yield name, importlib.import_module(f"waveunet_tf.commands.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"waveunet_tf.commands.{module}":
                raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waveunet", description="Wave-U-Net (Stoller, Ewert, Dixon, ISMIR 2018) "
                                     "in TensorFlow/Keras: the paper's variants, training, evaluation, separation "
                                     "and serving.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow's logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available_commands():
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks and TensorFlow's logs")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    if not debug:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TF's C++ start-up chatter (cuda plugins) is not for users
        import warnings
        warnings.filterwarnings("ignore")
    try:
        code = args._run(args)
    except UserError as e:
        if debug:
            raise
        print(f"waveunet {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # e.g. `waveunet variants | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"waveunet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an unexpected failure: still one line, the traceback with --debug
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"waveunet {args.command}: failed: {type(e).__name__}: {msg} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
