"""The exported SavedModel: layout, signatures, core ops only, same stems as `separate` in a process that cannot
import waveunet_tf, INVALID_ARGUMENT (not a crash) for a wrong input, warm-up records TF Serving can replay,
batching that cannot corrupt results, and version folders that are never lost or half-replaced."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from test_separate import noise, tiny_model

from waveunet_tf.cli import main
from waveunet_tf.files import current_umask
from waveunet_tf.model_io import LoadedModel, read_facts
from waveunet_tf.separate import separate_array

VENV_BIN = Path(sys.executable).parent
SITE = sysconfig.get_paths()["purelib"]
REPO = Path(__file__).parents[1]


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


def _session(version_dir):
    """The SavedModel as tensorflow_model_server runs it: the TF1 loader and Session::Run through the C API.
    Returns ``run(signature, array) -> {output: array}`` and the signature defs."""
    import tensorflow as tf
    from tensorflow.python.client import pywrap_tf_session
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(version_dir))

    def run(signature, x):
        sig = meta.signature_def[signature]
        feed = graph.get_tensor_by_name(sig.inputs["mixture"].name)._as_tf_output()
        keys = sorted(sig.outputs)
        fetch = [graph.get_tensor_by_name(sig.outputs[k].name)._as_tf_output() for k in keys]
        return dict(zip(keys, pywrap_tf_session.TF_SessionRun_wrapper(sess._session, None, {feed: x}, fetch, [], None)))

    return run, meta.signature_def


def test_export_layout_and_refusals(exported, tmp_path, capsys):
    _, cfg, version_dir = exported
    assert (version_dir / "saved_model.pb").is_file() and (version_dir / "variables").is_dir()
    facts = json.loads((version_dir / "assets.extra" / "waveunet.json").read_text())
    assert facts["sample_rate"] == 22050 and facts["sources"] == ["accompaniment", "vocals"]
    assert facts["piece_multiple"] == 2**4  # num_layers=4
    assert (version_dir.parent / "batching_parameters.txt").is_file()
    assert oct(version_dir.stat().st_mode & 0o777) == oct(0o777 & ~current_umask())  # readable by a server's user
    keras_file = version_dir.parent.parent.parent / "tiny.keras"
    before = (version_dir / "saved_model.pb").read_bytes()
    for out, code, message in ((version_dir, 1, "exists; pass --force"),
                               (tmp_path / "models" / "latest", 2, "integer version folder"),
                               (tmp_path / "models" / "01", 2, "as version 1")):
        capsys.readouterr()
        assert main(["export", str(keras_file), "--out", str(out)]) == code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
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


def test_warmup_records_are_prediction_logs_that_replay(exported, tmp_path, capsys):
    """TF Serving replays assets.extra/tf_serving_warmup_requests (TFRecord of PredictionLog, at most 1000) when
    it loads a version: each record must be a Predict request for a signature the model has, with its inputs,
    and must run through Session::Run. The piece request has the client's default length: 30 s at 22050 Hz,
    rounded down to a multiple of 2**4, plus the context."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2
    model, cfg, version_dir = exported
    facts = json.loads((version_dir / "assets.extra" / "waveunet.json").read_text())
    raw = list(tf.compat.v1.io.tf_record_iterator(str(version_dir / "assets.extra" / "tf_serving_warmup_requests")))
    assert 1 <= len(raw) <= 1000
    run, signatures = _session(version_dir)
    seen = {}
    for record in raw:
        log = prediction_log_pb2.PredictionLog.FromString(record)
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        sig = signatures[request.model_spec.signature_name]
        assert set(request.inputs) == set(sig.inputs) == {"mixture"}
        assert request.inputs["mixture"].dtype == sig.inputs["mixture"].dtype
        x = tf.make_ndarray(request.inputs["mixture"])
        seen[request.model_spec.signature_name] = (x, run(request.model_spec.signature_name, x))
    assert set(seen) == {"model_info", "piece"}
    assert read_facts(seen["model_info"][1]) == facts
    x, out = seen["piece"]
    hop = 30 * 22050 // 16 * 16
    assert x.shape == (1, facts["piece_context_left"] + hop + facts["piece_context_right"], 2)
    keras_out = LoadedModel.of_keras(model, cfg).predict(x)  # the same window through Keras
    for s in cfg.sources:
        assert out[s].shape == (1, hop, 2)
        np.testing.assert_allclose(out[s], keras_out[s][:, :hop], atol=1e-4)
    keras_file = version_dir.parent.parent.parent / "tiny.keras"
    assert main(["export", str(keras_file), "--out", str(tmp_path / "m" / "2"), "--no-warmup"]) == 0, \
        capsys.readouterr().err
    assert (tmp_path / "m" / "2" / "saved_model.pb").is_file()
    assert not (tmp_path / "m" / "2" / "assets.extra" / "tf_serving_warmup_requests").exists()


def _batching_parameters_proto():
    """tensorflow.serving.BatchingParameters, transcribed field by field from
    tensorflow_serving/servables/tensorflow/session_bundle_config.proto (tensorflow-serving-api does not ship it)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2
    f = descriptor_pb2.FileDescriptorProto(name="batching_parameters_test.proto", package="tensorflow.serving",
                                           syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    m = f.message_type.add(name="BatchingParameters")
    T = descriptor_pb2.FieldDescriptorProto
    for number, name, kind, type_name in ((1, "max_batch_size", T.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
                                          (2, "batch_timeout_micros", T.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
                                          (3, "max_enqueued_batches", T.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
                                          (4, "num_batch_threads", T.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
                                          (5, "thread_pool_name", T.TYPE_MESSAGE, ".google.protobuf.StringValue"),
                                          (6, "allowed_batch_sizes", T.TYPE_INT64, None),
                                          (7, "pad_variable_length_inputs", T.TYPE_BOOL, None)):
        field = m.field.add(name=name, number=number, type=kind,
                            label=T.LABEL_REPEATED if name == "allowed_batch_sizes" else T.LABEL_OPTIONAL)
        if type_name:
            field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def test_batching_is_safe(exported):
    """What TF Serving's BatchingSession does (batching_session.cc): concatenate requests along dimension 0
    (refusing unequal other dimensions unless pad_variable_length_inputs), run once, split every output along
    dimension 0 (refusing an output without it). Two pieces in one batch must give what each gives alone (up to
    the float32 rounding of another GEMM blocking; one piece leaking into the other would differ by ~0.1),
    model_info must answer a batch, and batching_parameters.txt must parse as BatchingParameters with padding off."""
    from google.protobuf import text_format
    _, cfg, version_dir = exported
    run, _ = _session(version_dir)
    facts = json.loads((version_dir / "assets.extra" / "waveunet.json").read_text())
    length = facts["piece_context_left"] + 3 * 16 * 40 + facts["piece_context_right"]
    a, b = noise(length, 2, seed=11)[None], noise(length, 2, seed=12)[None]
    alone = [run("piece", a), run("piece", b)]
    together = run("piece", np.concatenate([a, b]))
    # 1e-4: Eigen's convolutions (TensorFlow's path on AVX2-only CPUs, e.g. Zen 3) block a batch of two
    # differently from one piece: measured up to 1.2e-5 apart there, the same to 1e-6 with oneDNN (Zen 4)
    for s in cfg.sources:
        np.testing.assert_allclose(together[s][0:1], alone[0][s], rtol=0, atol=1e-4)
        np.testing.assert_allclose(together[s][1:2], alone[1][s], rtol=0, atol=1e-4)
        assert np.abs(alone[0][s] - alone[1][s]).max() > 0.1  # the two pieces' outputs are far apart
    info = run("model_info", np.zeros((3, 1, 2), np.float32))
    assert all(v.ndim >= 1 and v.shape[0] == 3 for v in info.values())
    assert read_facts({k: v[1:2] for k, v in info.items()}) == facts

    params = text_format.Parse((version_dir.parent / "batching_parameters.txt").read_text(),
                               _batching_parameters_proto()())
    assert params.pad_variable_length_inputs is False
    assert params.num_batch_threads.value >= 1 and params.max_batch_size.value >= 1  # "Must be >= 1"
    assert params.HasField("batch_timeout_micros") and params.max_enqueued_batches.value >= 1
    assert not params.allowed_batch_sizes or params.allowed_batch_sizes[-1] == params.max_batch_size.value


def test_force_replaces_only_a_saved_model_and_refuses_colliding_versions(exported, tmp_path, capsys):
    """Issue 12 #4: --force deleted whatever was at --out; `01` and `1` are one version for TF Serving."""
    _, _, version_dir = exported
    keras_file = version_dir.parent.parent.parent / "tiny.keras"
    root = tmp_path / "models"
    user = root / "3"
    user.mkdir(parents=True)
    (user / "notes.txt").write_text("mine")
    mixed = root / "4"
    shutil.copytree(version_dir, mixed)
    (mixed / "notes.txt").write_text("mine too")
    shutil.copytree(version_dir, root / "05")
    for out, code, must_name in ((user, 1, "saved_model.pb"), (mixed, 1, "notes.txt"), (root / "5", 1, "05"),
                                 (root / "005", 2, "as version 5")):
        capsys.readouterr()
        assert main(["export", str(keras_file), "--out", str(out), "--force"]) == code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and must_name in err and "Traceback" not in err, err
    assert (user / "notes.txt").read_text() == "mine" and (mixed / "notes.txt").read_text() == "mine too"
    assert (mixed / "saved_model.pb").read_bytes() == (version_dir / "saved_model.pb").read_bytes()
    assert not (root / "5").exists()


KILL_SCRIPT = """
import os, shutil, sys
from pathlib import Path
from waveunet_tf.serving import export
out, new, kill_at = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
real_rmtree, real_rename = shutil.rmtree, os.rename

def rmtree(path, *args, **kwargs):  # kill -9 right after a model folder is deleted
    was_model = (Path(path) / "saved_model.pb").exists()
    real_rmtree(path, *args, **kwargs)
    if was_model and kill_at == "rmtree":
        os.kill(os.getpid(), 9)

def rename(a, b):  # kill -9 right after the live version folder is renamed away
    real_rename(a, b)
    if kill_at == "rename" and Path(a) == out:
        os.kill(os.getpid(), 9)

shutil.rmtree, os.rename = rmtree, rename
export._write_version = lambda model, cfg, folder, warmup: shutil.copytree(new, folder, dirs_exist_ok=True)
export.export_saved_model(None, None, out, force=True)
"""


@pytest.mark.parametrize("kill_at", ["rmtree", "rename"])
def test_a_killed_force_export_leaves_the_old_or_the_new_version(exported, tmp_path, kill_at):
    """Issue 12 #4: --force deleted the old version before renaming the new one in, so a kill between the two (or
    TF Serving polling then) found no version. Killed -9 right after any model folder is deleted or the live
    version renamed away, DIR/1 must hold a whole SavedModel, the old or the new; the next export cleans up."""
    _, _, version_dir = exported
    out = tmp_path / "models" / "1"
    shutil.copytree(version_dir, out)
    new = tmp_path / "new"
    shutil.copytree(version_dir, new)
    (new / "assets.extra" / "waveunet.json").write_text('{"marker": "new"}')
    old_marker = (out / "assets.extra" / "waveunet.json").read_text()
    res = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(out), str(new), kill_at], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode in (0, -9), res.stderr[-2000:]
    assert (out / "saved_model.pb").is_file() and (out / "variables").is_dir()
    assert (out / "assets.extra" / "waveunet.json").read_text() in (old_marker, '{"marker": "new"}')
    res = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(out), str(new), "never"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "assets.extra" / "waveunet.json").read_text() == '{"marker": "new"}'
    assert sorted(p.name for p in out.parent.iterdir()) == [".1.export.lock", "1"]


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


def test_a_version_folder_that_appears_during_the_export_is_not_replaced_without_force(exported, tmp_path,
                                                                                        monkeypatch):
    """The check before writing is not enough: an export takes minutes, and a folder created at --out meanwhile
    (by hand, or a copy) must be refused at the swap as it would have been at the start."""
    from waveunet_tf.serving import export as export_module
    _, _, version_dir = exported
    keras_file = version_dir.parent.parent.parent / "tiny.keras"
    out = tmp_path / "models" / "7"
    real_write = export_module._write_version

    def write_then_someone_creates_out(*args, **kwargs):
        real_write(*args, **kwargs)
        out.mkdir()
        (out / "notes.txt").write_text("mine")

    monkeypatch.setattr(export_module, "_write_version", write_then_someone_creates_out)
    assert main(["export", str(keras_file), "--out", str(out)]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert not [p for p in out.parent.iterdir() if ".partial" in p.name]
