"""An independent numpy forward pass of the official Wave-U-Net (TF1 semantics), for checking imported weights.

Written from the official code's operations, not from waveunet_tf's layers: ``tf.layers.conv1d`` with
"same"/"valid" padding, ``[:, ::2]`` decimation, ``tf.image.resize_bilinear`` (legacy, with and without
``align_corners``), the learned interpolation as a width-2 convolution with diagonal weights, and the official
crop (extra sample removed at the end).
"""

import numpy as np


def conv1d(x, kernel, bias, padding):
    """x [T, Cin], kernel [W, Cin, Cout] -> [T', Cout], cross-correlation as TF."""
    w = kernel.shape[0]
    if padding == "same":
        before = (w - 1) // 2
        x = np.pad(x, ((before, w - 1 - before), (0, 0)))
    t = x.shape[0] - w + 1
    out = np.zeros((t, kernel.shape[2]))
    for k in range(w):
        out += x[k:k + t] @ kernel[k]
    return out + bias


def leaky(x, alpha=0.2):
    return np.maximum(alpha * x, x)


def resize_bilinear_1d(x, out_len, align_corners):
    """TF1 legacy resize_bilinear along time (height 1)."""
    n = x.shape[0]
    scale = (n - 1) / (out_len - 1) if align_corners and out_len > 1 else n / out_len
    out = np.zeros((out_len, x.shape[1]))
    for j in range(out_len):
        pos = j * scale
        lo = int(np.floor(pos))
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        out[j] = x[lo] + (x[hi] - x[lo]) * frac
    return out


def learned_interp(x, w, padding):
    """The official learned interpolation: conv of width 2 with diag(sigmoid(w)), diag(1 - sigmoid(w))."""
    s = 1 / (1 + np.exp(-w))
    f = x.shape[1]
    kernel = np.stack([np.diag(s), np.diag(1 - s)])  # [2, F, F]
    mid = conv1d(x, kernel, np.zeros(f), padding)
    n = x.shape[0]
    count = 2 * n - 1 if padding == "valid" else 2 * n
    out = np.zeros((count, f))
    for idx in range(count):
        out[idx] = x[idx // 2] if idx % 2 == 0 else mid[idx // 2]
    return out


def crop(x, length):
    diff = x.shape[0] - length
    assert diff >= 0
    start = diff // 2
    return x[start:start + length]


def forward(weights, cfg, mixture, training=False):
    """``weights``: dict of official variable name -> array; ``mixture`` [T, C]. Returns {source: [T', C]}."""
    padding = "valid" if cfg.context else "same"
    L = cfg.num_layers
    counter = iter(range(10 ** 6))

    def next_conv(x, act=True):
        k = next(counter)
        p = "separator/conv1d" + ("" if k == 0 else f"_{k}")
        y = conv1d(x, weights[p + "/kernel"], weights[p + "/bias"], padding)
        return leaky(y) if act else y

    x = mixture.astype(np.float64)
    skips = []
    for _ in range(L):
        x = next_conv(x)
        skips.append(x)
        x = x[::2]
    x = next_conv(x)
    for i in range(L):
        n = x.shape[0]
        if cfg.upsampling == "learned":
            x = learned_interp(x, weights[f"separator/interp_{i}"], padding)
        else:
            x = resize_bilinear_1d(x, 2 * n - 1 if cfg.context else 2 * n, align_corners=cfg.context)
        x = np.concatenate([crop(skips[L - 1 - i], x.shape[0]), x], axis=1)
        x = next_conv(x)
    x = np.concatenate([crop(mixture, x.shape[0]), x], axis=1)

    def activation(y):
        if cfg.output_activation == "tanh":
            return np.tanh(y)
        return y if training else np.clip(y, -1, 1)

    out = {}
    estimated = cfg.sources[:-1] if cfg.output_type == "difference" else cfg.sources
    for s in estimated:
        out[s] = activation(next_conv(x, act=False))
    if cfg.output_type == "difference":
        last = crop(mixture, x.shape[0]) - sum(out[s] for s in estimated)
        out[cfg.sources[-1]] = last if training else np.clip(last, -1, 1)
    return out
