import sys

from waveunet_tf.model_io import load_model
from waveunet_tf.serving import export, production

HELP = "export a model as a SavedModel for TensorFlow Serving (DIR/VERSION)"

DESCRIPTION = """Export a model as a SavedModel in the TensorFlow Serving layout: --out DIR/VERSION, VERSION an
integer folder (e.g. models/waveunet/1). MODEL: a run directory (best.keras), a .keras file (also one written
by `waveunet import-official`), or official:NAME (see `waveunet models`).

Signatures: serving_default (input `mixture` float32 [batch, time, channels] at the model's rate, any time >= 1;
one output per source, same shape), piece (a piece of a long song with its context; returns the centre, so pieces
join exactly), model_info (sample rate, channels, sources, window and context lengths, the config).
Only core TensorFlow ops, so the stock tensorflow_model_server loads it.

Also written: VERSION/assets.extra/tf_serving_warmup_requests (requests TF Serving replays when it loads the
version; --no-warmup to skip) and DIR/batching_parameters.txt (for --enable_batching; an existing one is kept).
--force replaces an existing version only if it is a SavedModel, swapping the folders in one step."""


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="run directory, .keras file or official:NAME")
    p.add_argument("--out", required=True, metavar="DIR/VERSION",
                   help="SavedModel folder, ending in an integer version")
    p.add_argument("--force", action="store_true", help="replace an existing version folder holding a SavedModel")
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="do not write assets.extra/tf_serving_warmup_requests")


def run(args):
    export.check_version_dir(args.out, args.force)  # fail before loading TensorFlow and the model
    model, cfg = load_model(args.model, precision="float32")  # a SavedModel serves float32, however trained
    out = export.export_saved_model(model, cfg, args.out, force=args.force, warmup=args.warmup)
    path, current = production.write_batching_parameters(out.parent, export.model_facts(cfg))
    if not current:
        print(f"waveunet export: note: kept {path}, whose values differ from this model's suggestion (delete it to "
              "get them)", file=sys.stderr)
    print(out)
    return 0
