"""The command line's error and warning behaviour: one line without --debug, the real cause with it; only the
stack's known noise is hidden."""

import subprocess
import sys

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
