import json

from waveunet_tf.config import reference_facts, variant_config, variant_names

HELP = "list the paper's variants: sample rate, channels, sources, input/output length, parameters"


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print one JSON list on stdout")


def variant_rows():
    """Every variant with its sizes (parameters from the reference facts, which the tests check on built models)."""
    facts = reference_facts()
    rows = []
    for name in variant_names():
        cfg = variant_config(name)
        rows.append({"name": name, "description": cfg.description, "sample_rate": cfg.sample_rate,
                     "channels": cfg.channels, "sources": list(cfg.sources), "input_length": cfg.input_length,
                     "output_length": cfg.output_length, "params": facts[name]["params"]})
    return rows


def run(args):
    rows = variant_rows()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    head = f"{'variant':<10} {'rate':>6} {'ch':>3} {'input':>7} {'output':>7} {'params':>11}  sources / description"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['name']:<10} {r['sample_rate']:>6} {r['channels']:>3} {r['input_length']:>7} "
              f"{r['output_length']:>7} {r['params']:>11,}  {'+'.join(r['sources'])}: {r['description']}")
    return 0
