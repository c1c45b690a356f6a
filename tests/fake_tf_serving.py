"""A small stand-in for ``tensorflow_model_server`` for the tests: TF Serving's REST API and its gRPC
``PredictionService`` (``Predict``, ``GetModelMetadata``, from tensorflow-serving-api's stubs), on 127.0.0.1 with
free ports, serving one or more versions of one model, with version labels.

What it follows of TF Serving (tensorflow/serving, model_servers/http_rest_api_util.cc, http_server.cc,
server_core.cc, and the REST API guide):
- REST paths are matched with TF Serving's own regular expressions: ``POST /v1/models/NAME[/versions/N |
  /labels/L]:predict``, ``GET /v1/models/NAME[/versions/N | /labels/L][/metadata]``; errors are ``{"error": msg}``
  with the HTTP code TF Serving maps each status to (INVALID_ARGUMENT and FAILED_PRECONDITION 400, NOT_FOUND 404,
  UNAVAILABLE 503, INTERNAL 500).
- ``model_spec``: no version means the latest (highest) version; a version that is not served is NOT_FOUND; a
  label is looked up in the labels (an unknown one is INVALID_ARGUMENT, "Unrecognized servable version label");
  version and label together are INVALID_ARGUMENT. Responses carry the version that answered.
- The SavedModel runs as the model server runs it: the TF1 loader (graph, restore op, ``serve`` tag) and
  ``Session::Run`` on the signature's tensors through TensorFlow's C API, without Python's shape checks, so a wrong
  input reaches the graph; the input dtype is checked against the signature as the server does.

With ``batching=N`` it joins concurrent requests as TF Serving's ``--enable_batching`` does (BatchingSession,
batching_session.cc): requests to one signature arriving within a few milliseconds, at most N, are concatenated
along dimension 0 (other dimensions must be equal: padding off), run once, and every output is split back along
dimension 0 (an output without that dimension, or with another size, fails the batch: FAILED_PRECONDITION).

For the client's failure handling it can reset the first ``refuse_first`` connections of each API at once (what a
client sees of a server going down or restarting), answer the first ``unavailable_first`` requests UNAVAILABLE
(HTTP 503), or never answer (``silent``: connections are accepted and left unanswered). It stops itself after
``lifetime`` seconds (and on ``stop()`` / leaving the ``with`` block).
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.python.client import pywrap_tf_session
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from fake_connections import TcpFront

MAX_MESSAGE = 2**31 - 1  # as tensorflow_model_server (SetMaxMessageSize(kint32max)): no practical limit
PREDICT_PATH = re.compile(r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:"
                          r"(classify|regress|predict)")
STATUS_PATH = re.compile(r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?")
HTTP_CODE = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
             grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.INTERNAL: 500,
             grpc.StatusCode.DEADLINE_EXCEEDED: 504}


class ServingError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class _Servable:
    """One SavedModel version loaded as the model server loads it."""

    def __init__(self, path):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], str(path))
        self.signatures = {k: v for k, v in meta.signature_def.items() if not k.startswith("__")}

    def signature_map_proto(self):
        m = get_model_metadata_pb2.SignatureDefMap()
        for k, v in self.signatures.items():
            m.signature_def[k].CopyFrom(v)
        return m

    def run(self, signature_name: str, inputs: dict, output_filter=()) -> dict:
        name = signature_name or "serving_default"
        if name not in self.signatures:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Serving signature name: \"{name}\" not found in signature def")
        sig = self.signatures[name]
        if set(inputs) != set(sig.inputs):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input keys {sorted(inputs)} do not match the signature's {sorted(sig.inputs)}")
        feeds = {}
        for i, (key, info) in enumerate(sorted(sig.inputs.items())):
            want = tf.dtypes.as_dtype(info.dtype).as_numpy_dtype
            if inputs[key].dtype != want:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Expects arg[{i}] to be "
                                   f"{tf.dtypes.as_dtype(info.dtype).name} but {inputs[key].dtype} is provided")
            feeds[self.graph.get_tensor_by_name(info.name)._as_tf_output()] = inputs[key]
        keys = [k for k in sorted(sig.outputs) if not output_filter or k in output_filter]
        fetches = [self.graph.get_tensor_by_name(sig.outputs[k].name)._as_tf_output() for k in keys]
        try:
            values = pywrap_tf_session.TF_SessionRun_wrapper(self.session._session, None, feeds, fetches, [], None)
        except tf.errors.OpError as e:
            code = grpc.StatusCode.INVALID_ARGUMENT if isinstance(e, tf.errors.InvalidArgumentError) else \
                grpc.StatusCode.INTERNAL
            raise ServingError(code, e.message) from e
        return dict(zip(keys, values))


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server):
        self.server = server

    def _servable(self, spec, context):
        choice = spec.WhichOneof("version_choice")
        try:
            return self.server.servable(spec.name, spec.version.value if choice == "version" else None,
                                        spec.version_label if choice == "version_label" else None)
        except ServingError as e:
            context.abort(e.code, str(e))

    def Predict(self, request, context):
        version, servable = self._servable(request.model_spec, context)
        try:
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            self.server.log("grpc", version, request.model_spec.signature_name, inputs)
            outputs = self.server.run(version, servable, request.model_spec.signature_name, inputs,
                                      tuple(request.output_filter))
        except ServingError as e:
            context.abort(e.code, str(e))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for k, v in outputs.items():
            response.outputs[k].CopyFrom(tf.make_tensor_proto(v))
        return response

    def GetModelMetadata(self, request, context):
        version, servable = self._servable(request.model_spec, context)
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Metadata field signature_def must be requested")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = version
        response.metadata["signature_def"].Pack(servable.signature_map_proto())
        return response


class FakeTFServing:
    """Serve SavedModel versions as model ``name`` over REST and gRPC.

    ``versions``: a version folder ``.../NAME/VERSION`` or ``{version: folder}``; ``labels``: ``{label: version}``.
    ``rest_url`` (``http://127.0.0.1:PORT``) and ``grpc_target`` (``127.0.0.1:PORT``) once started;
    ``requests``: ``(api, version, signature, {input: shape})`` of every predict call.
    """

    def __init__(self, versions, name="waveunet", labels=None, lifetime=300.0, refuse_first=0,
                 unavailable_first=0, silent=False, rest_port=0, grpc_port=0, batching=0):
        if not isinstance(versions, dict):
            versions = {int(Path(versions).name): versions}
        self.name, self.labels = name, dict(labels or {})
        self._paths = {int(v): path for v, path in versions.items()}
        self._servables = {}  # loaded on first use: a server that only refuses never loads its model
        self.unavailable_left = unavailable_first
        self.batching, self._batchers, self.batch_sizes = batching, {}, []
        self.requests = []
        self._lock = threading.Lock()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"127.0.0.1:{grpc_port}")
        self._http = ThreadingHTTPServer(("127.0.0.1", rest_port), _rest_handler(self))
        self._http.daemon_threads = True
        self.rest_port = self._http.server_address[1]
        self.fronts = []
        if refuse_first or silent:
            self.fronts = [TcpFront(self.rest_port, refuse_first, silent), TcpFront(self.grpc_port, refuse_first, silent)]
            self.rest_port, self.grpc_port = self.fronts[0].port, self.fronts[1].port
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._stopped = False

    @property
    def rest_url(self):
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self):
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def refused(self):
        return sum(f.refused for f in self.fronts)

    def servable(self, name, version=None, label=None):
        """-> (version, servable) for a request's model_spec, or the ServingError TF Serving would answer."""
        with self._lock:
            if self.unavailable_left > 0:
                self.unavailable_left -= 1
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "the servable is loading")
        if version is not None and label is not None:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Both model version ({version}) and model "
                               f"version label ({label}) cannot be supplied.")
        if name == self.name and label is not None:
            if label not in self.labels:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
            version = self.labels[label]
        if name != self.name or (version is not None and version not in self._paths):
            what = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {what}")
        version = max(self._paths) if version is None else version
        with self._lock:
            if version not in self._servables:
                self._servables[version] = _Servable(self._paths[version])
        return version, self._servables[version]

    def run(self, version, servable, signature, inputs, output_filter=()) -> dict:
        """One request's outputs: run alone, or in a batch with others (``batching``)."""
        if not self.batching or output_filter:
            return servable.run(signature, inputs, output_filter)
        with self._lock:
            batcher = self._batchers.setdefault((version, signature or "serving_default"),
                                                _Batcher(servable, signature, self.batching, self.batch_sizes))
        return batcher.submit(inputs)

    def log(self, api, version, signature, inputs):
        with self._lock:
            self.requests.append((api, version, signature or "serving_default",
                                  {k: tuple(v.shape) for k, v in inputs.items()}))

    def start(self):
        self._grpc.start()
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._timer.start()
        return self

    def stop(self):
        if not self._stopped:
            self._stopped = True
            self._timer.cancel()
            for front in self.fronts:
                front.stop()
            self._grpc.stop(grace=None)
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Batcher:
    """BatchingSession for one signature: the first request of a batch waits ``timeout`` s for others, then runs
    them, at most ``max_batch`` at a time, and hands each its share of the outputs."""

    def __init__(self, servable, signature, max_batch, sizes, timeout=0.05):
        self.servable, self.signature, self.max_batch, self.sizes, self.timeout = \
            servable, signature, max_batch, sizes, timeout
        self.lock, self.queue, self.leading = threading.Lock(), [], False

    def submit(self, inputs) -> dict:
        task = {"inputs": inputs, "done": threading.Event()}
        with self.lock:
            self.queue.append(task)
            lead, self.leading = not self.leading, True
        if lead:
            time.sleep(self.timeout)
            while True:
                with self.lock:
                    batch, self.queue = self.queue[:self.max_batch], self.queue[self.max_batch:]
                    if not batch:
                        self.leading = False
                        break
                self._run(batch)
        task["done"].wait()
        if "error" in task:
            raise task["error"]
        return task["outputs"]

    def _run(self, batch):
        try:
            sizes = [t["inputs"][next(iter(t["inputs"]))].shape[0] for t in batch]
            merged = {}
            for key in batch[0]["inputs"]:
                parts = [t["inputs"][key] for t in batch]
                if any(p.ndim == 0 or p.shape[1:] != parts[0].shape[1:] for p in parts):
                    raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f"Tensors with name '{key}' from "
                                       "different tasks have different shapes and padding is turned off.")
                merged[key] = np.concatenate(parts)
            outputs = self.servable.run(self.signature, merged)
            for v in outputs.values():
                if v.ndim == 0 or v.shape[0] != sum(sizes):
                    raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, "Batched output tensor's 0th dimension "
                                       "does not equal the sum of the 0th dimension sizes of the input tensors")
            self.sizes.append(len(batch))
            ends = np.cumsum(sizes)
            for t, start, end in zip(batch, ends - sizes, ends):
                t["outputs"] = {k: v[start:end] for k, v in outputs.items()}
        except ServingError as e:
            for t in batch:
                t["error"] = e
        for t in batch:
            t["done"].set()


def _json_value(v: np.ndarray):
    """A tensor as TF Serving's REST API writes it: nested lists, strings decoded."""
    if v.dtype.kind in "SO":
        return np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else str(b), otypes=[object])(v).tolist()
    return v.tolist()


def _predict_inputs(servable, body):
    signature = body.get("signature_name", "serving_default")
    sig = servable.signatures.get(signature)
    if sig is None:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Serving signature name: \"{signature}\" not found in signature def")
    if "inputs" not in body:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           "this test server speaks the columnar format only: send \"inputs\"")
    raw = body["inputs"] if isinstance(body["inputs"], dict) else {next(iter(sig.inputs)): body["inputs"]}
    inputs = {}
    for k, v in raw.items():
        if k not in sig.inputs:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"unknown input {k!r}")
        try:
            inputs[k] = np.asarray(v, dtype=tf.dtypes.as_dtype(sig.inputs[k].dtype).as_numpy_dtype)
        except (TypeError, ValueError) as e:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Failed to process input {k}: {e}") from e
    return signature, inputs


def _rest_handler(server: FakeTFServing):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _answer(self, handle):
            try:
                status, body = handle()
            except ServingError as e:
                status, body = HTTP_CODE.get(e.code, 500), {"error": str(e)}
            except json.JSONDecodeError as e:
                status, body = 400, {"error": f"JSON Parse error: {e}"}
            except Exception as e:  # never drop the connection: the real server answers 500
                status, body = 500, {"error": f"{type(e).__name__}: {e}"}
            self._reply(status, body)

        def do_GET(self):
            def handle():
                m = STATUS_PATH.fullmatch(self.path)
                if not m or not m.group(1):
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: GET {self.path}")
                name, version, label, sub = m.groups()
                version, servable = server.servable(name, int(version) if version else None, label)
                if sub != "metadata":
                    return 200, {"model_version_status": [{"version": str(version), "state": "AVAILABLE",
                                                           "status": {"error_code": "OK", "error_message": ""}}]}
                sigs = json_format.MessageToDict(servable.signature_map_proto(), preserving_proto_field_name=True)
                return 200, {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
                             "metadata": {"signature_def": sigs}}
            self._answer(handle)

        def do_POST(self):
            def handle():
                m = PREDICT_PATH.fullmatch(self.path)
                if not m or m.group(4) != "predict":
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: POST {self.path}")
                name, version, label, _ = m.groups()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                version, servable = server.servable(name, int(version) if version else None, label)
                signature, inputs = _predict_inputs(servable, body)
                server.log("rest", version, signature, inputs)
                outputs = server.run(version, servable, signature, inputs)
                outputs = {k: _json_value(np.asarray(v)) for k, v in outputs.items()}
                return 200, {"outputs": outputs if len(outputs) > 1 else next(iter(outputs.values()))}
            self._answer(handle)

    return Handler

