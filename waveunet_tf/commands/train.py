"""``waveunet train``: the paper's training protocol on a prepared cache, resumable, on one or many devices."""

import json
import os
import sys

HELP = "train a variant on a prepared cache (the paper's protocol: early stopping, then fine-tuning)"
DESCRIPTION = """\
Train a Wave-U-Net variant on a cache made by `waveunet prepare`, following the paper's protocol: Adam,
epochs of steps_per_epoch steps, validation loss over every window of the validation tracks after each
epoch, early stopping after `patience` epochs without improvement, then fine-tuning from the best weights
with the batch doubled and the learning rate 1e-5. The best model is RUN/best.keras.

Config: the variant's defaults, then --quick, then --config FILE (JSON of config keys, may name a
"variant"), then each --set KEY=VALUE. The run dir gets config.json, state.json + checkpoints/ (resume
with --resume after any interruption, even kill -9), history.csv, logs/ (TensorBoard) and loss.png.

Strategies: default (one device), mirrored (every local GPU, or every logical CPU device), multiworker
(several processes or machines, configured by TF_CONFIG; worker 0 is the chief and the only one writing).
The config's batch_size is the global batch, split among the replicas.

The last line on stdout is the run dir."""


def add_arguments(p):
    p.add_argument("--variant", help="the paper's variant (M1 .. M7, M5-HighSR); optional with --resume or a "
                                     "--config that names one")
    p.add_argument("--cache", required=True, help="cache folder made by `waveunet prepare` (or `reproduce`)")
    p.add_argument("--run-dir", required=True, help="folder for this run's files")
    p.add_argument("--config", metavar="FILE", help="JSON file of config keys (e.g. experiments/M4.json)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                   help="override one config key (repeatable), e.g. --set batch_size=8")
    p.add_argument("--quick", action="store_true",
                   help="the small preset for smoke runs and the demo (same kind of model, minutes on 2 cores)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps in total")
    p.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                   help="tf.distribute strategy (default: one device)")
    p.add_argument("--jit", action="store_true", help="compile the training step with XLA (jit_compile)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="mixed_float16 with loss scaling (GPUs only; refused on a machine without a GPU)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--force", action="store_true", help="start over, deleting the run files already in --run-dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


DERIVED_KEYS = ("input_length", "output_length", "params", "package_versions", "created", "strategy", "replicas")


def resolve_config(variant=None, config_file=None, sets=(), quick=False, jit=False, run_dir=None):
    """The run's config: variant defaults, then the quick preset, then the file, then ``--set`` overrides.
    Without a variant (and no file naming one), the config saved in ``run_dir`` (for ``--resume``)."""
    from pathlib import Path
    from waveunet_tf.config import WaveUNetConfig, parse_overrides, variant_config
    from waveunet_tf.errors import UsageError, UserError
    from waveunet_tf.quick import quick_config

    file_keys = {}
    if config_file:
        path = Path(config_file)
        try:
            file_keys = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"config file {path} does not exist") from None
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"config file {path} is not readable JSON: {e}") from None
        if not isinstance(file_keys, dict):
            raise UserError(f"config file {path} must hold a JSON object of config keys")
        named = file_keys.pop("variant", None)
        if variant and named and named != variant:
            raise UserError(f"config file {path} is for variant {named}, not {variant}")
        variant = variant or named
    derived = {k: file_keys.pop(k) for k in DERIVED_KEYS if k in file_keys}
    if variant:
        config = variant_config(variant)
    elif run_dir is not None and (Path(run_dir) / "config.json").is_file():
        config = WaveUNetConfig.from_json(Path(run_dir) / "config.json")
        if quick or file_keys or sets:  # the saved config is already resolved; changes need the variant
            raise UsageError("give --variant (and the same --quick/--config/--set as the first run) to resume "
                             "with explicit settings")
        return config.replace(jit_compile=True) if jit else config
    else:
        raise UsageError("--variant is required (or a --config naming one, or --resume of an existing run)")
    if quick:
        config = quick_config(config)
    config = config.replace(**file_keys).replace(**parse_overrides(sets))
    for key in ("input_length", "output_length"):
        if key in derived and derived[key] != getattr(config, key):
            raise UserError(f"config file says {key}={derived[key]} but its settings give {getattr(config, key)}")
    return config.replace(jit_compile=True) if jit else config


def check_mixed_precision(tf) -> None:
    from waveunet_tf.errors import UserError
    if not tf.config.list_physical_devices("GPU"):
        raise UserError("--mixed-precision needs a GPU: on a CPU mixed_float16 is slower than float32 "
                        "(no GPU found); leave it out")


def run(args):
    from pathlib import Path
    from waveunet_tf.errors import UsageError, UserError

    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, not {args.max_steps}")
    if args.resume and args.force:
        raise UsageError("--resume continues a run and --force starts it over: give one of them")
    run_dir = Path(args.run_dir)
    config = resolve_config(args.variant, args.config, args.sets, args.quick, args.jit,
                            run_dir=run_dir if args.resume else None)

    import data_pipeline
    data_pipeline.open_cache(args.cache).check(config)  # one clear line before TensorFlow starts

    import tensorflow as tf
    from waveunet_tf import distribute, training
    if args.mixed_precision:
        check_mixed_precision(tf)
    strategy, cluster = distribute.make_strategy(args.strategy)

    def train_data(batch_size, seed):
        return data_pipeline.training_dataset(args.cache, config, batch_size, seed=seed)

    def valid_data(batch_size):
        return data_pipeline.evaluation_dataset(args.cache, config, split="valid", batch_size=batch_size)

    try:
        state = training.train(config, run_dir, train_data=train_data, valid_data=valid_data, strategy=strategy,
                               cluster=cluster, resume=args.resume, force=args.force, max_steps=args.max_steps,
                               mixed_precision=args.mixed_precision, progress=not args.no_progress)
    except tf.errors.OpError as e:
        if args.strategy == "multiworker" and distribute.is_peer_failure(tf, e):
            raise UserError(f"lost contact with another worker ({type(e).__name__}: it stopped or is unreachable); "
                            f"restart every worker with --resume") from None
        raise
    print(f"worker {cluster.worker_index}: final weights fingerprint {state.fingerprint}",
          file=sys.stderr)
    if cluster.is_chief:
        best = "none yet" if state.best_loss is None else f"{state.best_loss:.6f} (epoch {state.best_epoch})"
        print(f"{'finished' if state.finished else 'stopped'}: {state.epoch} epochs, {state.step} steps, "
              f"best validation loss {best}" + (f"; {state.stop_reason}" if state.stop_reason else ""),
              file=sys.stderr)
    print(os.fspath(run_dir))
    return 0
