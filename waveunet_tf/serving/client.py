"""A client for a Wave-U-Net served by TensorFlow Serving (``waveunet export``'s SavedModel), over REST or gRPC.

It reads the model from the server (the signatures from its metadata, then the ``model_info`` signature: sample
rate, channels, sources, context), decodes and resamples songs locally, and sends each song in pieces of one
length (:mod:`waveunet_tf.serving.pieces`) to the ``piece`` signature, each carrying its context from the
neighbouring audio, so the centres join exactly into what one whole-song call would return.

What a deployment needs of it:

- the model addressed as TF Serving's APIs define it: the latest version, ``--model-version N``
  (``/v1/models/NAME/versions/N``, gRPC ``model_spec.version``) or ``--version-label L``
  (``/v1/models/NAME/labels/L``, ``model_spec.version_label``); the version the metadata came from is then used
  for every piece, so a song's stems come from one model even while the server loads a new version;
- a timeout per request, and bounded retries with backoff where a server restarting or loading answers: gRPC
  UNAVAILABLE, HTTP 503 (TF Serving's REST code for UNAVAILABLE, and a proxy's while it has no backend), a refused
  or reset connection; one line naming the server and the last error when they are used up;
- several pieces in flight (``concurrency``), joined in order;
- gRPC message limits set from the piece size (gRPC refuses messages over 4 MB by default).
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from waveunet_tf.errors import UsageError, UserError, first_line
from waveunet_tf.model_io import read_facts
from waveunet_tf.separate import from_model_output, run_windows, to_model_input, write_separated
from waveunet_tf.serving import pieces
from waveunet_tf.serving.export import SIGNATURES
from waveunet_tf.serving.production import DEFAULT_CONCURRENCY

DEFAULT_TIMEOUT_S = 120.0  # one request; a 30-s piece of the full-size M4 takes about 2 s on 2 CPU cores
DEFAULT_RETRIES = 5  # backoff 0.5, 1, 2, 4, 8 s (times a random 0.5-1): ~15 s for a server to come back
BACKOFF_S, MAX_BACKOFF_S = 0.5, 8.0
MESSAGE_HEADROOM = 1 << 16  # protobuf framing around the float data of a request or an answer


class Transient(Exception):
    """A failure a retry may cure (the server restarting or loading a version)."""


def retrying(attempt, where: str, retries: int, sleep=time.sleep):
    """``attempt()``, retried up to ``retries`` times with exponential backoff while it raises :class:`Transient`;
    then one :class:`UserError` naming ``where`` and the last error."""
    start = time.monotonic()
    for k in range(retries + 1):
        try:
            return attempt()
        except Transient as e:
            last = e
            if k < retries:  # jittered, so clients that lost the same server do not come back in step
                sleep(min(MAX_BACKOFF_S, BACKOFF_S * 2**k) * random.uniform(0.5, 1.0))
    raise UserError(f"{where} is unavailable: gave up after {retries + 1} attempts in "
                    f"{time.monotonic() - start:.1f} s; last error: {last}") from last


class RestServer:
    """TF Serving's REST API at ``url`` (``http://HOST:8501``), model ``name`` (latest, ``version`` or ``label``)."""

    def __init__(self, url: str, name: str, version=None, label=None, timeout=DEFAULT_TIMEOUT_S,
                 retries=DEFAULT_RETRIES):
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--url must start with http:// or https://, e.g. http://localhost:8501, not {url!r}")
        self.url, self.name, self.version, self.label = url.rstrip("/"), name, version, label
        self.timeout, self.retries = timeout, retries
        self.where = f"TF Serving at {self.url}"

    def _model_path(self) -> str:
        path = "/v1/models/" + urllib.parse.quote(self.name, safe="")
        if self.version is not None:
            return f"{path}/versions/{int(self.version)}"
        if self.label is not None:
            return f"{path}/labels/{urllib.parse.quote(self.label, safe='')}"
        return path

    def _request(self, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        return retrying(lambda: self._once(self.url + path, data), self.where, self.retries)

    def _once(self, url: str, data):
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            message = _error_message(e)
            if e.code == 503:
                raise Transient(f"HTTP 503: {message}") from e
            hint = " (the server's --rest_api_timeout_in_ms: try a smaller --chunk-seconds)" if e.code == 504 else ""
            raise UserError(f"{self.where} answered HTTP {e.code} for {_describe(self)}: {message}{hint}") from e
        except TimeoutError as e:
            raise UserError(f"{self.where} did not answer within {self.timeout:g} s (--timeout)") from e
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError):
                raise UserError(f"{self.where} did not answer within {self.timeout:g} s (--timeout)") from e
            if isinstance(reason, ConnectionError):
                raise Transient(f"{first_line(reason)}") from e
            raise UserError(f"cannot reach {self.where}: {first_line(reason)}") from e
        except ConnectionError as e:  # refused, reset, or closed before an answer (http.client.RemoteDisconnected)
            raise Transient(f"{type(e).__name__}: {first_line(e)}") from e
        except http.client.HTTPException as e:  # a cut answer (IncompleteRead) or a garbled one, e.g. from a proxy
            raise Transient(f"{type(e).__name__}: {first_line(e)}") from e
        except ValueError as e:
            raise UserError(f"{self.where} did not answer JSON; is {self.url} TF Serving's REST port?") from e

    def metadata(self):
        """-> (``{signature: {"inputs": {name: shape}, "outputs": {...}}}``, version that answered or None)."""
        meta = self._request(self._model_path() + "/metadata")
        try:
            sigs = meta["metadata"]["signature_def"]["signature_def"]
        except (KeyError, TypeError) as e:
            raise UserError(f"{self.where} sent model metadata without signatures") from e
        version = (meta.get("model_spec") or {}).get("version")
        return {name: _signature_from_json(s) for name, s in sigs.items()}, _int_or_none(version)

    def predict(self, signature: str, mixture: np.ndarray) -> dict:
        out = self._request(self._model_path() + ":predict",
                            {"signature_name": signature, "inputs": {"mixture": np.asarray(mixture).tolist()}})
        outputs = out.get("outputs") if isinstance(out, dict) else None
        if not isinstance(outputs, dict):  # TF Serving drops the name of a single output
            raise UserError(f"{self.where}: signature {signature!r} answered without one output per source")
        return {k: v if _is_strings(v) else np.asarray(v, np.float32) for k, v in outputs.items()}

    def limit_messages(self, nbytes: int) -> None:
        """REST has no message limit to set (TF Serving reads any body)."""


class GrpcServer:
    """TF Serving's gRPC PredictionService at ``target`` (``HOST:8500``), model ``name``."""

    def __init__(self, target: str, name: str, version=None, label=None, timeout=DEFAULT_TIMEOUT_S,
                 retries=DEFAULT_RETRIES):
        import grpc
        if "://" in target:
            raise UsageError(f"--grpc takes HOST:PORT (e.g. localhost:8500), not {target!r}")
        self.target, self.name, self.version, self.label = target, name, version, label
        self.timeout, self.retries, self.grpc = timeout, retries, grpc
        self.where = f"TF Serving at {target} (gRPC)"
        self.channel = None
        self.limit_messages(4 * 1024 * 1024)  # gRPC's default until the piece size is known

    def limit_messages(self, nbytes: int) -> None:
        """(Re)open the channel with send and receive limits of ``nbytes``, and reconnection attempts frequent
        enough for the retries to find a restarted server."""
        from tensorflow_serving.apis import prediction_service_pb2_grpc
        if self.channel is not None:
            self.channel.close()
        self.channel = self.grpc.insecure_channel(self.target, options=[
            ("grpc.max_send_message_length", nbytes), ("grpc.max_receive_message_length", nbytes),
            ("grpc.initial_reconnect_backoff_ms", int(BACKOFF_S * 500)),
            ("grpc.min_reconnect_backoff_ms", int(BACKOFF_S * 500)),
            ("grpc.max_reconnect_backoff_ms", int(MAX_BACKOFF_S * 1000))])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def _spec(self, spec, signature=""):
        spec.name = self.name
        if signature:
            spec.signature_name = signature
        if self.version is not None:
            spec.version.value = int(self.version)
        elif self.label is not None:
            spec.version_label = self.label

    def _call(self, method, request):
        return retrying(lambda: self._once(method, request), self.where, self.retries)

    def _once(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self.grpc.RpcError as e:
            code = e.code()
            if code == self.grpc.StatusCode.UNAVAILABLE:
                raise Transient(f"UNAVAILABLE: {first_line(e.details() or '')}") from e
            if code == self.grpc.StatusCode.DEADLINE_EXCEEDED:
                raise UserError(f"{self.where} did not answer within {self.timeout:g} s (--timeout)") from e
            raise UserError(f"{self.where} answered {code.name} for {_describe(self)}: "
                            f"{first_line(e.details() or '')}") from e

    def metadata(self):
        from tensorflow_serving.apis import get_model_metadata_pb2
        req = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(req.model_spec)
        req.metadata_field.append("signature_def")
        resp = self._call(self.stub.GetModelMetadata, req)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        resp.metadata["signature_def"].Unpack(sig_map)
        version = resp.model_spec.version.value if resp.model_spec.HasField("version") else None
        return {name: _signature_from_proto(s) for name, s in sig_map.signature_def.items()}, version

    def predict(self, signature: str, mixture: np.ndarray) -> dict:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2
        req = predict_pb2.PredictRequest()
        self._spec(req.model_spec, signature)
        req.inputs["mixture"].CopyFrom(tf.make_tensor_proto(np.asarray(mixture, np.float32)))
        resp = self._call(self.stub.Predict, req)
        out = {}
        for k, v in resp.outputs.items():
            a = tf.make_ndarray(v)
            out[k] = [b.decode() for b in a.reshape(-1)] if a.dtype.kind in "SO" else a
        return out


def _describe(server) -> str:
    if server.version is not None:
        return f"version {server.version} of model {server.name!r}"
    if server.label is not None:
        return f"version label {server.label!r} of model {server.name!r}"
    return f"model {server.name!r}"


def _error_message(e) -> str:
    """TF Serving's error body is ``{"error": "<message>"}``; a proxy's may be anything."""
    try:
        body = e.read()
        return first_line(json.loads(body).get("error", "")) or e.reason
    except (ValueError, AttributeError, OSError):
        return str(e.reason)


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _is_strings(v) -> bool:
    while isinstance(v, list) and v:
        v = v[0]
    return isinstance(v, str)


def _signature_from_json(s: dict) -> dict:
    def shape(t):
        dims = t.get("tensor_shape", t.get("tensorShape", {})).get("dim", [])
        return [int(d.get("size", -1)) for d in dims]
    return {"inputs": {k: shape(v) for k, v in s.get("inputs", {}).items()},
            "outputs": {k: shape(v) for k, v in s.get("outputs", {}).items()}}


def _signature_from_proto(s) -> dict:
    def shape(t):
        return [d.size for d in t.tensor_shape.dim]
    return {"inputs": {k: shape(v) for k, v in s.inputs.items()},
            "outputs": {k: shape(v) for k, v in s.outputs.items()}}


def connect(url=None, grpc_target=None, name="waveunet", version=None, label=None, timeout=DEFAULT_TIMEOUT_S,
            retries=DEFAULT_RETRIES):
    """A :class:`RestServer` (``url``) or :class:`GrpcServer` (``grpc_target``) for model ``name``."""
    if version is not None and label is not None:
        raise UsageError("give --model-version or --version-label, not both (TF Serving refuses both)")
    if version is not None and not 0 <= int(version) < 2**63:
        raise UsageError(f"--model-version must be a version number (0 or more), not {version}")
    if timeout <= 0 or retries < 0:
        raise UsageError(f"--timeout must be positive and --retries at least 0, not {timeout} and {retries}")
    check_where(url, grpc_target, name)
    kind = RestServer if url else GrpcServer
    return kind(url or grpc_target, name, version, label, timeout, retries)


def check_where(url, grpc_target, name) -> None:
    """One line (:class:`UsageError`) for an address or model name that no server could answer to, before any
    connection is tried: a URL without a host, a gRPC target that is not HOST:PORT, a blank model name."""
    if not name or name != name.strip():
        raise UsageError(f"--model-name must be the model's name on the server (e.g. waveunet), not {name!r}")
    if url:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("http", "https") and (not parts.hostname or any(c.isspace() for c in url)):
            raise UsageError(f"--url must name a host, e.g. http://localhost:8501, not {url!r}")
    elif grpc_target is not None and "://" not in grpc_target:
        host, _, port = grpc_target.rpartition(":")
        if not host or any(c.isspace() for c in grpc_target) or not port.isdigit():
            raise UsageError(f"--grpc takes HOST:PORT (e.g. localhost:8500), not {grpc_target!r}")


def served_facts(server) -> dict:
    """The served model's facts: the signatures from the metadata (channels, source names), then the values of
    its ``model_info`` signature. The server is then pinned to the version that answered the metadata."""
    sigs, version = server.metadata()
    missing = [s for s in SIGNATURES if s not in sigs]
    if missing:
        raise UserError(f"{_describe(server)} on {server.where} has no signature {missing[0]!r}: serve a "
                        f"SavedModel written by `waveunet export` (it has {', '.join(sorted(sigs)) or 'none'})")
    shape = sigs["piece"]["inputs"].get("mixture")
    if not shape or len(shape) != 3 or shape[-1] < 1:
        raise UserError(f"{_describe(server)}: the piece signature takes no [batch, time, channels] `mixture`")
    if version is not None:
        server.version, server.label = version, None
    channels = shape[-1]
    facts = read_facts(server.predict("model_info", np.zeros((1, 1, channels), np.float32)))
    if facts.get("channels") != channels or sorted(facts.get("sources", [])) != sorted(sigs["piece"]["outputs"]):
        raise UserError(f"{_describe(server)}: model_info disagrees with the signatures")
    return facts


def fit_messages(server, facts: dict, chunk_seconds=pieces.DEFAULT_CHUNK_SECONDS) -> int:
    """Set the server connection's message limit to what a piece and its answer need; returns it (bytes)."""
    plan = pieces.piece_plan(facts, 1, chunk_seconds)
    floats = max(plan.input_length, len(facts["sources"]) * plan.output_length) * int(facts["channels"])
    nbytes = 4 * floats + MESSAGE_HEADROOM
    if nbytes > 2**31 - 1:
        raise UsageError(f"--chunk-seconds {chunk_seconds:g} makes messages of {nbytes / 2**30:.1f} GB, over "
                         "gRPC's 2 GB limit; use a smaller one")
    server.limit_messages(nbytes)
    return nbytes


def separate_with_server(server, facts, audio, rate, chunk_seconds=pieces.DEFAULT_CHUNK_SECONDS, progress=None,
                         concurrency=DEFAULT_CONCURRENCY) -> dict:
    """Separate a song float32 [T, C_in] at ``rate`` on the server -> ``{source: [T, C_in]}`` at ``rate``.

    The song goes to the ``piece`` signature in equal pieces (:func:`waveunet_tf.serving.pieces.piece_plan`),
    ``concurrency`` of them in flight at once; ``progress(seconds)`` after each.
    """
    audio = np.asarray(audio, np.float32)
    audio = audio[:, None] if audio.ndim == 1 else audio
    length, channels = audio.shape
    x = to_model_input(audio, rate, facts["sample_rate"], facts["channels"])
    sources = list(facts["sources"])
    if not np.any(audio):  # the network's biases would otherwise invent sound
        return {s: np.zeros_like(audio) for s in sources}
    plan = pieces.piece_plan(facts, x.shape[0], chunk_seconds)
    step = None if progress is None else (lambda n: progress(n / facts["sample_rate"]))
    est = run_windows(lambda window: server.predict("piece", window), plan, x, sources, step, concurrency)
    del x
    return {s: from_model_output(est.pop(s), facts["sample_rate"], rate, length, channels) for s in sources}


def check_concurrency(concurrency) -> int:
    if not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"--concurrency must be a positive integer, not {concurrency!r}")
    return concurrency


def client_files(paths, out_dir, server, chunk_seconds=pieces.DEFAULT_CHUNK_SECONDS, force=False,
                 concurrency=DEFAULT_CONCURRENCY):
    """``waveunet client``: separate files on a TF Serving server and write ``out_dir/<song>/<source>.wav``
    (see :func:`waveunet_tf.separate.write_separated`). Returns the song folders written."""
    chunk_seconds = pieces.check_chunk_seconds(chunk_seconds)
    check_concurrency(concurrency)
    facts = served_facts(server)
    fit_messages(server, facts, chunk_seconds)
    return write_separated(paths, out_dir, facts["sources"], force, "client",
                           lambda audio, rate, progress: separate_with_server(server, facts, audio, rate,
                                                                              chunk_seconds, progress, concurrency))
