"""``waveunet train``: the paper's training protocol on a prepared cache, resumable, on one or many devices."""

import os
import sys

from waveunet_tf import precision
from waveunet_tf.config import resolve_config
from waveunet_tf.errors import UsageError
from waveunet_tf.training import train_on_cache
from waveunet_tf.training.distribute import cluster_for, training_threads
from waveunet_tf.training.init import init_config, load_start
from waveunet_tf.training.run_dir import require_run_dir

HELP = "train a variant on a prepared cache (the paper's protocol: early stopping, then fine-tuning)"
DESCRIPTION = """\
Train a Wave-U-Net variant on a cache made by `waveunet prepare`, following the paper's protocol: Adam,
epochs of steps_per_epoch steps, validation loss over every window of the validation tracks after each
epoch, early stopping after `patience` epochs without improvement, then fine-tuning from the best weights
with the batch doubled and the learning rate 1e-5. The best model is RUN/best.keras.

Config: the variant's defaults, then --quick, then --config FILE (JSON of config keys, may name a
"variant"), then each --set KEY=VALUE. With --init MODEL the architecture (and, without --variant, the
defaults) come from MODEL; architecture keys that differ from it are refused, and history.csv starts with
an epoch-0 row: the validation loss of MODEL's weights. The run dir gets config.json, state.json +
checkpoints/ (resume with --resume after any interruption, even kill -9), history.csv, logs/ (TensorBoard)
and loss.png.

Strategies: default (one device), mirrored (every local GPU, or every logical CPU device), multiworker
(several processes or machines, configured by TF_CONFIG; worker 0 is the chief and the only one writing).
The config's batch_size is the global batch, split among the replicas.

Progress: a bar in a terminal; when stderr is a file or a pipe, a few lines per epoch.

The last line on stdout is the run dir."""


def add_arguments(p):
    p.add_argument("--variant", help="the paper's variant (M1 .. M7, M5-HighSR); optional with --resume, --init or a "
                                     "--config that names one")
    p.add_argument("--cache", required=True, help="cache folder made by `waveunet prepare` (or `reproduce`)")
    p.add_argument("--run-dir", required=True, help="folder for this run's files")
    p.add_argument("--config", metavar="FILE", help="JSON file of config keys (e.g. experiments/M4.json)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                   help="override one config key (repeatable), e.g. --set batch_size=8")
    p.add_argument("--init", metavar="MODEL",
                   help="start from MODEL's weights and architecture (a run dir, a .keras file or official:NAME); "
                        "history.csv then begins with an epoch-0 row, their validation loss")
    p.add_argument("--quick", action="store_true",
                   help="the small preset for smoke runs and the demo (same kind of model, minutes on 2 cores)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps in total")
    p.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                   help="tf.distribute strategy (default: one device)")
    p.add_argument("--jit", action="store_true", help="compile the training step with XLA (jit_compile)")
    p.add_argument("--precision", choices=precision.TRAINING_CHOICES, default="float32",
                   help="compute precision, weights always float32: float32 (default); bfloat16 (mixed_bfloat16, "
                   "only on a CPU with native bfloat16: AVX512-BF16 or AMX); float16 (mixed_float16 with loss "
                   "scaling, GPUs only)")
    p.add_argument("--mixed-precision", dest="precision", action="store_const", const="float16",
                   help="the same as --precision float16 (its former name)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--force", action="store_true", help="start over, deleting the run files already in --run-dir")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (in a terminal) or progress lines (elsewhere): only a line per epoch")


def run(args):
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, not {args.max_steps}")
    if args.resume and args.force:
        raise UsageError("--resume continues a run and --force starts it over: give one of them")
    if args.resume:
        require_run_dir(args.run_dir)
    train_precision = precision.resolve_training(args.precision)
    start = config = None
    if not args.init:
        config = resolve_config(args.variant, args.config, args.sets, args.quick, args.jit,
                                run_dir=args.run_dir if args.resume else None)
    notes = []  # said when the training starts, not before a refusal
    parts = training_threads(notes.append)  # before TensorFlow starts (--init loads)
    if train_precision == "float16":
        precision.require_gpu_for_float16()  # before the run dir is made
    if args.init:
        start = load_start(args.init)
        config = init_config(start, args.variant, args.config, args.sets, args.quick, args.jit)
    state = train_on_cache(config, args.cache, args.run_dir, strategy=args.strategy, resume=args.resume,
                           force=args.force, max_steps=args.max_steps, precision=train_precision,
                           progress=not args.no_progress, init=start, batch_parts=parts, notes=notes)
    cluster = cluster_for(args.strategy)
    print(f"worker {cluster.worker_index}: final weights fingerprint {state.fingerprint}", file=sys.stderr)
    if cluster.is_chief:
        best = "none yet" if state.best_loss is None else f"{state.best_loss:.6f} (epoch {state.best_epoch})"
        print(f"{'finished' if state.finished else 'stopped'}: {state.epoch} epochs, {state.step} steps, best "
              f"validation loss {best}" + (f"; {state.stop_reason}" if state.stop_reason else ""), file=sys.stderr)
    print(os.fspath(args.run_dir))
    return 0
