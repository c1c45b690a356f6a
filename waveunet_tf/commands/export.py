HELP = "export a model as a SavedModel for TensorFlow Serving (DIR/VERSION)"

DESCRIPTION = """Export a model as a SavedModel in the TensorFlow Serving layout: --out DIR/VERSION, VERSION an
integer folder (e.g. models/waveunet/1). MODEL: a run directory (best.keras) or a .keras file (also one written
by `waveunet import-official`).

Signatures: serving_default (input `mixture` float32 [batch, time, channels] at the model's rate, any time >= 1;
one output per source, same shape), piece (a piece of a long song with its context; returns the centre, so pieces
join exactly), model_info (sample rate, channels, sources, window and context lengths, the config).
Only core TensorFlow ops, so the stock tensorflow_model_server loads it."""


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="run directory or .keras file")
    p.add_argument("--out", required=True, metavar="DIR/VERSION", help="SavedModel folder, ending in an integer version")
    p.add_argument("--force", action="store_true", help="replace an existing version folder")


def run(args):
    from waveunet_tf.export import check_version_dir, export_saved_model
    from waveunet_tf.model_io import load_model
    check_version_dir(args.out, args.force)  # fail before loading TensorFlow and the model
    model, cfg = load_model(args.model)
    print(export_saved_model(model, cfg, args.out, force=args.force))
    return 0
