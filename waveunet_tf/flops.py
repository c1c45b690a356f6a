"""The arithmetic the Wave-U-Net does, counted once from its layer sizes, for GFLOP/s figures.

A convolution producing ``t`` samples of ``c_out`` channels from ``c_in`` channels with a width-``k`` kernel
costs ``2 * k * c_in * c_out * t`` FLOPs (a multiply and an add per weight and output sample). Only the
convolutions are counted: biases, activations, resampling and crops are under 1% of the work and memory-bound.
Importing this module is light (no TensorFlow).
"""

from __future__ import annotations


def conv_flops(width: int, c_in: int, c_out: int, samples: int) -> int:
    """FLOPs of one 1-D convolution: ``2 * width * c_in * c_out * samples`` (``samples`` output samples)."""
    return 2 * width * c_in * c_out * samples


def forward_flops(cfg, input_length: int) -> int:
    """FLOPs of one forward pass of the Wave-U-Net of ``cfg`` over a window of ``input_length`` samples (batch 1),
    following the layers of :mod:`waveunet_tf.layers.network`: valid convolutions shorten by ``width - 1`` with
    context, keep the length without; decimation halves (rounding up); upsampling doubles (``2n - 1`` with
    context); the merges are cropped to the upsampled length."""
    L, Fc, C = cfg.num_layers, cfg.num_initial_filters, cfg.channels

    def out_len(t, width):
        return t - (width - 1) if cfg.context else t

    total, t, c = 0, int(input_length), C
    skip_len = []
    for i in range(L):
        t = out_len(t, cfg.filter_size)
        total += conv_flops(cfg.filter_size, c, Fc * (i + 1), t)
        c = Fc * (i + 1)
        skip_len.append(t)
        t = (t + 1) // 2
    t = out_len(t, cfg.filter_size)
    total += conv_flops(cfg.filter_size, c, Fc * (L + 1), t)
    c = Fc * (L + 1)
    for i in range(L):
        t = 2 * t - 1 if cfg.context else 2 * t
        c_in = c + Fc * (L - i)  # the upsampled features with the skip of the same level
        t = out_len(t, cfg.merge_filter_size)
        total += conv_flops(cfg.merge_filter_size, c_in, Fc * (L - i), t)
        c = Fc * (L - i)
    estimated = len(cfg.sources) - (1 if cfg.output_type == "difference" else 0)
    t = out_len(t, cfg.output_filter_size)
    total += estimated * conv_flops(cfg.output_filter_size, c + C, C, t)
    return total


def plan_flops(cfg, plan) -> int:
    """FLOPs of separating a song with a :class:`waveunet_tf.shapes.WindowPlan`: every window computed whole."""
    return plan.count * forward_flops(cfg, plan.input_length)


def step_flops(cfg, batch_size: int) -> int:
    """FLOPs of one training step on ``batch_size`` training windows: the forward pass and a backward pass of
    twice its cost (gradients of the inputs and of the weights), the usual 3x count."""
    return 3 * batch_size * forward_flops(cfg, cfg.input_length)
