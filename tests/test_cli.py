"""The command line's error and warning behaviour: one line without --debug, the real cause with it; only the
stack's known noise is hidden."""

import subprocess
import sys

import pytest

# A command whose library call warns twice (a third-party deprecation notice and a warning of ours) and then
# fails unexpectedly; the command line around it is the real one.
SCRIPT = """
import sys, warnings
from waveunet_tf import cli
from waveunet_tf.commands import import_official

def failing_import(checkpoint, config):
    warnings.warn_explicit("tf.foo is deprecated", DeprecationWarning, "foo.py", 1, module="tensorflow.python.foo")
    warnings.warn("the mono track is duplicated", UserWarning)
    raise RuntimeError("boom\\nsecond line")

import_official.import_checkpoint = failing_import
sys.exit(cli.main(sys.argv[1:]))
"""


def run(*args):
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True)


def test_an_unexpected_failure_is_one_line_and_only_known_noise_is_hidden(tmp_path):
    res = run("import-official", "ckpt", "--variant", "M4", "--out", str(tmp_path / "m.keras"))
    assert res.returncode == 1
    assert "UserWarning: the mono track is duplicated" in res.stderr
    assert "deprecated" not in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.splitlines()[-1] == \
        "waveunet import-official: failed: RuntimeError: boom (rerun with --debug for the traceback)"


def test_debug_shows_the_traceback_and_every_warning(tmp_path):
    res = run("--debug", "import-official", "ckpt", "--variant", "M4", "--out", str(tmp_path / "m.keras"))
    assert res.returncode == 1
    assert "DeprecationWarning: tf.foo is deprecated" in res.stderr
    assert "UserWarning: the mono track is duplicated" in res.stderr
    assert "Traceback" in res.stderr and "RuntimeError: boom\nsecond line" in res.stderr
    assert res.stderr.splitlines()[-1] == "waveunet import-official: failed: RuntimeError: boom"


def test_debug_keeps_the_exit_code_of_a_bad_argument(tmp_path):
    res = run("--debug", "import-official", "ckpt", "--variant", "M4", "--out", str(tmp_path / "m.h5"))
    assert res.returncode == 2 and "Traceback" in res.stderr and "UsageError" in res.stderr
    assert res.stderr.splitlines()[-1] == "waveunet import-official: error: --out must end in .keras, not 'm.h5'"


def string_arguments(parser, path=()):
    """(command path, action) for every argument of every command that takes a string as it is (no type)."""
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from string_arguments(sub, (*path, name))
        elif action.type is None and action.nargs != 0 and not isinstance(action, argparse._HelpAction):
            yield path, action


def test_an_empty_string_is_a_usage_error_for_every_argument_of_every_command(tmp_path, monkeypatch, capsys):
    from waveunet_tf.cli import build_parser, main
    monkeypatch.chdir(tmp_path)  # where an empty path would write
    walked = set()
    for path, action in string_arguments(build_parser()):
        if action.option_strings:
            argv, name = [*path, action.option_strings[-1], ""], "/".join(action.option_strings)
        else:
            argv, name = [*path, ""], action.metavar or action.dest
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err.splitlines()
        assert e.value.code == 2 and len(err) == 1, (argv, err)
        assert f"error: argument {name}: must not be empty" in err[0], (argv, err)
        walked.add((" ".join(path), name))
    assert list(tmp_path.iterdir()) == []
    # the arguments the issue names are among those walked (the walk did not miss the commands)
    for named in [("synth", "OUT"), ("separate", "-o/--out"), ("separate", "AUDIO"), ("prepare", "--musdb-root"),
                  ("prepare", "--cache"), ("client", "--url"), ("client", "--grpc"), ("client", "--model-name"),
                  ("train", "--run-dir"), ("train", "--cache"), ("evaluate", "--model"), ("export", "MODEL"),
                  ("import-official", "CKPT"), ("stats", "JSON_DIR"), ("table", "RUN_OR_RESULTS"),
                  ("models fetch", "--from"), ("bench inference", "--variant")]:
        assert named in walked, named
