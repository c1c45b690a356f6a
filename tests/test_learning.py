"""Learning itself, on tiny models: the training step's gradients are the loss's (finite differences), and a
small model overfits one fixed batch. (That a short training beats the mixture as estimate: test_reproduce.)"""

import numpy as np
import pytest

pytest_plugins = ["conftest_data"]


def numpy_loss(model, mixture, targets, sources):
    """The paper's loss worked in NumPy from the model's outputs: the mean over examples of the mean over sources
    of each source's mean squared error."""
    out = model(mixture, training=True)
    per_source = [np.mean((np.asarray(out[s], np.float64) - targets[s]) ** 2, axis=(1, 2)) for s in sources]
    return float(np.mean(np.mean(per_source, axis=0)))


def test_one_training_steps_gradients_match_finite_differences(data):
    import keras
    import tensorflow as tf

    from waveunet_tf.training.loop import Trainer
    cfg = data.tiny("M4", num_layers=2, num_initial_filters=2, filter_size=5, input_filter_size=5, merge_filter_size=3,
                    requested_output=32, upsampling="learned")  # linear upsampling resizes in float32
    # the finite differences need float64 weights: the global policy, which precision=None follows
    policy, floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        trainer = Trainer(cfg, tf.distribute.get_strategy(), precision=None)
        assert {w.dtype for w in trainer.model.weights} == {"float64"}
        rng = np.random.default_rng(0)
        mixture = rng.uniform(-0.5, 0.5, (3, cfg.input_length, 2))
        targets = {s: rng.uniform(-0.5, 0.5, (3, cfg.output_length, 2)).astype(np.float32) for s in cfg.sources}
        loss, grads = trainer._gradients(tf.constant(mixture), {s: tf.constant(t) for s, t in targets.items()},
                                         tf.constant(3.0))
        model = trainer.model
        assert float(loss) == pytest.approx(numpy_loss(model, mixture, targets, cfg.sources), rel=1e-6)
        checked = 0
        for var, grad in zip(model.trainable_variables, grads):
            value = var.numpy()
            index = tuple(int(rng.integers(0, n)) for n in value.shape)
            eps = 1e-6
            diffs = []
            for sign in (1, -1):
                moved = value.copy()
                moved[index] += sign * eps
                var.assign(moved)
                diffs.append(numpy_loss(model, mixture, targets, cfg.sources))
            var.assign(value)
            numeric = (diffs[0] - diffs[1]) / (2 * eps)
            analytic = float(np.asarray(grad)[index])
            assert analytic == pytest.approx(numeric, rel=1e-3, abs=1e-7), (var.path, index)
            checked += 1
        assert checked == len(model.trainable_variables) >= 10
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


@pytest.mark.parametrize("parts", [2, 3])
def test_a_batch_cut_into_parts_gives_the_whole_batchs_loss_and_gradients(data, parts):
    import tensorflow as tf

    from waveunet_tf.training.loop import Trainer
    cfg = data.tiny("M4", num_layers=3, num_initial_filters=4, requested_output=64)
    whole, cut = (Trainer(cfg, tf.distribute.get_strategy(), batch_parts=n) for n in (1, parts))
    cut.model.set_weights(whole.model.get_weights())
    rng = np.random.default_rng(1)
    batch = 5  # not a multiple of the parts: parts of 3 + 2, or 2 + 2 + 1 examples
    mixture = tf.constant(rng.uniform(-0.5, 0.5, (batch, cfg.input_length, 2)).astype(np.float32))
    targets = {s: tf.constant(rng.uniform(-0.5, 0.5, (batch, cfg.output_length, 2)).astype(np.float32))
               for s in cfg.sources}
    # divided by a global batch of 8, as for a replica of two
    results = [t._gradients(mixture, targets, tf.constant(8.0)) for t in (whole, cut)]
    # the cut step really runs one forward and backward pass per part
    graph = cut._gradients.get_concrete_function(mixture, targets, tf.constant(8.0)).graph
    convolutions = sum(len(layer.weights) == 2 for layer in whole.model.layers)  # kernel and bias
    assert sum(op.type == "Conv2DBackpropFilter" for op in graph.get_operations()) == parts * convolutions
    (loss, grads), (cut_loss, cut_grads) = results
    assert float(cut_loss) == pytest.approx(float(loss), rel=1e-6)
    for var, g, cut_g in zip(whole.model.trainable_variables, grads, cut_grads):
        np.testing.assert_allclose(cut_g.numpy(), g.numpy(), rtol=1e-5, atol=1e-6 * float(np.abs(g).max()),
                                   err_msg=var.path)


def test_a_small_model_overfits_one_fixed_batch(synth_cache, data):
    import tensorflow as tf

    from data_pipeline import training_dataset
    from waveunet_tf.training.loop import Trainer
    cfg = data.tiny("M4", num_layers=3, num_initial_filters=8, requested_output=256, learning_rate=1e-3)
    mixture, targets = next(iter(training_dataset(synth_cache, cfg, 4, seed=0, augment=False)))
    trainer = Trainer(cfg, tf.distribute.get_strategy())
    batch = (mixture, targets)
    losses = [trainer.train_step(batch, 4)[0] for _ in range(40)]
    assert losses[-1] < losses[0] / 10, losses
