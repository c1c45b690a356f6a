"""A client for a Wave-U-Net served by TensorFlow Serving (``waveunet export``'s SavedModel), over REST or gRPC.

It reads the model from the server's metadata (the signatures: channels, source names) and its ``model_info``
signature (sample rate, context), decodes and resamples songs locally, and sends each song in pieces of bounded
size to the ``piece`` signature, each piece carrying its context from the neighbouring audio, so the centres
join exactly into what one whole-song call would return.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np

from waveunet_tf.errors import UserError

TIMEOUT_S = 600.0  # one request: a 30-s piece of a full-size model takes seconds; be generous
CONNECT_TIMEOUT_S = 10.0
MAX_MESSAGE = 2**31 - 1


class RestServer:
    """TF Serving's REST API at ``url`` (``http://HOST:8501``), model ``name``."""

    def __init__(self, url: str, name: str):
        if not url.startswith(("http://", "https://")):
            raise UserError(f"--url must start with http:// or https://, e.g. http://localhost:8501, not {url!r}")
        self.url, self.name = url.rstrip("/"), name
        self.where = f"TF Serving at {self.url}"

    def _request(self, path, body=None, timeout=TIMEOUT_S):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("error", "")
            except (ValueError, AttributeError):
                message = ""
            raise UserError(f"{self.where} answered HTTP {e.code} for model {self.name!r}: "
                            f"{_first_line(message) or e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(f"cannot reach {self.where}: {reason} (is tensorflow_model_server running with "
                            f"--rest_api_port?)") from None
        except ValueError:
            raise UserError(f"{self.where} did not answer JSON; is {self.url} TF Serving's REST port?") from None

    def signatures(self) -> dict:
        meta = self._request(f"/v1/models/{self.name}/metadata", timeout=CONNECT_TIMEOUT_S)
        try:
            sigs = meta["metadata"]["signature_def"]["signature_def"]
        except (KeyError, TypeError):
            raise UserError(f"{self.where} sent model metadata without signatures") from None
        return {name: _signature_from_json(s) for name, s in sigs.items()}

    def predict(self, signature: str, mixture: np.ndarray) -> dict:
        out = self._request(f"/v1/models/{self.name}:predict",
                            {"signature_name": signature, "inputs": {"mixture": mixture.tolist()}})
        if "outputs" not in out:
            raise UserError(f"{self.where} answered without outputs: {_first_line(str(out))[:200]}")
        outputs = out["outputs"]
        if not isinstance(outputs, dict):  # TF Serving drops the name of a single output
            raise UserError(f"{self.where}: signature {signature!r} has a single unnamed output; "
                            "expected one per source")
        return {k: np.asarray(v) if not (isinstance(v, list) and v and isinstance(v[0], str)) else v
                for k, v in outputs.items()}


class GrpcServer:
    """TF Serving's gRPC PredictionService at ``target`` (``HOST:8500``), model ``name``."""

    def __init__(self, target: str, name: str):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc
        if "://" in target:
            raise UserError(f"--grpc takes HOST:PORT (e.g. localhost:8500), not {target!r}")
        self.name, self.where, self.grpc = name, f"TF Serving at {target} (gRPC)", grpc
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                                              ("grpc.max_send_message_length", MAX_MESSAGE)])
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def _call(self, method, request, timeout=TIMEOUT_S):
        try:
            return method(request, timeout=timeout)
        except self.grpc.RpcError as e:
            code = e.code()
            if code in (self.grpc.StatusCode.UNAVAILABLE, self.grpc.StatusCode.DEADLINE_EXCEEDED):
                raise UserError(f"cannot reach {self.where}: {code.name.lower()} (is tensorflow_model_server "
                                f"running with --port?)") from None
            raise UserError(f"{self.where} answered {code.name} for model {self.name!r}: "
                            f"{_first_line(e.details() or '')}") from None

    def signatures(self) -> dict:
        from tensorflow_serving.apis import get_model_metadata_pb2
        req = get_model_metadata_pb2.GetModelMetadataRequest()
        req.model_spec.name = self.name
        req.metadata_field.append("signature_def")
        resp = self._call(self.stub.GetModelMetadata, req, timeout=CONNECT_TIMEOUT_S)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        resp.metadata["signature_def"].Unpack(sig_map)
        return {name: _signature_from_proto(s) for name, s in sig_map.signature_def.items()}

    def predict(self, signature: str, mixture: np.ndarray) -> dict:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2
        req = predict_pb2.PredictRequest()
        req.model_spec.name = self.name
        req.model_spec.signature_name = signature
        req.inputs["mixture"].CopyFrom(tf.make_tensor_proto(np.asarray(mixture, np.float32)))
        resp = self._call(self.stub.Predict, req)
        out = {}
        for k, v in resp.outputs.items():
            a = tf.make_ndarray(v)
            out[k] = [b.decode() for b in a.reshape(-1)] if a.dtype.kind in "SO" else a
        return out


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


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


def connect(url=None, grpc_target=None, name="waveunet"):
    return RestServer(url, name) if url else GrpcServer(grpc_target, name)


def model_facts(server) -> dict:
    """The served model's facts: the signatures from the metadata (channels, source names), then the values of
    its ``model_info`` signature (sample rate, context, piece sizes)."""
    from waveunet_tf.export import read_facts
    sigs = server.signatures()
    missing = [s for s in ("serving_default", "piece", "model_info") if s not in sigs]
    if missing:
        raise UserError(f"model {server.name!r} on {server.where} has no signature {missing[0]!r}: serve a "
                        f"SavedModel written by `waveunet export` (it has {', '.join(sorted(sigs)) or 'none'})")
    shape = sigs["piece"]["inputs"].get("mixture")
    if not shape or len(shape) != 3 or shape[-1] < 1:
        raise UserError(f"model {server.name!r}: the piece signature takes no [batch, time, channels] `mixture`")
    channels = shape[-1]
    facts = read_facts(server.predict("model_info", np.zeros((1, 1, channels), np.float32)))
    if facts.get("channels") != channels or sorted(facts.get("sources", [])) != sorted(sigs["piece"]["outputs"]):
        raise UserError(f"model {server.name!r}: model_info disagrees with the signatures")
    return facts


def separate_with_server(server, facts, audio, rate, chunk_seconds=30.0, progress=None) -> dict:
    """Separate a song float32 [T, C_in] at ``rate`` on the server -> ``{source: [T, C_in]}`` at ``rate``.

    Pieces of about ``chunk_seconds`` (rounded down to ``piece_multiple`` samples) are sent one by one.
    """
    from waveunet_tf.separation import from_model_output, song_pieces, to_model_input
    length, channels = audio.shape
    x = to_model_input(audio, rate, facts["sample_rate"], facts["channels"])
    if not np.any(audio):
        return {s: np.zeros_like(audio) for s in facts["sources"]}
    parts = {s: [] for s in facts["sources"]}
    for start, n, piece in song_pieces(x, facts["piece_context_left"], facts["piece_context_right"],
                                       facts["piece_multiple"], int(chunk_seconds * facts["sample_rate"])):
        out = server.predict("piece", piece[None])
        for s in facts["sources"]:
            y = np.asarray(out[s], np.float32)
            if y.shape != (1, n, facts["channels"]):
                raise UserError(f"{server.where} returned {s} of shape {list(y.shape)}; expected "
                                f"{[1, n, facts['channels']]}")
            parts[s].append(y[0])
        if progress is not None:
            progress(n / facts["sample_rate"])
    return {s: from_model_output(np.concatenate(v), facts["sample_rate"], rate, length, channels)
            for s, v in parts.items()}


def client_files(paths, out_dir, url=None, grpc_target=None, name="waveunet", chunk_seconds=30.0, force=False):
    """``waveunet client``: separate files on a TF Serving server and write ``out_dir/<song>/<source>.wav``."""
    from waveunet_tf.separation import check_inputs, write_separated
    if chunk_seconds <= 0:
        raise UserError(f"--chunk-seconds must be positive, not {chunk_seconds}")
    check_inputs(paths)
    server = connect(url, grpc_target, name)
    facts = model_facts(server)
    return write_separated(paths, out_dir, facts["sources"], force, "client",
                           lambda audio, rate, progress: separate_with_server(server, facts, audio, rate,
                                                                              chunk_seconds, progress))
