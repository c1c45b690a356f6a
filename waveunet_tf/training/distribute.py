"""Choosing a ``tf.distribute`` strategy: one device, every local device (``mirrored``), or several machines
(``multiworker``, configured by ``TF_CONFIG`` as TensorFlow documents it).

The training loop is the same for all three: the config's ``batch_size`` is the global batch, each replica gets
``batch_size / num_replicas`` of it, and only the chief writes files.
"""

from __future__ import annotations

import dataclasses
import json
import os

from waveunet_tf.errors import UsageError, UserError, first_line
from waveunet_tf.threads import set_threads

STRATEGIES = ("default", "mirrored", "multiworker")

# A peer that stops answering is declared dead after this long (coordination-service heartbeats), and a
# collective (the gradient all-reduce) waiting for a peer gives up after COLLECTIVE_TIMEOUT_S: without them a
# surviving worker would wait forever. Long enough for a slow step or the chief writing a checkpoint.
HEARTBEAT_TIMEOUT_S = int(os.environ.get("WAVEUNET_HEARTBEAT_TIMEOUT_S", "30"))
COLLECTIVE_TIMEOUT_S = int(os.environ.get("WAVEUNET_COLLECTIVE_TIMEOUT_S", "600"))
# The training step on a CPU computes this many parts of each replica's batch at once (training_threads).
BATCH_PARTS = 2
# How long the first worker waits for the others to join before giving up.
REGISTER_TIMEOUT_S = int(os.environ.get("WAVEUNET_REGISTER_TIMEOUT_S", "600"))


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process sits: ``worker_index`` among ``num_workers``; the chief (worker 0, or the task of type
    ``chief``) is the one that writes files."""

    num_workers: int = 1
    worker_index: int = 0
    is_chief: bool = True


def read_tf_config(environ=None) -> dict:
    """``TF_CONFIG`` parsed and checked: ``{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker",
    "index": i}}`` (a ``chief`` job is allowed too). One clear line when it is missing or malformed."""
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG", "").strip()
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not raw:
        raise UserError(f"--strategy multiworker needs the TF_CONFIG environment variable, e.g. {example}")
    try:
        tf_config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UserError(f"TF_CONFIG is not valid JSON ({e}); expected e.g. {example}") from e
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise UserError(f"TF_CONFIG needs a \"cluster\" with a \"worker\" list of host:port; expected e.g. {example}")
    if not isinstance(task, dict) or task.get("type") not in cluster or not isinstance(task.get("index"), int):
        raise UserError(f"TF_CONFIG needs a \"task\" naming one of its cluster's jobs ({', '.join(cluster)}) and "
                         f"an integer index, not {task!r}")
    if not 0 <= task["index"] < len(cluster[task["type"]]):
        raise UserError(f"TF_CONFIG task index {task['index']} is out of range: job {task['type']!r} has "
                         f"{len(cluster[task['type']])} task(s)")
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown:
        raise UserError(f"TF_CONFIG cluster job {unknown[0]!r} is not supported by --strategy multiworker: "
                         "use \"chief\" and \"worker\" only (parameter servers are a different strategy)")
    return tf_config


def cluster_of(tf_config: dict) -> Cluster:
    """This task's place in the cluster: the chief comes first, then the workers in order."""
    cluster, task = tf_config["cluster"], tf_config["task"]
    chiefs = len(cluster.get("chief", []))
    index = task["index"] + (chiefs if task["type"] == "worker" else 0)
    return Cluster(num_workers=chiefs + len(cluster.get("worker", [])), worker_index=index,
                   is_chief=index == 0)


def cluster_for(name: str) -> Cluster:
    """This process's place for strategy ``name``, known before TensorFlow starts (from ``TF_CONFIG``)."""
    if name not in STRATEGIES:
        raise UsageError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    return cluster_of(read_tf_config()) if name == "multiworker" else Cluster()


def worker_seed(base_seed: int, input_pipeline_id: int) -> int:
    """Seed of one input pipeline (one per worker): different per worker, so workers draw different excerpts."""
    return int(base_seed) + int(input_pipeline_id)


def local_devices(tf) -> list[str]:
    """The devices ``mirrored`` spreads over: every GPU, or without GPUs every (logical) CPU device."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def make_strategy(name: str):
    """``(tf.distribute.Strategy, Cluster)`` for ``name`` in :data:`STRATEGIES`.

    ``multiworker`` reads ``TF_CONFIG``, turns on peer-failure detection (heartbeats and a collective timeout),
    and blocks until every worker has joined.
    """
    import tensorflow as tf
    cluster = cluster_for(name)
    if name == "default":
        return tf.distribute.get_strategy(), cluster
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=local_devices(tf)), cluster

    tf_config = read_tf_config()
    _configure_failure_detection(tf, tf_config)
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except (tf.errors.OpError, RuntimeError) as e:
        raise UserError(f"could not join the cluster of TF_CONFIG: {first_line(e)}") from e
    return strategy, cluster


def training_threads(log=None) -> int:
    """On a CPU with at least :data:`BATCH_PARTS` cores: let TensorFlow run :data:`BATCH_PARTS` ops at once, each on
    ``cores // BATCH_PARTS`` threads -> the number of parts the training step cuts each replica's batch into (its
    ``batch_parts``; 1 with a GPU, one core, or when TensorFlow already runs with other settings, which ``log``
    then notes). Call it before TensorFlow starts (its thread pools are fixed then): the train commands do, first.

    Why: TensorFlow's CPU kernels of the convolutions' backward pass use a second core poorly (M4, batch 16, on 2
    cores: Conv2DBackpropFilter took as long with two threads as with one); two halves of the batch computed at
    once, one thread each, keep both cores busy. ``waveunet bench train --variant M4``: 15.4 s per step against
    19.7 s running one op at a time on every core (2-core AMD EPYC Zen 3; README, Training speed and memory)."""
    import tensorflow as tf
    cores = os.cpu_count() or 1
    if cores < BATCH_PARTS or tf.config.list_physical_devices("GPU"):
        return 1
    why_not = set_threads(BATCH_PARTS, cores // BATCH_PARTS)
    if why_not:
        (log or (lambda line: None))(
            f"note: the step keeps the whole batch in one pass (slower on a CPU): TensorFlow already runs in "
            f"this process with other thread settings ({why_not})")
        return 1
    return BATCH_PARTS


def _configure_failure_detection(tf, tf_config: dict) -> None:
    """Configure TensorFlow's coordination service (which MultiWorkerMirroredStrategy starts) with bounded
    heartbeat and registration timeouts, so that a dead peer surfaces as an error instead of a hang."""
    from tensorflow.python.distribute import multi_worker_util  # the leader address, as the strategy computes it
    from tensorflow.python.eager import context
    from tensorflow.tsl.protobuf import coordination_config_pb2

    cluster = tf_config["cluster"]
    spec = tf.train.ClusterSpec(cluster)
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
            for job in ("chief", "worker") if job in cluster]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        enable_health_check=True,
        cluster_register_timeout_in_ms=REGISTER_TIMEOUT_S * 1000,
        heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000,
        coordinated_jobs=jobs)


def is_peer_failure(error: BaseException) -> bool:
    """Whether ``error`` is how TensorFlow reports a worker that died or stopped answering."""
    import tensorflow as tf
    return isinstance(error, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                              tf.errors.CancelledError, tf.errors.AbortedError, tf.errors.InternalError))
