"""Training with the paper's protocol, one loop for every ``tf.distribute`` strategy.

- :mod:`.protocol`: the two-stage protocol as pure functions on :class:`RunState` (no TensorFlow);
- :mod:`.run_dir`: the run directory's files and lock (a do-nothing twin for non-chief workers);
- :mod:`.checkpoints`: model + optimizer checkpoints named by the state;
- :mod:`.loop`: the distributed step (:class:`Trainer`) and the loop that runs the protocol with it;
- :mod:`.distribute`: the strategy (default, mirrored, multiworker) and the worker's place in the cluster;
- :mod:`.runner`: :func:`train` and :func:`train_on_cache`, which put them together.

Every write is atomic (a checkpoint is written under a new name, then ``state.json`` is renamed over the old
one), so ``kill -9`` at any moment loses at most the steps since the last checkpoint, and ``--resume`` never
repeats a finished epoch.

Importing this package does not import TensorFlow (the functions that run TensorFlow import it when called).
"""

from waveunet_tf.training.loop import Trainer
from waveunet_tf.training.protocol import RunState, segment_seed, stage_settings
from waveunet_tf.training.runner import train, train_on_cache

__all__ = ["train", "train_on_cache", "RunState", "Trainer", "segment_seed", "stage_settings"]
