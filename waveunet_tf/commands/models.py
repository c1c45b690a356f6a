import json
import sys

from waveunet_tf.config import variant_config
from waveunet_tf.evaluation.table import published
from waveunet_tf.pretrained import ARCHIVE, MODELS, PREFIX, archive_url, cached_path, fetch_models, official_dir

HELP = "the official authors' trained models (official:M4, official:M6, official:M5-HighSR): list, fetch"
DESCRIPTION = HELP + """

`waveunet models` lists the official Wave-U-Net models (Stoller, Ewert, Dixon; f90/Wave-U-Net, MIT license) with
their variant, sample rate, sources, published SDR and whether they are cached. Any command that takes a MODEL
accepts official:NAME and fetches the model on first use; `waveunet models fetch NAME...` fetches without
separating anything and prints each cached path.

The archive is downloaded from the official link (WAVEUNET_OFFICIAL_URL overrides it, e.g. a mirror) into the
cache (WAVEUNET_CACHE, default $XDG_CACHE_HOME/waveunet-tf or ~/.cache/waveunet-tf). Behind a network that blocks
the link, download models.zip by hand and run `waveunet models fetch NAME --from models.zip` (or the folder it
unzips to)."""


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print one JSON list on stdout")
    sub = p.add_subparsers(dest="action", metavar="{fetch}", title="actions (none: list the models)")
    f = sub.add_parser("fetch", help="download and import official models into the cache",
                       description="Download (or take from --from) and import official models into the cache; "
                                   "print each cached path.")
    f.add_argument("names", nargs="+", metavar="NAME", help="M4, M6 or M5-HighSR (official: may be prefixed)")
    f.add_argument("--from", dest="source", metavar="ZIP_OR_FOLDER",
                   help="the official models.zip, or the folder it unzips to, downloaded by hand")
    f.add_argument("--force", action="store_true", help="import again even if already cached")
    f.add_argument("--quiet", action="store_true", help="no progress bar or progress lines on stderr")


def model_rows() -> list[dict]:
    """One row per official model: {"name", "official_folder", "variant", "sample_rate", "sources", "cached",
    "path"} (``path`` None when not cached)."""
    rows = []
    for m in MODELS.values():
        cfg = variant_config(m.variant)
        path = cached_path(m.name)
        rows.append({"name": m.name, "official_folder": m.folder, "variant": m.variant,
                     "sample_rate": cfg.sample_rate, "sources": list(cfg.sources), "cached": path is not None,
                     "path": str(path) if path else None})
    return rows


def _print_table(rows):
    scores = published()
    for r in rows:
        sdr = scores.get(r["name"], {}).get("SDR", {})
        medians = ", ".join(f"{s} {v['median']:.2f}" for s, v in sdr.items())
        print(f"{PREFIX}{r['name']}  (variant {r['variant']}, official folder {r['official_folder']}: "
              f"{r['sample_rate']} Hz, {' + '.join(r['sources'])})")
        print(f"    published SDR median (dB): {medians}")
        print(f"    {'cached: ' + r['path'] if r['cached'] else 'not cached: fetched on first use'}")
    print(f"\ncache: {official_dir()}\narchive: {archive_url()}")
    kept = official_dir() / ARCHIVE
    if kept.is_file():
        print(f"downloaded archive kept in the cache: {kept} ({kept.stat().st_size / 1e6:.0f} MB; delete it once "
              "you have the models you want)")


def run(args):
    if args.action == "fetch":
        names = [n[len(PREFIX):] if n.startswith(PREFIX) else n for n in args.names]
        cached = [n for n in names if cached_path(n)]
        if cached and args.source and not args.force and not args.quiet:
            print(f"already cached, not imported again from {args.source}: {', '.join(cached)} (--force to "
                  "import again)", file=sys.stderr)
        for path in fetch_models(names, source=args.source, force=args.force, progress=not args.quiet):
            print(path)
        return 0
    rows = model_rows()
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    _print_table(rows)
    return 0
