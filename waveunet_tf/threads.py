"""TensorFlow's CPU thread pools, which the commands choose before TensorFlow starts (they are fixed once it has):
two windows at once for inference (:func:`waveunet_tf.model_io.one_thread_per_window`), two halves of the batch at
once for training (:func:`waveunet_tf.training.distribute.training_threads`)."""

from __future__ import annotations

from waveunet_tf.errors import first_line


def set_threads(inter: int, intra: int) -> str | None:
    """Let TensorFlow run ``inter`` ops at once, each on ``intra`` threads, if it has not started yet in this
    process -> None when its pools are so (set now, or already), else why not (one line)."""
    import tensorflow as tf
    threads = tf.config.threading
    try:
        threads.set_inter_op_parallelism_threads(inter)
        threads.set_intra_op_parallelism_threads(intra)
    except RuntimeError as e:  # TensorFlow has started: its pools stay as they are
        if (threads.get_inter_op_parallelism_threads(), threads.get_intra_op_parallelism_threads()) != (inter, intra):
            return first_line(e)
    return None
