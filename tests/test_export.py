"""The exported SavedModel: layout, signatures, core ops only, same stems as `separate` in a process that cannot
import waveunet_tf, and INVALID_ARGUMENT (not a crash) for a wrong input."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from test_separate import noise, tiny_model

from waveunet_tf import shapes
from waveunet_tf.cli import main
from waveunet_tf.separation import separate_array

VENV_BIN = Path(sys.executable).parent
SITE = sysconfig.get_paths()["purelib"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny M4 saved as .keras and exported with the CLI to DIR/1."""
    model, cfg = tiny_model()
    root = tmp_path_factory.mktemp("export")
    model.save(root / "tiny.keras")
    assert main(["export", str(root / "tiny.keras"), "--out", str(root / "serving" / "wun" / "1")]) == 0
    return model, cfg, root / "serving" / "wun" / "1"


def _isolated_python(code, cwd):
    """Run ``code`` with the venv's Python, isolated (-I) and without site processing (-S), so the editable
    install's .pth hook never runs: TensorFlow is importable from site-packages, waveunet_tf is not."""
    prelude = f"import sys; sys.path.append({SITE!r})\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_export_layout_and_refusals(exported, tmp_path, capsys):
    _, cfg, version_dir = exported
    assert (version_dir / "saved_model.pb").is_file() and (version_dir / "variables").is_dir()
    facts = json.loads((version_dir / "assets.extra" / "waveunet.json").read_text())
    assert facts["sample_rate"] == 22050 and facts["sources"] == ["accompaniment", "vocals"]
    assert (facts["piece_context_left"], facts["piece_multiple"]) == (shapes.context(cfg)[0], 16)
    keras_file = version_dir.parent.parent.parent / "tiny.keras"
    before = (version_dir / "saved_model.pb").read_bytes()
    for out, code, message in ((version_dir, 1, "exists; pass --force"),
                               (tmp_path / "models" / "latest", 2, "integer version folder")):
        capsys.readouterr()
        assert main(["export", str(keras_file), "--out", str(out)]) == code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert (version_dir / "saved_model.pb").read_bytes() == before
    assert not (tmp_path / "models").exists()
    capsys.readouterr()
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "m" / "1")]) == 1
    assert "is not a model" in capsys.readouterr().err


def test_graph_holds_only_core_tensorflow_ops(exported, tmp_path):
    """Every op type in the graph and its functions is registered by plain TensorFlow (tensorflow-io is never
    imported in the checking process), and none is a Python callback."""
    _, _, version_dir = exported
    code = f"""
import json, tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
sm = saved_model_pb2.SavedModel()
sm.ParseFromString(open({str(version_dir / 'saved_model.pb')!r}, 'rb').read())
g = sm.meta_graphs[0].graph_def
ops = {{n.op for n in g.node}} | {{n.op for f in g.library.function for n in f.node_def}}
ops -= {{f.signature.name for f in g.library.function}}  # calls of the graph's own functions
import sys
print(json.dumps({{"ops": sorted(ops), "unknown": sorted(o for o in ops if op_def_registry.get(o) is None),
                  "tfio": any(m.startswith("tensorflow_io") for m in sys.modules)}}))
"""
    res = _isolated_python(code, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert not report["tfio"] and report["unknown"] == []
    assert {"Conv2D", "While", "TensorListSetItem", "Pad", "StatefulPartitionedCall"} <= set(report["ops"])
    assert not {"PyFunc", "EagerPyFunc", "PyFuncStateless"} & set(report["ops"])
    assert not [o for o in report["ops"] if o.startswith(("IO", "Io"))]


@pytest.mark.slow
def test_saved_model_in_a_fresh_process_without_the_package_matches_separate(exported, tmp_path):
    model, cfg, version_dir = exported
    lengths = (300, 5000)  # 300 < the model's input window (707 samples)
    assert lengths[0] < cfg.input_length
    songs = {str(n): noise(n, cfg.channels, seed=n) for n in lengths}
    np.savez(tmp_path / "songs.npz", **songs)
    code = f"""
import numpy as np
try:
    import waveunet_tf
    raise SystemExit("waveunet_tf is importable")
except ModuleNotFoundError:
    pass
import tensorflow as tf
from tensorflow.python.client import pywrap_tf_session
loaded = tf.saved_model.load({str(version_dir)!r})
songs = np.load("songs.npz")
out = {{}}
for n in songs.files:
    pred = loaded.signatures["serving_default"](mixture=tf.constant(songs[n][None]))
    for s, v in pred.items():
        out[n + "/" + s] = v.numpy()[0]
# the model server's way: TF1 loader, Session::Run through the C API (no Python shape checks)
graph = tf.Graph()
sess = tf.compat.v1.Session(graph=graph)
with graph.as_default():
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], {str(version_dir)!r})
sig = meta.signature_def["serving_default"]
feed = graph.get_tensor_by_name(sig.inputs["mixture"].name)._as_tf_output()
fetch = [graph.get_tensor_by_name(sig.outputs[s].name)._as_tf_output() for s in ("accompaniment", "vocals")]
def run(x):
    return pywrap_tf_session.TF_SessionRun_wrapper(sess._session, None, {{feed: x}}, fetch, [], None)
for n in songs.files:
    for s, v in zip(("accompaniment", "vocals"), run(songs[n][None])):
        out["session/" + n + "/" + s] = v[0]
errors = []
for bad in (np.zeros((300, 2), np.float32), np.zeros((1, 300, 2), np.float64), np.zeros((1, 300, 3), np.float32),
            np.zeros((1, 0, 2), np.float32)):
    try:
        run(bad)
        errors.append("no error")
    except tf.errors.InvalidArgumentError as e:
        errors.append("INVALID_ARGUMENT")
np.savez("stems.npz", **out)
print(",".join(errors))
"""
    res = _isolated_python(code, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == ",".join(["INVALID_ARGUMENT"] * 4)
    stems = np.load(tmp_path / "stems.npz")
    for n, song in songs.items():
        ref = separate_array(model, cfg, song, cfg.sample_rate)
        for s in cfg.sources:
            for prefix in ("", "session/"):
                got = stems[f"{prefix}{n}/{s}"]
                assert got.shape == (int(n), cfg.channels)
                np.testing.assert_allclose(got, ref[s], atol=1e-4)


def test_saved_model_cli_lists_the_signatures(exported):
    _, _, version_dir = exported
    res = subprocess.run([str(VENV_BIN / "saved_model_cli"), "show", "--dir", str(version_dir), "--all"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert res.returncode == 0, res.stderr[-2000:]
    for name in ("serving_default", "piece", "model_info"):
        assert f"signature_def['{name}']" in res.stdout
    assert res.stdout.count("inputs['mixture'] tensor_info:") == 3
    assert "outputs['vocals'] tensor_info:" in res.stdout and "shape: (-1, -1, 2)" in res.stdout


def test_separate_accepts_the_saved_model(exported, tmp_path):
    import soundfile as sf
    model, cfg, version_dir = exported
    song = noise(4000, 2, seed=3)
    sf.write(tmp_path / "song.wav", song, 44100, subtype="FLOAT")
    assert main(["separate", str(tmp_path / "song.wav"), "--model", str(version_dir), "-o", str(tmp_path / "o")]) == 0
    ref = separate_array(model, cfg, song, 44100)
    for s in cfg.sources:
        got, rate = sf.read(tmp_path / "o" / "song" / f"{s}.wav", dtype="float32", always_2d=True)
        assert rate == 44100
        np.testing.assert_allclose(got, ref[s], atol=1e-4)
