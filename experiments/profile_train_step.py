"""Per-op time shares of one training step (TensorFlow's step stats), ours or the official TF1 graph's.

    python experiments/profile_train_step.py ours [BATCH] [--inter N] [--intra N] [--set KEY=VALUE ...]
    PYTHONPATH=TFK python experiments/profile_train_step.py official OFFICIAL_DIR [BATCH]

Prints the wall time of the profiled step, then the ops' summed time by op type (all threads: the sum may exceed
the wall time when ops run at once), largest first.
"""
import collections
import os
import re
import sys
import time

DEBUG = os.environ.get('DEBUG')


def aggregate(step_stats, wall):
    by_type, count = collections.Counter(), collections.Counter()
    for dev in step_stats.dev_stats:
        for ns in dev.node_stats:
            m = re.match(r"[^=]*= (\w+)", ns.timeline_label)
            op = m.group(1) if m else ns.node_name.split(":")[0]
            by_type[op] += ns.op_end_rel_micros / 1e6
            count[op] += 1
    total = sum(by_type.values())
    print(f"step wall {wall:.3f} s; op time summed {total:.3f} s")
    for op, t in by_type.most_common(30):
        print(f"  {op:32s} {t:8.3f} s {100 * t / total:5.1f}%  x{count[op]}")


def aggregate_xspace(space, wall):
    """The host plane's TensorFlow op events ("name:Type") summed by type."""
    by_type, count, threads = collections.Counter(), collections.Counter(), collections.Counter()
    by_node = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for ev in line.events:
                name = plane.event_metadata[ev.metadata_id].name
                if ":" not in name or name.startswith("tf_") or " " in name:
                    continue
                op = name.rsplit(":", 1)[1]
                if not op.lstrip("_")[:1].isupper() or op in ("Process", "Run"):
                    if "onv" in name and DEBUG: print("skip", name)
                    continue
                by_type[op] += ev.duration_ps / 1e12
                count[op] += 1
                by_node[re.sub(r"_\d+(?=/|$)", "", name.split("/", 1)[-1])] += ev.duration_ps / 1e12
                threads[line.name] += ev.duration_ps / 1e12
    total = sum(by_type.values())
    print(f"step wall {wall:.3f} s; op time summed {total:.3f} s; by thread:",
          {k: round(v, 2) for k, v in threads.most_common(6)})
    for op, t in by_type.most_common(32):
        print(f"  {op:32s} {t:8.3f} s {100 * t / total:5.1f}%  x{count[op]}")
    if DEBUG:
        for node, t in by_node.most_common(60):
            print(f"  {t:8.3f} s  {node}")


def ours(argv):
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("batch", type=int, nargs="?", default=16)
    p.add_argument("--inter", type=int)
    p.add_argument("--intra", type=int)
    p.add_argument("--set", action="append", default=[], dest="sets")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--parts", type=int, default=1)
    a = p.parse_args(argv)
    import numpy as np
    import tensorflow as tf
    if a.inter:
        tf.config.threading.set_inter_op_parallelism_threads(a.inter)
    if a.intra:
        tf.config.threading.set_intra_op_parallelism_threads(a.intra)
    from tensorflow.python.eager import context
    from waveunet_tf import shapes
    from waveunet_tf.config import resolve_config
    from waveunet_tf.training import Trainer
    config = resolve_config("M4", None, a.sets, False, False)
    trainer = Trainer(config, tf.distribute.get_strategy(), batch_parts=a.parts)
    n_in, n_out = shapes.training_lengths(config)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((a.batch, n_in, config.channels), np.float32) * 0.1)
    ys = {s: tf.constant(rng.standard_normal((a.batch, n_out, config.channels), np.float32) * 0.1)
          for s in config.sources}
    gb = tf.constant(float(a.batch))
    for _ in range(a.steps):
        t = time.perf_counter(); trainer._train_step((x, ys), gb)[0].numpy(); print("step", time.perf_counter() - t)
    import glob
    import tempfile
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    t = time.perf_counter(); trainer._train_step((x, ys), gb)[0].numpy(); wall = time.perf_counter() - t
    tf.profiler.experimental.stop()
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    space = xplane_pb2.XSpace()
    space.ParseFromString(open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb").read())
    aggregate_xspace(space, wall)


def official(argv):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import types
    import tensorflow as tf2
    tf1 = tf2.compat.v1
    tf1.disable_v2_behavior()
    shim = types.ModuleType("tensorflow")
    for k in dir(tf1):
        setattr(shim, k, getattr(tf1, k))
    shim.diag = tf1.linalg.diag
    sys.modules["tensorflow"] = shim
    sys.path.insert(0, argv[0])
    import numpy as np
    import Models.UnetAudioSeparator as U
    cfg = dict(num_layers=12, num_initial_filters=24, filter_size=15, merge_filter_size=5, input_filter_size=15,
               output_filter_size=1, upsampling="linear", output_type="difference", context=True,
               source_names=["accompaniment", "vocals"], mono_downmix=False, output_activation="tanh")
    B = int(argv[1]) if len(argv) > 1 else 16
    sep = U.UnetAudioSeparator(cfg)
    inp, out = sep.get_padding(np.array([B, 16384, 0]))
    x = tf1.placeholder(tf1.float32, [B, int(inp[1]), 2])
    ys = {k: tf1.placeholder(tf1.float32, [B, int(out[1]), 2]) for k in cfg["source_names"]}
    outs = sep.get_output(x, training=True, reuse=False)
    loss = sum(tf1.reduce_mean(tf1.square(outs[k] - ys[k])) for k in ys) / 2
    opt = tf1.train.AdamOptimizer(1e-4).minimize(loss)
    with tf1.Session() as s:
        s.run(tf1.global_variables_initializer())
        fd = {x: np.random.randn(B, int(inp[1]), 2).astype("float32") * 0.1}
        fd.update({ys[k]: np.random.randn(B, int(out[1]), 2).astype("float32") * 0.1 for k in ys})
        for _ in range(2):
            t = time.perf_counter(); s.run(opt, fd); print("step", time.perf_counter() - t)
        md = tf1.RunMetadata()
        t = time.perf_counter()
        s.run(opt, fd, options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE), run_metadata=md)
        aggregate(md.step_stats, time.perf_counter() - t)


if __name__ == "__main__":
    {"ours": ours, "official": official}[sys.argv[1]](sys.argv[2:])
