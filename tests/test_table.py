"""`waveunet table`: the paper's layout, our rows beside the published numbers; and the experiments/ data."""

import json
from pathlib import Path

import pytest

from waveunet_tf import cli
from waveunet_tf.config import WaveUNetConfig, variant_config, variant_names
from waveunet_tf.evaluation.table import PUBLISHED_FILE, base_variant, published

ROOT = Path(__file__).resolve().parents[1]


def _results(sdr: dict, tracks=3):
    """A results.json document whose SDR stats per source are (median, mad, mean, sd)."""
    metrics = ("SDR", "SIR", "SAR", "ISR")
    return {"paper": {s: {m: dict(zip(("median", "mad", "mean", "sd"), v)) for m in metrics} for s, v in sdr.items()},
            "sisec": {s: {m: v[0] + 0.5 for m in metrics} for s, v in sdr.items()}, "tracks": tracks}


@pytest.fixture
def runs(tmp_path):
    m4 = tmp_path / "m4-run"
    m4.mkdir()
    (m4 / "config.json").write_text(json.dumps({"name": "M4"}))
    (m4 / "results.json").write_text(json.dumps(_results({"vocals": (5.123, 3.0, 1.0, 12.0),
                                                          "accompaniment": (11.0, 3.2, 12.0, 7.0)})))
    (m4 / "baseline.json").write_text(json.dumps(_results({"vocals": (-4.0, 2.0, -6.0, 5.0),
                                                           "accompaniment": (5.0, 1.0, 5.5, 2.0)})))
    m6 = tmp_path / "elsewhere" / "m6-results.json"
    m6.parent.mkdir()
    m6.write_text(json.dumps(_results({s: (1.0, 1.0, 1.0, 1.0) for s in ("vocals", "bass", "drums", "other")})))
    return m4, m6


def test_markdown_rows_and_published_numbers(runs, capsys):
    m4, m6 = runs
    assert cli.main(["table", str(m4), str(m6)]) == 0
    out = capsys.readouterr().out
    tables = [block for block in out.split("\n\n") if block.startswith("|")]
    assert len(tables) == 2  # voice task and multi-instrument task, as in the paper
    voice = tables[0].splitlines()
    assert voice[0].startswith("| model | tracks | vocals med | vocals MAD | vocals mean | vocals SD | accompaniment med")
    assert voice[2] == ("| M4 (m4-run) | 3 | 5.12 | 3.00 | 1.00 | 12.00 | 11.00 | 3.20 | 12.00 | 7.00 | 5.62 | "
                        "11.50 |")
    assert voice[3].startswith("| mixture as estimate (m4-run) | 3 | -4.00 |")
    assert voice[4] == ("| M4 published (SiSEC 2018 STL1) | 50 | 4.46 | 3.21 | 0.65 | 13.67 | 10.69 | 3.15 | "
                        "11.85 | 7.03 | - | - |")
    multi = tables[1].splitlines()
    assert "vocals med" in multi[0] and "bass med" in multi[0] and "other SD" in multi[0]
    assert multi[2].startswith("| elsewhere | 3 | 1.00 |")  # no config.json: the folder's name
    assert len(multi) == 3  # no variant known: no published row


def test_json_rows(runs, capsys):
    m4, _ = runs
    assert cli.main(["table", str(m4 / "results.json"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["kind"] for r in rows] == ["ours", "baseline", "published"]
    assert rows[0]["paper"]["vocals"] == {"median": 5.123, "mad": 3.0, "mean": 1.0, "sd": 12.0}
    assert rows[0]["sisec"]["accompaniment"] == 11.5
    assert rows[2]["paper"]["accompaniment"]["median"] == 10.69


def test_quick_runs_match_their_variant():
    assert base_variant("M4") == "M4"
    assert base_variant("M4-quick") == "M4"
    assert base_variant("M5-HighSR-quick") == "M5-HighSR"
    assert base_variant("M5") is None and base_variant("M41") is None and base_variant(None) is None


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "has no results.json"),
    (lambda d: (d / "results.json").write_text('{"x": 1}'), "is not a results file"),
    (lambda d: (d / "results.json").write_text("{oops"), "is not valid JSON"),
    # malformed inside: each once raised a TypeError or AttributeError without the file's name
    (lambda d: (d / "results.json").write_text('{"paper": {"vocals": 3}, "tracks": 1}'), "paper.vocals.SDR"),
    (lambda d: (d / "results.json").write_text('{"paper": {"vocals": {"SDR": {"median": "5"}}}, "tracks": 1}'),
     "paper.vocals.SDR"),
    (lambda d: (d / "results.json").write_text('{"paper": {"vocals": {"SDR": {}}}, "sisec": [], "tracks": 1}'),
     '"sisec" is not an object'),
    (lambda d: (d / "results.json").write_text('{"paper": {"vocals": {"SDR": {}}}, "sisec": {"vocals": 2}, '
                                               '"tracks": 1}'), "sisec.vocals.SDR"),
    (lambda d: (d / "results.json").write_text('{"paper": {}, "tracks": "3"}'), '"tracks" is'),
    (lambda d: (d / "results.json").write_bytes(b'{"paper": "\xff"}'), "cannot read"),
])
def test_bad_input_is_one_line(tmp_path, capsys, make, message):
    make(tmp_path)
    assert cli.main(["table", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert message in err and str(tmp_path) in err and len(err.strip().splitlines()) == 1


def _evaluated_run(run, scored: str, best: str | None):
    """A run dir whose results scored the weights ``scored`` while state.json says best.keras holds ``best``
    (None: the run was started over and has no best.keras yet)."""
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_results({"vocals": (5.0, 3.0, 1.0, 12.0),
                                                           "accompaniment": (11.0, 3.2, 12.0, 7.0)})))
    (run / "evaluation.json").write_text(json.dumps({"model": str(run / "best.keras"), "model_fingerprint": scored,
                                                     "musdb_root": "/data", "wav": True, "subset": "test"}))
    if best is not None:
        (run / "best.keras").write_bytes(b"a model")
        (run / "state.json").write_text(json.dumps({"step": 10, "best_fingerprint": best}))


def test_results_of_a_retrained_model_are_marked_stale(tmp_path, capsys):
    _evaluated_run(tmp_path / "same", "f1", "f1")
    _evaluated_run(tmp_path / "retrained", "f1", "f2")
    _evaluated_run(tmp_path / "restarted", "f1", None)
    assert cli.main(["table", *(str(tmp_path / n) for n in ("same", "retrained", "restarted")), "--json"]) == 0
    captured = capsys.readouterr()
    rows = {r["path"]: r for r in json.loads(captured.out)["rows"] if r["kind"] == "ours"}
    assert rows[str(tmp_path / "same" / "results.json")]["stale"] is None
    retrained = rows[str(tmp_path / "retrained" / "results.json")]
    assert "trained again" in retrained["stale"] and retrained["label"].endswith("[stale]")
    assert "is gone" in rows[str(tmp_path / "restarted" / "results.json")]["stale"]
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 2 and all("is stale" in w and "--force" in w for w in warnings)
    assert cli.main(["table", str(tmp_path / "retrained")]) == 0
    assert "| M4 (retrained) [stale] |" not in capsys.readouterr().out  # no config.json: the folder's name



def test_published_numbers_are_product_md():
    pub = published()
    assert pub["M4"]["SDR"]["vocals"] == {"median": 4.46, "mad": 3.21, "mean": 0.65, "sd": 13.67}
    assert pub["M4"]["SDR"]["accompaniment"] == {"median": 10.69, "mad": 3.15, "mean": 11.85, "sd": 7.03}
    assert pub["M6"]["SDR"]["bass"] == {"median": 2.91, "mad": 2.47, "mean": -0.30, "sd": 13.49}
    assert pub["M6"]["SDR"]["drums"] == {"median": 4.15, "mad": 1.99, "mean": 2.88, "sd": 7.68}
    assert pub["M6"]["SDR"]["other"] == {"median": 2.04, "mad": 1.64, "mean": 1.68, "sd": 6.15}
    assert pub["M6"]["SDR"]["vocals"] == {"median": 2.99, "mad": 2.76, "mean": -2.10, "sd": 15.41}
    assert pub["M5-HighSR"]["SDR"]["vocals"]["median"] == 4.95 and pub["M5-HighSR"]["SDR"]["vocals"]["mean"] == 1.01
    assert pub["M5-HighSR"]["SDR"]["accompaniment"]["median"] == 11.16
    assert pub["M5-HighSR"]["SDR"]["accompaniment"]["mean"] == 12.87


def test_experiments_published_is_the_package_copy():
    # one file: experiments/published.json points at the package data, so the two cannot drift
    assert (ROOT / "experiments" / "published.json").resolve() == PUBLISHED_FILE.resolve()


@pytest.mark.parametrize("name", variant_names())
def test_experiment_config_per_variant(name):
    cfg = WaveUNetConfig.from_json(ROOT / "experiments" / f"{name}.json")
    assert cfg == variant_config(name)
