"""``waveunet``: the command line. Thin: each command lives in ``waveunet_tf/commands/<name>.py`` and imports
TensorFlow and other heavy modules only inside its ``run``, so ``--help`` answers at once.

Exit codes: 0 success, 2 bad arguments, 1 failure; one line on stderr, a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings

from waveunet_tf.errors import UserError, first_line

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
    "models": "models",
}


def _available_commands():
    for name, module in COMMANDS.items():
        try:
            yield name, importlib.import_module(f"waveunet_tf.commands.{module}")
        except ModuleNotFoundError as e:
            if e.name != f"waveunet_tf.commands.{module}":
                raise


def non_empty(value: str) -> str:
    """Every string argument of every command: an empty one (``--run-dir ""``, ``-o ""``) is a usage error, not
    the current folder, nor a value to fail on later."""
    if value == "":
        raise argparse.ArgumentTypeError("must not be empty; give a value (the current folder is .)")
    return value


class Parser(argparse.ArgumentParser):
    """The parser of ``waveunet`` and of each command (subparsers are made of the same class): a string
    argument without a type of its own goes through :func:`non_empty`, and a bad argument is one line."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("type", None, non_empty)  # the type argparse gives an argument declared without one

    def add_subparsers(self, **kwargs):
        action = super().add_subparsers(**kwargs)
        action.type = str  # its values are the command and all that follows it, which its parser checks
        return action

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="waveunet", description="Wave-U-Net (Stoller, Ewert, Dixon, ISMIR 2018) in "
                    "TensorFlow/Keras: the paper's variants, training, evaluation, separation and serving. An "
                    "empty argument is a usage error for every command (write . for the current folder).")
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


def quiet_known_noise() -> None:
    """Hide what the pinned third-party stack prints on every run and a user can do nothing about: TF's C++
    start-up chatter (cuda plugins) and its libraries' deprecation notices. Every other warning is shown."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(?!waveunet_tf|data_pipeline)")


def _report(args, debug: bool, line: str) -> None:
    """One line on stderr; with ``--debug`` the traceback (with its causes) first."""
    if debug:
        traceback.print_exc()
    print(f"waveunet {args.command}: {line}", file=sys.stderr)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    if debug:
        warnings.simplefilter("default")  # everything, deprecation notices included
    else:
        quiet_known_noise()
    try:
        code = args._run(args)
    except UserError as e:
        _report(args, debug, f"error: {e}")
        return e.exit_code
    except BrokenPipeError:  # e.g. `waveunet variants | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"waveunet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an unexpected failure: still one line, the traceback with --debug
        what = type(e).__name__ + (f": {first_line(e)}" if str(e).strip() else "")
        hint = "" if debug else " (rerun with --debug for the traceback)"
        _report(args, debug, f"failed: {what}{hint}")
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
