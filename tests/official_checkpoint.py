"""Writes checkpoints the way the official TF1 implementation does (graph-mode variables, tf.compat.v1 Saver),
with shapes derived from the official architecture, for tests that need one of any size (e.g. the full-size
official models behind ``official:NAME``). Whether the import is right is checked against checkpoints written by
the official code itself (``../shared/fixtures/official_tf1``, tests/test_official_import.py)."""

import numpy as np


def official_variables(cfg, seed=0):
    """{official variable name: random array} in creation order, shapes as the official code creates them."""
    rng = np.random.default_rng(seed)
    L, F, C = cfg.num_layers, cfg.num_initial_filters, cfg.channels
    weights = {}
    counter = [0]

    def conv(width, cin, cout):
        k = counter[0]
        counter[0] += 1
        p = "separator/conv1d" + ("" if k == 0 else f"_{k}")
        weights[p + "/kernel"] = rng.uniform(-1, 1, (width, cin, cout)) * np.sqrt(3.0 / (width * cin))
        weights[p + "/bias"] = rng.uniform(-0.1, 0.1, cout)

    for i in range(L):
        conv(cfg.filter_size, C if i == 0 else F * i, F * (i + 1))
    conv(cfg.filter_size, F * L, F * (L + 1))
    for i in range(L):
        up_channels = F * (L + 1 - i)
        if cfg.upsampling == "learned":
            weights[f"separator/interp_{i}"] = rng.normal(0, 1, up_channels)
        conv(cfg.merge_filter_size, F * (L - i) + up_channels, F * (L - i))
    estimated = len(cfg.sources) - (cfg.output_type == "difference")
    for _ in range(estimated):
        conv(cfg.output_filter_size, F + C, C)
    return {k: v.astype(np.float32) for k, v in weights.items()}


def write_official_checkpoint(weights, prefix, global_step=1234):
    """Save ``weights`` like the official training script: plus global_step, Adam slots and beta powers."""
    import tensorflow as tf
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(v, name=n) for n, v in weights.items()]
        for n, v in weights.items():
            variables.append(tf.compat.v1.Variable(np.zeros_like(v), name=f"separator_solver/{n}/Adam"))
            variables.append(tf.compat.v1.Variable(np.ones_like(v), name=f"separator_solver/{n}/Adam_1"))
        variables.append(tf.compat.v1.Variable(global_step, name="global_step", dtype=tf.int64))
        variables.append(tf.compat.v1.Variable(0.9, name="separator_solver/beta1_power"))
        variables.append(tf.compat.v1.Variable(0.999, name="separator_solver/beta2_power"))
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return saver.save(sess, str(prefix), global_step=global_step)
