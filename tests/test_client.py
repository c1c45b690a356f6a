"""`waveunet client` against a server speaking TF Serving's REST and gRPC APIs (tests/fake_tf_serving.py), and
against the real tensorflow_model_server where it is installed."""

import shutil
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from fake_tf_serving import FakeTFServing
from test_separate import noise, tiny_model

from waveunet_tf.cli import main
from waveunet_tf.export import export_saved_model
from waveunet_tf.separation import separate_array
from waveunet_tf.serving_client import RestServer


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    model, cfg = tiny_model()
    root = tmp_path_factory.mktemp("serving")
    version_dir = export_saved_model(model, cfg, root / "wun" / "7")
    with FakeTFServing(version_dir, "wun", lifetime=240) as server:
        yield model, cfg, version_dir, server


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_client(model, cfg, where, tmp_path, capsys, requests=None):
    """Run `waveunet client` on a stereo song at the model's rate and a mono one at 44.1 kHz, in pieces of
    0.05 s; the stems must equal one whole-song call (serving_default over REST) and `separate_array`."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    song = noise(7001, 2, seed=5)
    mono = noise(9000, 1, seed=6)
    sf.write(tmp_path / "song.wav", song, cfg.sample_rate, subtype="FLOAT")
    sf.write(tmp_path / "mono.wav", mono, 44100, subtype="FLOAT")
    out = tmp_path / "out"
    before = len(requests) if requests is not None else 0
    assert main(["client", str(tmp_path / "song.wav"), str(tmp_path / "mono.wav"), *where, "--model-name", "wun",
                 "-o", str(out), "--chunk-seconds", "0.05"]) == 0, capsys.readouterr().err
    if requests is not None:
        pieces = [r for r in requests[before:] if r[1] == "piece"]
        # 0.05 s = 1102 samples, rounded down to 1088 (a multiple of 2**4), plus 247 + 252 samples of context
        assert len(pieces) == 7 + 5 and max(r[2]["mixture"][1] for r in pieces) == 1088 + 247 + 252
    whole = RestServer(where[1], "wun").predict("serving_default", song[None]) if where[0] == "--url" else None
    for s in cfg.sources:
        got, rate = sf.read(out / "song" / f"{s}.wav", dtype="float32", always_2d=True)
        assert rate == cfg.sample_rate and got.shape == song.shape
        np.testing.assert_allclose(got, separate_array(model, cfg, song, cfg.sample_rate)[s], atol=1e-4)
        if whole is not None:
            np.testing.assert_allclose(got, whole[s][0], atol=1e-4)
        got, rate = sf.read(out / "mono" / f"{s}.wav", dtype="float32", always_2d=True)
        assert rate == 44100 and got.shape == mono.shape
        np.testing.assert_allclose(got, separate_array(model, cfg, mono, 44100)[s], atol=1e-4)


def test_client_over_rest(served, tmp_path, capsys):
    model, cfg, _, server = served
    _check_client(model, cfg, ["--url", server.rest_url], tmp_path, capsys, server.requests)
    assert {r[0] for r in server.requests} >= {"rest"}


def test_client_over_grpc(served, tmp_path, capsys):
    model, cfg, _, server = served
    _check_client(model, cfg, ["--grpc", server.grpc_target], tmp_path, capsys, server.requests)
    assert server.requests[-1][0] == "grpc"


def test_client_errors_are_one_line(served, tmp_path, capsys):
    _, cfg, _, server = served
    sf.write(tmp_path / "song.wav", noise(3000, 2), cfg.sample_rate)
    down = _free_port()
    cases = [(["--url", f"http://127.0.0.1:{down}", "--model-name", "wun"], "cannot reach TF Serving"),
             (["--grpc", f"127.0.0.1:{down}", "--model-name", "wun"], "cannot reach TF Serving"),
             (["--url", server.rest_url, "--model-name", "other"], "HTTP 404"),
             (["--grpc", server.grpc_target, "--model-name", "other"], "NOT_FOUND")]
    for args, message in cases:
        capsys.readouterr()
        assert main(["client", str(tmp_path / "song.wav"), *args, "-o", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
    # a wrong rank or dtype reaches the graph and comes back as INVALID_ARGUMENT, and the server keeps serving
    from waveunet_tf.errors import UserError
    from waveunet_tf.serving_client import GrpcServer
    with pytest.raises(UserError, match="HTTP 400"):
        RestServer(server.rest_url, "wun").predict("serving_default", np.zeros((50, 2), np.float32))
    with pytest.raises(UserError, match="INVALID_ARGUMENT"):
        GrpcServer(server.grpc_target, "wun").predict("serving_default", np.zeros((1, 50, 3), np.float32))
    with pytest.raises(UserError, match="INVALID_ARGUMENT.*Expects arg.0. to be float"):
        g = GrpcServer(server.grpc_target, "wun")
        from tensorflow_serving.apis import predict_pb2
        import tensorflow as tf
        req = predict_pb2.PredictRequest()
        req.model_spec.name = "wun"
        req.inputs["mixture"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 50, 2), np.float64)))
        g._call(g.stub.Predict, req)
    assert RestServer(server.rest_url, "wun").predict("serving_default", np.zeros((1, 50, 2)))["vocals"].shape == \
        (1, 50, 2)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tensorflow_model_server") is None,
                    reason="tensorflow_model_server is not on PATH (install TF Serving or use its docker image)")
def test_client_against_the_real_model_server(served, tmp_path, capsys):
    model, cfg, version_dir, _ = served
    rest, grpc_port = _free_port(), _free_port()
    proc = subprocess.Popen(["tensorflow_model_server", f"--port={grpc_port}", f"--rest_api_port={rest}",
                             "--model_name=wun", f"--model_base_path={version_dir.parent}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{rest}/v1/models/wun", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, "tensorflow_model_server did not start"
                time.sleep(0.5)
        _check_client(model, cfg, ["--url", f"http://127.0.0.1:{rest}"], tmp_path / "rest", capsys)
        _check_client(model, cfg, ["--grpc", f"127.0.0.1:{grpc_port}"], tmp_path / "grpc", capsys)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
