"""A small stand-in for ``tensorflow_model_server`` for the tests: TF Serving's REST API
(``GET /v1/models/NAME[/versions/V]/metadata``, ``POST /v1/models/NAME[/versions/V]:predict``) and its gRPC
``PredictionService`` (``Predict``, ``GetModelMetadata``, from tensorflow-serving-api's stubs), on 127.0.0.1 with
free ports.

It runs the SavedModel the way the model server does: the TF1 loader (graph, restore op, ``serve`` tag) and
``Session::Run`` on the signature's tensors through TensorFlow's C API, without Python's shape checks, so a wrong
input reaches the graph exactly as it would on the real server. It checks the input dtype against the signature
(the real server's "Expects arg[0] to be float but double is provided") and maps TensorFlow errors to gRPC status
codes / HTTP 400. It stops itself after ``lifetime`` seconds (and on ``stop()`` / leaving the ``with`` block).
"""

from __future__ import annotations

import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.python.client import pywrap_tf_session
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

MAX_MESSAGE = 2**31 - 1  # as tensorflow_model_server: no practical gRPC message limit


class ServingError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


_HTTP = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
         grpc.StatusCode.FAILED_PRECONDITION: 400}


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
            raise ServingError(code, e.message) from None
        return dict(zip(keys, values))


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server):
        self.server = server

    def _servable(self, spec, context):
        try:
            return self.server.servable(spec.name, spec.version.value if spec.HasField("version") else None)
        except ServingError as e:
            context.abort(e.code, str(e))

    def Predict(self, request, context):
        servable = self._servable(request.model_spec, context)
        try:
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            self.server.requests.append(("grpc", request.model_spec.signature_name,
                                         {k: v.shape for k, v in inputs.items()}))
            outputs = servable.run(request.model_spec.signature_name, inputs, tuple(request.output_filter))
        except ServingError as e:
            context.abort(e.code, str(e))
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = self.server.version
        response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
        for k, v in outputs.items():
            response.outputs[k].CopyFrom(tf.make_tensor_proto(v))
        return response

    def GetModelMetadata(self, request, context):
        servable = self._servable(request.model_spec, context)
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Metadata field signature_def must be requested")
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = self.server.version
        response.metadata["signature_def"].Pack(servable.signature_map_proto())
        return response


class FakeTFServing:
    """Serve the SavedModel in ``version_dir`` (``.../NAME/VERSION``) as model ``name`` over REST and gRPC.

    ``rest_url`` (``http://127.0.0.1:PORT``) and ``grpc_target`` (``127.0.0.1:PORT``) once started.
    """

    def __init__(self, version_dir, name="waveunet", lifetime=300.0):
        self.name, self.version = name, int(str(version_dir).rstrip("/").rsplit("/", 1)[-1])
        self._servable = _Servable(version_dir)
        self.requests = []  # (api, signature_name, input shapes) of every predict call, for the tests
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(self))
        self._http.daemon_threads = True
        self.rest_port = self._http.server_address[1]
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._stopped = False

    @property
    def rest_url(self):
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self):
        return f"127.0.0.1:{self.grpc_port}"

    def servable(self, name, version=None):
        if name != self.name or version not in (None, self.version):
            label = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {label}")
        return self._servable

    def start(self):
        self._grpc.start()
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self._timer.start()
        return self

    def stop(self):
        if not self._stopped:
            self._stopped = True
            self._timer.cancel()
            self._grpc.stop(grace=None)
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _json_value(v: np.ndarray):
    """A tensor as TF Serving's REST API writes it: nested lists, strings decoded."""
    if v.dtype.kind in "SO":
        return np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else str(b), otypes=[object])(v).tolist()
    return v.tolist()


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

        def _route(self, verb):
            path = self.path
            if not path.startswith("/v1/models/"):
                raise ServingError(grpc.StatusCode.NOT_FOUND, "Malformed request: " + path)
            rest = path[len("/v1/models/"):]
            rest, _, action = rest.partition(":") if verb == "predict" else (rest, "", "")
            parts = rest.split("/")
            if verb == "metadata":
                if parts[-1] != "metadata":
                    raise ServingError(grpc.StatusCode.NOT_FOUND, "Malformed request: GET " + path)
                parts = parts[:-1]
            elif action != "predict":
                raise ServingError(grpc.StatusCode.NOT_FOUND, "Malformed request: POST " + path)
            version = int(parts[2]) if len(parts) == 3 and parts[1] == "versions" else None
            return server.servable(parts[0], version), version

        def do_GET(self):
            try:
                servable, version = self._route("metadata")
            except ServingError as e:
                return self._reply(_HTTP.get(e.code, 500), {"error": str(e)})
            sigs = json_format.MessageToDict(servable.signature_map_proto(), preserving_proto_field_name=True)
            self._reply(200, {"model_spec": {"name": server.name, "signature_name": "",
                                             "version": str(server.version)},
                              "metadata": {"signature_def": sigs}})

        def do_POST(self):
            try:
                servable, _ = self._route("predict")
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                signature = body.get("signature_name", "serving_default")
                sig = servable.signatures.get(signature)
                if sig is None:
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"Serving signature name: \"{signature}\" not found in signature def")
                if "inputs" in body:
                    raw = body["inputs"]
                    raw = raw if isinstance(raw, dict) else {next(iter(sig.inputs)): raw}
                else:
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                       "this test server speaks the columnar format only: send \"inputs\"")
                inputs = {}
                for k, v in raw.items():
                    if k not in sig.inputs:
                        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"unknown input {k!r}")
                    try:
                        inputs[k] = np.asarray(v, dtype=tf.dtypes.as_dtype(sig.inputs[k].dtype).as_numpy_dtype)
                    except (TypeError, ValueError) as e:
                        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Failed to process input {k}: {e}")
                server.requests.append(("rest", signature, {k: v.shape for k, v in inputs.items()}))
                outputs = servable.run(signature, inputs)
            except ServingError as e:
                return self._reply(_HTTP.get(e.code, 500), {"error": str(e)})
            except json.JSONDecodeError as e:
                return self._reply(400, {"error": f"JSON Parse error: {e}"})
            except Exception as e:  # never drop the connection: the real server answers 500
                return self._reply(500, {"error": f"{type(e).__name__}: {e}"})
            outputs = {k: _json_value(np.asarray(v)) for k, v in outputs.items()}
            self._reply(200, {"outputs": outputs if len(outputs) > 1 else next(iter(outputs.values()))})

    return Handler
