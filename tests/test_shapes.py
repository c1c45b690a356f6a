"""Length arithmetic and the window plan: the official rounding, valid lengths, and how every inference path
cuts a song into windows (checked as properties and against numbers worked by hand and the official facts)."""

import json
from pathlib import Path

import pytest

from waveunet_tf import shapes, variant_config
from waveunet_tf.errors import UserError

REFERENCE = json.loads((Path(__file__).parents[2] / "shared" / "reference" / "official_variants.json").read_text())
VARIANTS = [k for k in REFERENCE if not k.startswith("_") and k != "training"]


@pytest.mark.parametrize("name", VARIANTS)
def test_training_lengths_are_the_official_ones(name):
    cfg, facts = variant_config(name), REFERENCE[name]
    assert (cfg.input_length, cfg.output_length) == (facts["input_length"], facts["output_length"])


def test_official_rounding_goes_up_to_the_next_valid_output():
    cfg = variant_config("M4")
    # 16389 is the smallest valid output >= 16384; valid outputs are 4096 apart
    assert shapes.lengths_for_bottleneck(cfg, 9) == (147443, 16389)
    assert shapes.lengths_for_bottleneck(cfg, 8) == (143347, 12293)
    assert variant_config("M4", requested_output=12293).output_length == 12293
    assert variant_config("M4", requested_output=12294).output_length == 16389
    assert shapes.context(cfg) == (65527, 65527)


def test_valid_lengths_and_nearest():
    cfg = variant_config("M4")
    assert shapes.is_valid_input_length(cfg, 147443)
    assert shapes.is_valid_input_length(cfg, 147443 + 4096)
    assert not shapes.is_valid_input_length(cfg, 147444)
    assert shapes.nearest_valid_input_lengths(cfg, 147444) == [147443, 151539]
    with pytest.raises(UserError, match="nearest valid lengths are 147443 or 151539"):
        shapes.check_input_length(cfg, 147444)
    m1 = variant_config("M1")
    assert shapes.is_valid_input_length(m1, 8192) and not shapes.is_valid_input_length(m1, 8000)


def test_no_context_requested_output_must_be_multiple_of_step():
    with pytest.raises(UserError, match="multiple of 2\\*\\*num_layers = 4096"):
        variant_config("M1", requested_output=5000).input_length


def _check_plan(cfg, plan, length):
    """The plan's promises: windows cover the song exactly, in order, each keeping at most what it predicts,
    and each window's input is a length the network accepts, predicting ``output_length`` samples."""
    assert plan.length == length and plan.count >= 1
    kept = [plan.kept(i) for i in range(plan.count)]
    assert all(0 < k <= plan.hop <= plan.output_length for k in kept)
    assert sum(kept) == length  # consecutive windows start `hop` apart: no gap, no overlap
    assert plan.input_start(0) == -shapes.context(cfg)[0]
    assert shapes.is_valid_input_length(cfg, plan.input_length)
    assert plan.input_length - plan.output_length == sum(shapes.context(cfg))


LENGTHS = (1, 2, 4095, 4096, 4097, 16389, 100000, 1_000_003, 13_230_000)


@pytest.mark.parametrize("name", ["M1", "M3", "M4", "M7"])
def test_every_plan_covers_the_song_with_valid_windows(name):
    cfg = variant_config(name)
    geometry = shapes.WindowGeometry.of(cfg)
    for length in LENGTHS:
        for plan in (shapes.default_plan(cfg, length), shapes.plan_paper(cfg, length),
                     shapes.plan_aligned(geometry, length, 5000), shapes.plan_aligned(geometry, length, 1)):
            _check_plan(cfg, plan, length)
    with pytest.raises(UserError, match="empty"):
        shapes.default_plan(cfg, 0)


@pytest.mark.parametrize("name", ["M3", "M4", "M7"])
def test_aligned_windows_all_start_on_the_same_decimation_phase(name):
    cfg = variant_config(name)
    step = 2 ** REFERENCE[name]["num_layers"]
    for length in LENGTHS:
        for max_hop in (1, 5000, 70000, shapes.DEFAULT_MAX_HOP):
            plan = shapes.plan_aligned(shapes.WindowGeometry.of(cfg), length, max_hop)
            assert {plan.input_start(i) % step for i in range(plan.count)} == {plan.input_start(0) % step}
            assert plan.hop <= max(step, max_hop // step * step)
            # windows of about the same length: the last one keeps more than all but one step of the others
            assert plan.count == 1 or plan.kept(plan.count - 1) > plan.hop - plan.count * step


def test_default_plan_of_a_ten_minute_song_worked_by_hand():
    cfg = variant_config("M4")
    plan = shapes.default_plan(cfg, 600 * 22050)
    # ceil(13230000 / 2**19) = 26 windows; ceil(13230000 / 26) = 508847, rounded up to a multiple of 4096: 512000;
    # each predicts 512000 + 5 samples (valid outputs are 16389 + k*4096, 16389 = 4*4096 + 5), reads 65527 more
    # on either side: 643059 = 147443 + 121*4096
    assert (plan.count, plan.hop, plan.output_length, plan.input_length) == (26, 512000, 512005, 643059)
    assert plan.kept(25) == 13230000 - 25 * 512000


def test_a_short_song_gets_one_window_just_long_enough():
    cfg = variant_config("M4")
    plan = shapes.default_plan(cfg, 5000)  # 5000 rounded up to 8192 = 2*4096
    assert (plan.count, plan.hop, plan.input_length) == (1, 8192, 8192 + 5 + 2 * 65527)


def test_paper_plan_is_the_official_prediction():
    cfg = variant_config("M4")
    plan = shapes.plan_paper(cfg, 100000)
    facts = REFERENCE["M4"]
    assert (plan.input_length, plan.output_length, plan.hop) == (facts["input_length"], facts["output_length"],
                                                                 facts["output_length"])
    assert plan.count == 7  # ceil(100000 / 16389)
    m1 = variant_config("M1")  # no context: the training window, zero-padded edges
    assert shapes.plan_paper(m1, 40000) == shapes.default_plan(m1, 40000)
    assert shapes.default_plan(m1, 40000).input_length == REFERENCE["M1"]["input_length"]


def test_exported_geometry_plans_the_same_windows():
    """A SavedModel's ``piece`` signature returns exactly the kept samples: its geometry folds ``extra`` into the
    right context, and plans the same windows over the same input."""
    cfg = variant_config("M4")
    left, right = shapes.context(cfg)
    facts = {"piece_context_left": left, "piece_context_right": right + 5, "piece_multiple": 4096}
    exported = shapes.WindowGeometry.of_facts(facts)
    for length in LENGTHS:
        ours = shapes.default_plan(cfg, length)
        theirs = shapes.plan_aligned(exported, length, shapes.DEFAULT_MAX_HOP)
        assert (theirs.count, theirs.hop, theirs.input_length) == (ours.count, ours.hop, ours.input_length)
        assert theirs.output_length == ours.hop


def test_aligned_hop_is_plain_integer_arithmetic():
    # the export computes the plan from these lines on TF int tensors; here on ints, worked by hand
    assert shapes.aligned_hop(10, 64, 16) == 16
    assert shapes.aligned_hop(3000, 64, 16) == 64  # 47 windows of 64 (63.8 rounded up)
    assert shapes.aligned_hop(3000, 400, 16) == 384  # 8 windows: ceil(3000 / 8) = 375 -> 384
