"""Length arithmetic of the Wave-U-Net, exactly as the official implementation rounds.

With context (valid convolutions) the network maps an input of ``input_length(x)`` samples to an output of
``output_length(x)`` samples, where ``x`` is the length of the bottleneck feature map (after the last
decimation). Both grow by ``2**num_layers`` per unit of ``x``, so the valid lengths form an arithmetic
progression and the context (``input - output``) is the same for every valid length.
Without context ("same" convolutions) input and output have the same length, a multiple of ``2**num_layers``.
"""

from __future__ import annotations

import math

from waveunet_tf.errors import UserError


def step(cfg) -> int:
    """Distance between consecutive valid lengths: ``2**num_layers``."""
    return 2 ** cfg.num_layers


def lengths_for_bottleneck(cfg, x: int) -> tuple[int, int]:
    """(input, output) lengths of a context model whose bottleneck feature map has ``x`` samples.

    Mirrors the official ``get_padding``: come back up from the bottleneck through the decimation and
    upsampling blocks. (``input_filter_size`` enters the last step as in the official code.)
    """
    out, inp = x, x + cfg.filter_size - 1
    for i in range(cfg.num_layers):
        out = 2 * out - 1 - (cfg.merge_filter_size - 1)
        inp = 2 * inp - 1 + ((cfg.filter_size if i < cfg.num_layers - 1 else cfg.input_filter_size) - 1)
    out = out - cfg.output_filter_size + 1
    return inp, out


def _bottleneck_for_output(cfg, requested: int) -> int:
    """The official rounding: go down from the requested output to the bottleneck and round up."""
    rem = float(requested) - cfg.output_filter_size + 1
    for _ in range(cfg.num_layers):
        rem = rem + cfg.merge_filter_size - 1
        rem = (rem + 1.0) / 2.0
    return max(int(math.ceil(rem)), min_bottleneck(cfg))


def min_bottleneck(cfg) -> int:
    """Smallest bottleneck length for which every feature map of the network has at least one sample."""
    x = 2  # the official code asserts at least 2
    while True:
        out = x
        ok = True
        for _ in range(cfg.num_layers):
            out = 2 * out - 1 - (cfg.merge_filter_size - 1)
            ok &= out >= 1
        ok &= out - cfg.output_filter_size + 1 >= 1
        if ok:
            return x
        x += 1


def training_lengths(cfg) -> tuple[int, int]:
    """(input_length, output_length) for the config's ``requested_output``: the official ``get_padding``."""
    if not cfg.context:
        n = cfg.requested_output
        if n % step(cfg):
            raise UserError(f"requested_output={n} is not valid without context: it must be a multiple of "
                            f"2**num_layers = {step(cfg)} (nearest: {_round_to(n, step(cfg))})")
        return n, n
    return lengths_for_bottleneck(cfg, _bottleneck_for_output(cfg, cfg.requested_output))


def _round_to(n, s):
    lo = max(s, (n // s) * s)
    return f"{lo} or {lo + s}" if lo != n else str(n)


def context(cfg) -> tuple[int, int]:
    """Samples of context the network consumes (left, right) around its output; (0, 0) without context."""
    if not cfg.context:
        return 0, 0
    inp, out = lengths_for_bottleneck(cfg, min_bottleneck(cfg))
    total = inp - out
    return total // 2, total - total // 2


def min_input_length(cfg) -> int:
    return lengths_for_bottleneck(cfg, min_bottleneck(cfg))[0] if cfg.context else step(cfg)


def is_valid_input_length(cfg, n: int) -> bool:
    first = min_input_length(cfg)
    return n >= first and (n - first) % step(cfg) == 0


def nearest_valid_input_lengths(cfg, n: int) -> list[int]:
    """The valid input lengths just below and above ``n`` (one if ``n`` is below the smallest)."""
    first, s = min_input_length(cfg), step(cfg)
    if n <= first:
        return [first]
    below = first + ((n - first) // s) * s
    return [below] if below == n else [below, below + s]


def check_input_length(cfg, n: int) -> None:
    """Raise a one-line :class:`UserError` when ``n`` is not a valid input length for ``cfg``."""
    if not is_valid_input_length(cfg, n):
        near = " or ".join(str(v) for v in nearest_valid_input_lengths(cfg, n))
        raise UserError(f"input length {n} is not valid for {cfg.name}: the nearest valid lengths are {near} "
                        f"(valid: {min_input_length(cfg)} + k*{step(cfg)})")


def output_length_for_input(cfg, n: int) -> int:
    """Output samples the network produces from a valid input of ``n`` samples."""
    check_input_length(cfg, n)
    left, right = context(cfg)
    return n - left - right


def inference_window(cfg, n: int) -> tuple[int, int]:
    """Smallest valid (input, output) window whose output covers ``n`` samples."""
    if n < 1:
        raise UserError(f"a window must cover at least one sample, not {n}")
    if not cfg.context:
        k = max(1, math.ceil(n / step(cfg)))
        return k * step(cfg), k * step(cfg)
    x0 = min_bottleneck(cfg)
    out0 = lengths_for_bottleneck(cfg, x0)[1]
    x = x0 + max(0, math.ceil((n - out0) / step(cfg)))
    return lengths_for_bottleneck(cfg, x)
