from waveunet_tf.commands import bench_client, bench_inference, bench_input, bench_train

HELP = "measure the input pipeline, a training step, or whole-song inference (medians over several runs)"

# kind -> the command module that measures it (HELP, add_arguments(parser), run(args))
KINDS = {"input": bench_input, "train": bench_train, "inference": bench_inference, "client": bench_client}


def add_arguments(p):
    sub = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, mod in KINDS.items():
        sp = sub.add_parser(kind, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(sp)
        sp.set_defaults(_bench_run=mod.run)


def run(args):
    return args._bench_run(args)
