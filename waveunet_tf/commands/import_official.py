"""``waveunet import-official``: an official TF1 checkpoint -> a ``.keras`` model."""

from pathlib import Path

from waveunet_tf.config import variant_config
from waveunet_tf.errors import UsageError, UserError
from waveunet_tf.files import atomic_path
from waveunet_tf.official_import import import_checkpoint, load_official_config

HELP = "import a checkpoint of the official TensorFlow 1 implementation into a .keras model"
DESCRIPTION = HELP + """

CKPT is a checkpoint prefix (e.g. checkpoints/812340/812340-90000) or a folder holding one. Choose the
architecture with --variant (one of the paper's) or --official-config (a JSON file of the official configuration
keys: num_layers, num_initial_filters, filter_size, merge_filter_size, input_filter_size, output_filter_size,
upsampling, output_type, context, source_names, mono_downmix, output_activation, num_frames; any size)."""


def add_arguments(p):
    p.add_argument("checkpoint", metavar="CKPT", help="official checkpoint prefix or folder")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--variant", help="the paper's variant the checkpoint was trained as (e.g. M4)")
    g.add_argument("--official-config", metavar="CFG.json", help="the official configuration as JSON")
    p.add_argument("--out", required=True, metavar="MODEL.keras", help="where to write the Keras model")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")


def run(args):
    out = Path(args.out)
    if out.suffix != ".keras":
        raise UsageError(f"--out must end in .keras, not {out.name!r}")
    if out.exists() and not args.force:
        raise UserError(f"{out} exists; pass --force to overwrite it")
    config = variant_config(args.variant) if args.variant else load_official_config(args.official_config)
    model = import_checkpoint(args.checkpoint, config)
    try:
        with atomic_path(out, suffix=".keras") as tmp:
            model.save(tmp)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from e
    print(f"imported {args.checkpoint} as {config.name} ({model.count_params():,} parameters) -> {out}")
    return 0
