import sys

from data_pipeline.ingest import SPLIT_RULES, prepare_cache

HELP = "decode MUSDB18 / MUSDB18-HQ / your own songs (and CCMixter) once into a WAV cache (resumable)"

DESCRIPTION = """Decode MUSDB18 (ROOT/{train,test}/<track>.stem.mp4) or, with --wav, MUSDB18-HQ
(ROOT/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav) or your own songs laid out the same way
with only some stems (e.g. vocals.wav and accompaniment.wav; every song of the root with the same stems; a
missing mixture.wav is taken as the sum of the stems) into a cache of one WAV per stem and track at
--sample-rate (resampled with soxr), plus manifest.json:

  CACHE/manifest.json                 sample rate, WAV subtype, split rule, roots, and per track: name,
                                      subset (train/test), split (train/valid/test), length, channels,
                                      dataset (musdb, ccmixter or own), stems
  CACHE/<subset>/<track>/<stem>.wav   mixture and the track's stems
  CACHE/ccmixter/<song>/<stem>.wav    with --ccmixter-root: mixture, accompaniment, vocals
  CACHE/<subset>/<track>/track.json   written last: the track is finished

--ccmixter-root DIR adds the 50 songs of CCMixter (DIR/<song>/mix.wav, source-01.wav the instrumental,
source-02.wav the voice; the folder names of the official CCMixter.xml) as training tracks only, as the
paper did for its singing-voice models; models with other sources (M6) leave them out. A missing song is a
bad track; folders that are not among the 50 are refused (--skip-bad leaves them out).

A cache belongs to one root: preparing it from another root is refused; --force deletes the tracks it holds
and prepares it from the new one.

Resumable: every file is written under a temporary name and renamed, and finished tracks are skipped, so an
interrupted run continues where it stopped (the temporary files of the interrupted run are removed; one
prepare at a time per cache). A bad track (missing stem, stems of different lengths or sample
rates, an unreadable file) stops the run with one line naming it; tracks already prepared are kept;
--skip-bad continues past bad tracks and lists them at the end; the validation tracks are then drawn from
the tracks that were prepared, with a warning when no train or no validation track is left.

Validation splits (--split):
  musdb  the musdb package's official validation split (14 of the 100 train tracks). On a root whose train
         tracks are not MUSDB18's (your own data, `waveunet synth`), the last quarter of the train tracks by
         sorted name become validation tracks (at least one when there are two or more); the manifest's
         split_rule says which rule was used.
  paper  25 validation tracks drawn from the train tracks with a fixed seed (a quarter of them, at least one,
         when there are fewer than 100), as the paper did. The paper's exact list was never published: this is
         a draw of the same size, not the same tracks.
  official  the 25 songs the official code drew: NumPy's global generator seeded with 1337 by Sacred, then
         np.random.choice(100, 25, replace=False) over musdb's track order (the .stem.mp4 file names of
         train/, sorted). Needs MUSDB18's 100 train tracks."""


def add_arguments(p):
    p.add_argument("--musdb-root", required=True, metavar="ROOT", help="MUSDB18 or MUSDB18-HQ root folder")
    p.add_argument("--wav", action="store_true", help="ROOT is MUSDB18-HQ (WAV folders), not .stem.mp4 files")
    p.add_argument("--cache", required=True, metavar="CACHE", help="cache folder to create or resume")
    p.add_argument("--sample-rate", type=int, default=22050, metavar="SR",
                   help="sample rate of the cache: the model's (default 22050; 44100 for M5-HighSR)")
    p.add_argument("--split", choices=SPLIT_RULES, default="musdb",
                   help="how validation tracks are chosen from the train tracks (default musdb; see above)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="tracks prepared in parallel (default 1)")
    p.add_argument("--float", dest="float_wav", action="store_true",
                   help="write 32-bit float WAVs instead of 16-bit PCM (twice the size)")
    p.add_argument("--ccmixter-root", metavar="DIR",
                   help="also prepare CCMixter's 50 songs from DIR as training tracks (see above)")
    p.add_argument("--force", action="store_true",
                   help="the cache was prepared from another root: delete its tracks and prepare it anew")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip tracks that cannot be read, list them at the end, and go on")


def run(args):
    manifest = prepare_cache(args.musdb_root, args.cache, args.sample_rate, wav=args.wav, split=args.split,
                             jobs=args.jobs, float_wav=args.float_wav, skip_bad=args.skip_bad, progress=True,
                             ccmixter_root=args.ccmixter_root, force=args.force)
    counts = {s: sum(t["split"] == s for t in manifest["tracks"]) for s in ("train", "valid", "test")}
    ccmixter = sum(t["dataset"] == "ccmixter" for t in manifest["tracks"])
    print(f"cache {args.cache}: {counts['train']} train" + (f" ({ccmixter} of CCMixter)" if ccmixter else "") +
          f", {counts['valid']} valid, {counts['test']} test tracks at "
          f"{manifest['sample_rate']} Hz ({manifest['split_rule']})", file=sys.stderr)
    if manifest["skipped"]:
        print(f"skipped {len(manifest['skipped'])} bad track(s):", file=sys.stderr)
        for bad in manifest["skipped"]:
            print(f"  {bad['subset']}/{bad['name']}: {bad['error']}", file=sys.stderr)
    print(args.cache)
    return 0
