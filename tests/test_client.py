"""`waveunet client` against a server speaking TF Serving's REST and gRPC APIs (tests/fake_tf_serving.py), and
against the real tensorflow_model_server where it is installed.

Error lines are checked against what TF Serving's APIs define (the HTTP code TF Serving gives each status, the
gRPC status names, the server the client was pointed at), never against the test server's own wording."""

import json
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
from waveunet_tf.errors import UsageError, UserError
from waveunet_tf.separate import separate_array
from waveunet_tf.serving import client
from waveunet_tf.serving.export import export_saved_model

# 0.05 s at 22050 Hz = 1102 samples, rounded down to 1088 (a multiple of 2**4), plus 247 + 252 samples of context
PIECE = (1, 247 + 1088 + 252, 2)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny M4 with different weights exported as versions 1 and 2 of one model."""
    root = tmp_path_factory.mktemp("serving")
    out = {}
    for version, seed in ((1, 0), (2, 1)):
        model, cfg = tiny_model(seed=seed)
        out[version] = (model, cfg, export_saved_model(model, cfg, root / "wun" / str(version)))
    return out


@pytest.fixture(scope="module")
def served(models):
    """Versions 1 and 2, labelled stable and canary; the latest is 2."""
    with FakeTFServing({v: m[2] for v, m in models.items()}, "wun", labels={"stable": 1, "canary": 2},
                       lifetime=600) as server:
        yield server


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _songs(tmp_path, cfg):
    """A stereo song at the model's rate and a mono one at 44.1 kHz."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    song, mono = noise(7001, 2, seed=5), noise(9000, 1, seed=6)
    sf.write(tmp_path / "song.wav", song, cfg.sample_rate, subtype="FLOAT")
    sf.write(tmp_path / "mono.wav", mono, 44100, subtype="FLOAT")
    return {"song": (song, cfg.sample_rate), "mono": (mono, 44100)}


def _run_client(tmp_path, where, *options, out="out"):
    return main(["client", str(tmp_path / "song.wav"), str(tmp_path / "mono.wav"), *where, "--model-name", "wun",
                 "-o", str(tmp_path / out), "--chunk-seconds", "0.05", *options])


def _stems(folder, sources):
    return {s: sf.read(folder / f"{s}.wav", dtype="float32", always_2d=True) for s in sources}


def _check_stems(tmp_path, songs, model, cfg, out="out"):
    """The stems equal `separate_array` with the model, at the input's rate and length."""
    for name, (audio, rate) in songs.items():
        for s, (got, got_rate) in _stems(tmp_path / out / name, cfg.sources).items():
            assert got_rate == rate and got.shape == audio.shape
            np.testing.assert_allclose(got, separate_array(model, cfg, audio, rate)[s], atol=1e-4)


@pytest.mark.parametrize("api", ["rest", "grpc"])
def test_client_joins_equal_pieces_into_the_whole_song(models, served, api, tmp_path, capsys):
    """Pieces of 0.05 s: the stems equal one whole-song call (serving_default) and `separate_array`; every piece
    has the same length (the last zero-padded), so TF Serving's batching can join any two; --concurrency 3 gives
    exactly the stems of --concurrency 1."""
    model, cfg, _ = models[2]
    songs = _songs(tmp_path, cfg)
    where = ["--url", served.rest_url] if api == "rest" else ["--grpc", served.grpc_target]
    before = len(served.requests)
    assert _run_client(tmp_path, where, "--concurrency", "1") == 0, capsys.readouterr().err
    pieces = [r for r in served.requests[before:] if r[2] == "piece"]
    assert {r[0] for r in pieces} == {api} and {r[1] for r in pieces} == {2}
    assert len(pieces) == 7 + 5  # ceil(7001 / 1088) + ceil(4500 / 1088): the mono song is 4500 samples at 22050 Hz
    assert {r[3]["mixture"] for r in pieces} == {PIECE}
    _check_stems(tmp_path, songs, model, cfg)
    whole = client.RestServer(served.rest_url, "wun").predict("serving_default", songs["song"][0][None])
    for s, (got, _) in _stems(tmp_path / "out" / "song", cfg.sources).items():
        np.testing.assert_allclose(got, whole[s][0], atol=1e-4)
    assert _run_client(tmp_path, where, "--concurrency", "3", out="out3") == 0, capsys.readouterr().err
    for name in songs:
        one, three = _stems(tmp_path / "out" / name, cfg.sources), _stems(tmp_path / "out3" / name, cfg.sources)
        for s in cfg.sources:
            np.testing.assert_array_equal(one[s][0], three[s][0])


def test_client_through_tf_servings_batching(models, tmp_path, capsys):
    """With --enable_batching TF Serving joins concurrent requests along dimension 0 and splits every output back
    (the test server follows batching_session.cc): the client's equal pieces, two in flight, join into batches of
    two and give the same stems, and model_info answers with the batch dimension batching needs."""
    model, cfg, version_dir = models[1]
    songs = _songs(tmp_path, cfg)
    with FakeTFServing(version_dir, "wun", lifetime=120, batching=2) as server:
        assert _run_client(tmp_path, ["--grpc", server.grpc_target], "--concurrency", "2") == 0, \
            capsys.readouterr().err
        assert max(server.batch_sizes) == 2
    _check_stems(tmp_path, songs, model, cfg)


@pytest.mark.parametrize("api", ["rest", "grpc"])
def test_version_numbers_and_labels_reach_their_version(models, served, api, tmp_path, capsys):
    """TF Serving's model_spec: a version number, a label (stable -> 1, canary -> 2), or the latest (2). Each run's
    stems must be those of the version addressed (the two versions have different weights)."""
    songs = _songs(tmp_path, models[1][1])
    where = ["--url", served.rest_url] if api == "rest" else ["--grpc", served.grpc_target]
    for options, version in ((["--model-version", "1"], 1), (["--version-label", "stable"], 1),
                             (["--version-label", "canary"], 2), ([], 2)):
        out = "out" + "".join(options)
        assert _run_client(tmp_path, where, *options, out=out) == 0, capsys.readouterr().err
        model, cfg, _ = models[version]
        _check_stems(tmp_path, songs, model, cfg, out)
    # not served: TF Serving answers NOT_FOUND (HTTP 404) for a version, INVALID_ARGUMENT (HTTP 400) for a label
    expected = {"rest": ("HTTP 404", "HTTP 400"), "grpc": ("NOT_FOUND", "INVALID_ARGUMENT")}[api]
    for options, status in ((["--model-version", "3"], expected[0]), (["--version-label", "beta"], expected[1])):
        capsys.readouterr()
        assert _run_client(tmp_path, where, *options, out="none") == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and status in err and where[1] in err and "Traceback" not in err, err
    assert not (tmp_path / "none").exists()


def record_backoff(monkeypatch) -> list:
    """The client's waits between attempts, recorded instead of slept."""
    sleeps = []
    monkeypatch.setattr(client.retrying, "__defaults__", (sleeps.append,))
    return sleeps


def assert_backoff(sleeps, retries):
    """One wait per retry, each the exponential backoff 0.5 * 2**k s times a jitter in [0.5, 1]."""
    assert len(sleeps) == retries, sleeps
    for k, s in enumerate(sleeps):
        assert 0.5 * 0.5 * 2 ** k <= s <= 0.5 * 2 ** k, sleeps


@pytest.mark.parametrize("api", ["rest", "grpc"])
def test_client_retries_a_server_that_comes_back(models, api, tmp_path, capsys, monkeypatch):
    """A server that resets the first two connections (restarting), then one that answers UNAVAILABLE / HTTP 503
    twice (loading): the client retries with backoff and succeeds; with too few retries it gives up with one line
    naming the server."""
    model, cfg, version_dir = models[1]
    songs = _songs(tmp_path, cfg)
    for kind in ("refuse_first", "unavailable_first"):
        with FakeTFServing(version_dir, "wun", lifetime=120, **{kind: 2}) as server:
            where = ["--url", server.rest_url] if api == "rest" else ["--grpc", server.grpc_target]
            assert _run_client(tmp_path, where, "--retries", "3", out=kind) == 0, capsys.readouterr().err
            if kind == "refuse_first":
                assert server.refused == 2
            _check_stems(tmp_path, songs, model, cfg, kind)
        with FakeTFServing(version_dir, "wun", lifetime=120, **{kind: 10}) as server:
            where = ["--url", server.rest_url] if api == "rest" else ["--grpc", server.grpc_target]
            capsys.readouterr()
            sleeps = record_backoff(monkeypatch)
            assert _run_client(tmp_path, where, "--retries", "2", out="gave-up") == 1
            err = capsys.readouterr().err
            assert_backoff(sleeps, 2)
            assert err.count("\n") == 1 and where[1] in err and "3 attempts" in err and "Traceback" not in err, err
            if kind == "unavailable_first" and api == "rest":
                assert "HTTP 503" in err
            if kind == "unavailable_first" and api == "grpc":
                assert "UNAVAILABLE" in err


@pytest.mark.parametrize("api", ["rest", "grpc"])
def test_client_gives_up_on_a_server_that_never_answers(models, api, tmp_path, capsys, monkeypatch):
    _, cfg, version_dir = models[1]
    _songs(tmp_path, cfg)
    with FakeTFServing(version_dir, "wun", lifetime=60, silent=True) as server:
        where = ["--url", server.rest_url] if api == "rest" else ["--grpc", server.grpc_target]
        sleeps = record_backoff(monkeypatch)
        assert _run_client(tmp_path, where, "--timeout", "1", "--retries", "3") == 1
        err = capsys.readouterr().err
    # REST: a request that timed out is not repeated; gRPC: 4 attempts of --timeout 1 with a backoff between them
    assert_backoff(sleeps, 0 if api == "rest" else 3)
    assert err.count("\n") == 1 and where[1] in err and "Traceback" not in err, err
    # REST: the request times out; gRPC: the connection never completes its handshake, which gRPC reports as
    # UNAVAILABLE, so it is retried like a server that is down
    assert ("did not answer within 1 s" if api == "rest" else "gave up after 4 attempts") in err, err
    assert not (tmp_path / "out").exists()


def test_grpc_message_limits_follow_the_piece_size(models, served):
    """gRPC refuses messages over 4 MB unless told otherwise: a piece of the default 30 s (661987 samples x 2
    channels of float32, 5.3 MB) needs the limits the client sets from the piece size."""
    model, cfg, _ = models[2]
    song = noise(31 * 22050, 2, seed=8)
    server = client.connect(grpc_target=served.grpc_target, name="wun")
    facts = client.served_facts(server)
    with pytest.raises(UserError, match="RESOURCE_EXHAUSTED"):
        client.separate_with_server(server, facts, song, 22050)
    assert client.fit_messages(server, facts) >= 4 * 661987 * 2
    got = client.separate_with_server(server, facts, song, 22050)
    ref = separate_array(model, cfg, song, 22050)
    for s in cfg.sources:
        np.testing.assert_allclose(got[s], ref[s], atol=1e-4)


def test_client_errors_are_one_line(served, tmp_path, capsys):
    sf.write(tmp_path / "song.wav", noise(3000, 2), 22050)
    down = _free_port()
    cases = [(["--url", f"http://127.0.0.1:{down}", "--model-name", "wun", "--retries", "0"], f"127.0.0.1:{down}"),
             (["--grpc", f"127.0.0.1:{down}", "--model-name", "wun", "--retries", "0"], f"127.0.0.1:{down}"),
             (["--url", served.rest_url, "--model-name", "other"], "HTTP 404"),
             (["--grpc", served.grpc_target, "--model-name", "other"], "NOT_FOUND")]
    for args, message in cases:
        capsys.readouterr()
        assert main(["client", str(tmp_path / "song.wav"), *args, "-o", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
    base = ["client", str(tmp_path / "song.wav"), "--url", served.rest_url, "--model-name", "wun", "-o",
            str(tmp_path / "out")]
    for bad in (["--chunk-seconds", "0"], ["--concurrency", "0"], ["--model-version", "-1"], ["--timeout", "0"]):
        capsys.readouterr()
        assert main([*base, *bad]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_code:  # argparse: mutually exclusive options
        main([*base, "--model-version", "1", "--version-label", "stable"])
    assert exit_code.value.code == 2
    # a wrong rank or dtype reaches the graph and comes back as INVALID_ARGUMENT (HTTP 400); the server goes on
    with pytest.raises(UserError, match="HTTP 400"):
        client.RestServer(served.rest_url, "wun").predict("serving_default", np.zeros((50, 2), np.float32))
    with pytest.raises(UserError, match="INVALID_ARGUMENT"):
        client.GrpcServer(served.grpc_target, "wun").predict("serving_default", np.zeros((1, 50, 3), np.float32))
    g = client.GrpcServer(served.grpc_target, "wun")
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "wun"
    req.inputs["mixture"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 50, 2), np.float64)))
    with pytest.raises(UserError, match="INVALID_ARGUMENT"):
        g._call(g.stub.Predict, req)
    assert client.RestServer(served.rest_url, "wun").predict("serving_default", np.zeros((1, 50, 2)))["vocals"].shape \
        == (1, 50, 2)


def test_bench_client_reports_per_song_and_per_request(served, capsys):
    """1 s songs at 22050 Hz in pieces of 0.2 s (4410 samples, rounded down to 4400): ceil(22050 / 4400) = 6
    requests per song."""
    capsys.readouterr()
    assert main(["bench", "client", "--url", served.rest_url, "--model-name", "wun", "--seconds", "1", "--songs", "2",
                 "--chunk-seconds", "0.2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["requests_per_song"] == 6 and result["version"] == 2 and result["audio_s"] == 1.0
    assert result["s_per_song"] > 0 and result["requests_per_s"] > 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tensorflow_model_server") is None,
                    reason="tensorflow_model_server is not on PATH (install TF Serving or use its docker image)")
def test_client_against_the_real_model_server(models, tmp_path, capsys):
    version_dir = models[1][2]
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
        model, cfg, _ = models[2]  # the server loads the latest version
        for where in (["--url", f"http://127.0.0.1:{rest}"], ["--grpc", f"127.0.0.1:{grpc_port}"]):
            sub = tmp_path / where[0].strip("-")
            songs = _songs(sub, cfg)
            assert _run_client(sub, where) == 0, capsys.readouterr().err
            _check_stems(sub, songs, model, cfg)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_cut_http_answer_is_retried_and_the_answer_after_it_used(monkeypatch):
    """An answer cut short (http.client.IncompleteRead, e.g. a proxy dropping a restarting server) is a failure
    a retry may cure, like a reset connection: retried, and the next whole answer is what the client returns."""
    import http.client
    import io
    answers = [http.client.IncompleteRead(b'{"metad'), io.BytesIO(b'{"ok": 1}')]

    def urlopen(req, timeout):
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(client, "BACKOFF_S", 0.0)
    server = client.RestServer("http://127.0.0.1:1", "m", retries=1)
    assert server._request("/v1/models/m") == {"ok": 1} and answers == []


@pytest.mark.parametrize("where, message", [
    ({"url": "http://"}, "--url must name a host, e.g. http://localhost:8501, not 'http://'"),
    ({"url": "http://:8501"}, "--url must name a host"),
    ({"url": "http://local host:8501"}, "--url must name a host"),
    ({"grpc_target": "localhost"}, "--grpc takes HOST:PORT (e.g. localhost:8500), not 'localhost'"),
    ({"grpc_target": " "}, "--grpc takes HOST:PORT"),
    ({"grpc_target": ":8500"}, "--grpc takes HOST:PORT"),
    ({"url": "http://localhost:8501", "name": " "}, "--model-name must be the model's name on the server"),
])
def test_an_address_or_name_no_server_answers_to_is_refused_before_connecting(where, message):
    """Issue 21, 2: such values failed late (after retries) or with a TypeError."""
    with pytest.raises(UsageError) as e:
        client.connect(**{"name": "wun", **where}, retries=0)
    assert message in str(e.value)
