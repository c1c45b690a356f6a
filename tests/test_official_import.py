"""Import of checkpoints written by the official TF1 implementation itself (../shared/fixtures/official_tf1): the
imported model must reproduce the official graph's outputs, through the Python API and through the CLI, and a
checkpoint that does not fit fails with one line.

The numpy reference (tests/numpy_reference.py) is first checked against the official outputs, then covers what
the fixture cannot: training mode (no clipping) and input lengths other than the one the official graph ran.
"""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from numpy_reference import forward
from waveunet_tf import cli, shapes
from waveunet_tf.errors import UserError
from waveunet_tf.model_io import load_model
from waveunet_tf.official_import import config_from_official, import_checkpoint

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official_tf1"
if not (FIXTURES / "index.json").is_file():
    pytest.fail(f"the official TF1 checkpoints are not beside the checkout ({FIXTURES}): the import is tested against "
                "them; put ../shared beside the clone", pytrace=False)
INDEX = json.loads((FIXTURES / "index.json").read_text())
CASES = sorted(INDEX)


def official(case):
    """(case folder, the official configuration dict, {name: array} of the official graph's io.npz)."""
    folder = FIXTURES / case
    with np.load(folder / "io.npz") as io:
        return folder, json.loads((folder / "config.json").read_text()), dict(io)


def assert_reproduces(model, config, io):
    """The model's inference outputs equal the official graph's within 1e-5, in the official source order."""
    ours = model(io["mixture"], training=False)
    assert list(ours) == config["source_names"]
    for s in config["source_names"]:
        np.testing.assert_allclose(np.asarray(ours[s]), io[s], atol=1e-5, rtol=0, err_msg=s)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "waveunet_tf.cli", *args], capture_output=True, text=True)


def test_the_fixture_covers_every_architectural_choice():
    configs = [official(c)[1] for c in CASES]
    assert {c["upsampling"] for c in configs} == {"linear", "learned"}
    assert {c["output_type"] for c in configs} == {"direct", "difference"}
    assert {c["context"] for c in configs} == {True, False}
    assert {c["mono_downmix"] for c in configs} == {True, False}
    assert {c["output_activation"] for c in configs} == {"tanh", "linear"}
    assert {len(c["source_names"]) for c in configs} == {2, 4}


@pytest.mark.parametrize("case", CASES)
def test_official_config_gives_the_official_graph_lengths(case):
    _, off, io = official(case)
    cfg = config_from_official(off, name=case)
    assert (cfg.input_length, cfg.output_length) == (off["input_length"], off["output_length"])
    assert list(io["mixture"].shape) == INDEX[case]["input"]
    assert [cfg.output_length, cfg.channels] == INDEX[case]["output"][1:]


@pytest.mark.parametrize("case", CASES)
def test_import_reproduces_the_official_graph(tmp_path, case):
    folder, off, io = official(case)
    model = import_checkpoint(folder, config_from_official(off, name=case))
    assert model.count_params() == INDEX[case]["params"]
    assert_reproduces(model, off, io)

    out = tmp_path / f"{case}.keras"  # the command line, in this process (a subprocess test is below)
    assert cli.main(["import-official", str(folder / "model-123"), "--official-config",
                     str(folder / "config.json"), "--out", str(out)]) == 0
    assert_reproduces(keras.models.load_model(out), off, io)
    assert load_model(out)[1] == config_from_official(off, name="config")


def test_checkpoint_that_does_not_fit_names_first_differing_variable():
    folder, off, _ = official("tiny_M4")  # 3 levels, 6 filters of width 7, stereo, 2 sources, linear upsampling
    cfg = config_from_official(off, name="tiny_M4")
    with pytest.raises(UserError, match=r"separator/conv1d/kernel has shape \[7, 2, 6\] in the checkpoint "
                                        r"but \[7, 2, 7\] in the model"):
        import_checkpoint(folder, cfg.replace(num_initial_filters=7))
    with pytest.raises(UserError, match=r"separator/interp_0 with shape \[24\] is missing"):
        import_checkpoint(folder, cfg.replace(upsampling="learned"))
    # tiny_M6 has 4 sources: its 2nd and 3rd output convolutions are more than a 2-source model has
    with pytest.raises(UserError, match=r"it has separator/conv1d_8/kernel \[1, 8, 2\], which the model lacks"):
        import_checkpoint(FIXTURES / "tiny_M6", cfg)


@pytest.mark.parametrize("case", ["tiny_linear_out", "tiny_M5", "tiny_learned_same"])
def test_numpy_reference_agrees_then_covers_training_mode_and_longer_inputs(case):
    import tensorflow as tf
    folder, off, io = official(case)
    cfg = config_from_official(off, name=case)
    reader = tf.train.load_checkpoint(str(folder))
    weights = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if n.startswith("separator/")}
    for b in range(len(io["mixture"])):  # the reference is right where the official graph says what is right
        ref = forward(weights, cfg, io["mixture"][b])
        for s in cfg.sources:
            np.testing.assert_allclose(ref[s], io[s][b], atol=1e-5, err_msg=s)

    model = import_checkpoint(folder, cfg)
    train = model(io["mixture"][:1], training=True)
    ref = forward(weights, cfg, io["mixture"][0], training=True)
    for s in cfg.sources:
        np.testing.assert_allclose(np.asarray(train[s])[0], ref[s], atol=1e-5, err_msg=s)
    if cfg.output_activation == "linear":  # the fixture drives the input past [-1, 1]: training must not clip
        assert max(np.abs(ref[s]).max() for s in cfg.sources) > 1.0

    longer = np.random.default_rng(0).uniform(-1, 1, (cfg.input_length + 2 * shapes.step(cfg), cfg.channels))
    ours, ref = model(longer[None].astype(np.float32), training=False), forward(weights, cfg, longer)
    for s in cfg.sources:
        np.testing.assert_allclose(np.asarray(ours[s])[0], ref[s], atol=1e-5, err_msg=s)


def test_cli_in_a_fresh_process_and_its_one_line_errors(tmp_path):
    folder, off, io = official("tiny_M6")
    out = tmp_path / "m6.keras"
    cmd = ["import-official", str(folder), "--official-config", str(folder / "config.json"), "--out", str(out)]
    res = run_cli(*cmd)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"imported {folder} as config ({INDEX['tiny_M6']['params']:,} parameters) -> {out}"
    assert_reproduces(keras.models.load_model(out), off, io)

    again = run_cli(*cmd)  # never overwrite without --force
    assert again.returncode == 1 and again.stderr.strip().endswith("exists; pass --force to overwrite it")
    bad = run_cli("import-official", str(folder), "--variant", "M4", "--out", str(tmp_path / "m4.keras"))
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
    assert "does not fit M4: separator/conv1d/kernel has shape [7, 2, 6] in the checkpoint but [15, 2, 24]" \
        in bad.stderr
    missing = ["import-official", str(tmp_path / "nothing"), "--variant", "M4", "--out", str(tmp_path / "x.keras")]
    res = run_cli(*missing)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "is not a TensorFlow checkpoint" in res.stderr and "Traceback" not in res.stderr
    debug = run_cli("--debug", *missing)  # the real cause: TensorFlow's own error, chained to ours
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "The above exception was the direct cause of the following exception" in debug.stderr
    assert "NotFoundError: Unsuccessful TensorSliceReader constructor" in debug.stderr.split("The above exception")[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m6.keras"]  # nothing half-written is left


def test_a_truncated_checkpoint_names_its_data_file_and_what_is_wrong(tmp_path):
    """Issue 21, 7: a data file cut short said only "IndexError: Read less bytes than requested"."""
    import shutil
    folder, off, _ = official("tiny_M4")
    copy = tmp_path / "ckpt"
    shutil.copytree(folder, copy)
    data = next(copy.glob("model-123.data-*"))
    data.chmod(0o644)
    with open(data, "r+b") as f:
        f.truncate(20000)  # of 136,312 bytes: the import's variables lie beyond
    for given in (copy, copy / "model-123"):  # the folder and the prefix
        with pytest.raises(UserError) as e:
            import_checkpoint(given, config_from_official(off, name="tiny_M4"))
        assert str(e.value).startswith(f"checkpoint {given} is damaged: {data} ends before separator/")
        assert "shorter than its .index says" in str(e.value) and "\n" not in str(e.value)


def test_load_model_of_a_saved_model_says_what_it_is_not_what_a_command_needs(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")  # what makes a folder a SavedModel
    with pytest.raises(UserError) as e:
        load_model(tmp_path)
    assert str(e.value) == (f"{tmp_path} is a SavedModel (as `waveunet export` writes), not a Keras model: expected "
                            "a run directory with best.keras, a .keras file, or official:NAME; load_any_model loads "
                            "SavedModels")
