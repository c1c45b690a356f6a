"""Length arithmetic: the official rounding, valid lengths, inference windows."""

import pytest

from waveunet_tf import shapes, variant_config
from waveunet_tf.config import reference_facts, variant_names
from waveunet_tf.errors import UserError


@pytest.mark.parametrize("name", variant_names())
def test_training_lengths_are_the_official_ones(name):
    cfg, facts = variant_config(name), reference_facts()[name]
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


def test_inference_window_is_smallest_covering_valid_window():
    cfg = variant_config("M4")
    assert shapes.inference_window(cfg, 16389) == (147443, 16389)
    assert shapes.inference_window(cfg, 16390) == (151539, 20485)
    assert shapes.inference_window(cfg, 1)[1] >= 1
    first_in, first_out = shapes.inference_window(cfg, 1)
    assert first_in == shapes.min_input_length(cfg) and first_in - first_out == 2 * 65527
    assert shapes.inference_window(variant_config("M1"), 5000) == (8192, 8192)


def test_no_context_requested_output_must_be_multiple_of_step():
    with pytest.raises(UserError, match="multiple of 2\\*\\*num_layers = 4096"):
        variant_config("M1", requested_output=5000).input_length
