"""The custom layers on cases worked by hand, and their config round trips."""

import keras
import numpy as np
import pytest

from waveunet_tf.layers import (ClipAtInference, CropAndConcat, Decimate, DifferenceOutput, InputCheck,
                                LearnedUpsample, LinearUpsample)


def seq(*values):
    return np.array(values, dtype=np.float32)[None, :, None]  # [1, T, 1]


def flat(t):
    return np.asarray(t)[0, :, 0].tolist()


def test_decimate_keeps_even_samples():
    assert flat(Decimate()(seq(0, 1, 2, 3, 4))) == [0, 2, 4]
    assert flat(Decimate()(seq(0, 1, 2, 3))) == [0, 2]


def test_linear_upsample_with_context_interpolates_without_extrapolation():
    assert flat(LinearUpsample(context=True)(seq(1, 2, 4))) == [1, 1.5, 2, 3, 4]


def test_linear_upsample_without_context_repeats_last_sample():
    # TF1 resize_bilinear(align_corners=False): out[2k+1] = (in[k] + in[k+1]) / 2, last repeats in[n-1]
    assert flat(LinearUpsample(context=False)(seq(1, 2, 4))) == [1, 1.5, 2, 3, 4, 4]


def test_learned_upsample_weights_and_edge():
    layer = LearnedUpsample(context=False)
    x = np.array([[[1.0, 10.0], [3.0, 30.0]]], dtype=np.float32)  # [1, 2, 2]
    layer.build(x.shape)
    layer.interp.assign([0.0, np.log(3.0)])  # sigmoid: 0.5 and 0.75
    out = np.asarray(layer(x))[0]
    # channel 0: 1, .5*1+.5*3=2, 3, .5*3+.5*0=1.5; channel 1: 10, .75*10+.25*30=15, 30, .75*30=22.5
    np.testing.assert_allclose(out, [[1, 10], [2, 15], [3, 30], [1.5, 22.5]], rtol=1e-6)
    ctx = LearnedUpsample(context=True)
    ctx.build(x.shape)
    ctx.interp.assign([0.0, np.log(3.0)])
    np.testing.assert_allclose(np.asarray(ctx(x))[0], [[1, 10], [2, 15], [3, 30]], rtol=1e-6)


def test_crop_and_concat_centre_crops_extra_sample_at_end():
    skip = seq(0, 1, 2, 3, 4)
    x = seq(9, 9)
    out = np.asarray(CropAndConcat()([skip, x]))[0]
    # diff 3: start 1, the extra sample removed at the end -> skip[1:3]; order [cropped skip, x]
    np.testing.assert_array_equal(out, [[1, 9], [2, 9]])


def test_difference_output_and_clipping_only_at_inference():
    mixture = seq(0, 2.0, -0.5, 0)  # cropped to the centre 2 samples: [2.0, -0.5]
    other = seq(0.5, 0.25)
    layer = DifferenceOutput()
    assert flat(layer([mixture, other], training=True)) == [1.5, -0.75]
    assert flat(layer([mixture, other], training=False)) == [1.0, -0.75]
    assert flat(ClipAtInference()(seq(-3, 0.5, 2), training=False)) == [-1, 0.5, 1]
    assert flat(ClipAtInference()(seq(-3, 0.5, 2), training=True)) == [-3, 0.5, 2]


def test_input_check_rejects_bad_channels_and_lengths():
    check = InputCheck(channels=2, min_length=19, step=8)
    assert np.asarray(check(np.zeros((1, 27, 2), np.float32))).shape == (1, 27, 2)
    with pytest.raises(Exception, match=r"nearest valid lengths are 19 or 27 \(valid: 19 \+ k\*8\)"):
        check(np.zeros((1, 20, 2), np.float32))
    with pytest.raises(Exception, match=r"input length 5 is not valid: the nearest valid lengths are 19 \("):
        check(np.zeros((1, 5, 2), np.float32))
    with pytest.raises(Exception, match="the mixture has 1 channels; this model takes 2"):
        check(np.zeros((1, 27, 1), np.float32))


@pytest.mark.parametrize("layer", [Decimate(), LinearUpsample(context=False), LearnedUpsample(context=True),
                                   CropAndConcat(), ClipAtInference(), DifferenceOutput(),
                                   InputCheck(2, 19, 8), InputCheck(2, 19, 8, {"name": "x"})],
                         ids=lambda l: type(l).__name__ + ("_old" if getattr(l, "waveunet_config", None) else ""))
def test_layer_config_round_trip(layer):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()
