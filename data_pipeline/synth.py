"""A synthetic multitrack dataset in the MUSDB18-HQ layout, for tests and the demo.

Each track has four sources a model can learn to tell apart:

- ``vocals``: a sung-like line: harmonic tones with vibrato, glides between notes and syllable envelopes;
- ``drums``: a kit on a tempo grid: kick (pitch-swept sine), snare (noise and tone), closed hi-hats (bright noise);
- ``bass``: a low line on the chord roots, a few harmonics;
- ``other``: chords or arpeggios in the middle register, an organ-like timbre.

Key, tempo, chord progression, levels and panning are drawn per track from ``seed``, so the same seed gives
byte-identical files. The stems are quantised to 16 bits first and the mixture is their exact integer sum, with
headroom, so nothing clips and ``mixture == vocals + drums + bass + other`` holds sample for sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from waveunet_tf.audio import write_wav
from waveunet_tf.progress import Progress
from waveunet_tf.errors import UsageError

SAMPLE_RATE = 44100
STEMS = ("vocals", "drums", "bass", "other")  # MUSDB18 stem names (files: <stem>.wav, plus mixture.wav)
_PEAK = 0.85  # headroom of the mixture, as a fraction of full scale
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])


def _hz(midi):
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _harmonic_tone(freq: np.ndarray, amps, sr: int) -> np.ndarray:
    """Sum of harmonics k*f(t) with amplitudes ``amps`` (harmonics above Nyquist dropped)."""
    phase = 2 * np.pi * np.cumsum(freq) / sr
    out = np.zeros_like(freq)
    for k, a in enumerate(amps, start=1):
        out += a * np.sin(k * phase) * (k * freq < 0.45 * sr)
    return out


def _adsr(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    a, r = min(n, max(1, int(attack * sr))), min(n, max(1, int(release * sr)))
    env[:a] *= np.linspace(0, 1, a)
    env[n - r:] *= np.linspace(1, 0, r)
    return env


def _song_plan(rng, seconds: float):
    """Key, mode, tempo and a chord (scale degree) per bar."""
    bpm = float(rng.uniform(88, 140))
    beat = 60.0 / bpm
    root = int(rng.integers(40, 52))  # tonic as MIDI note, E2 .. D#3 region; bass plays it, others transpose
    scale = _MAJOR if rng.random() < 0.5 else _MINOR
    progression = rng.choice([0, 3, 4, 5, 1], size=4, replace=True)
    progression[0] = 0
    bars = int(np.ceil(seconds / (4 * beat))) + 1
    chords = [int(progression[b % 4]) for b in range(bars)]
    return bpm, beat, root, scale, chords


def _degree(root, scale, d):
    """MIDI note of scale degree ``d`` (may exceed an octave)."""
    return root + 12 * (d // 7) + scale[d % 7]


def _vocals(rng, n, sr, beat, root, scale, chords):
    f = np.zeros(n)
    env = np.zeros(n)
    t = float(rng.uniform(0, 2 * beat))
    prev = None
    while t < n / sr:
        dur = beat * float(rng.choice([0.5, 1, 1, 1.5, 2]))
        bar = int(t / (4 * beat))
        chord = chords[min(bar, len(chords) - 1)]
        d = chord + int(rng.choice([0, 2, 4, 5]))  # chord tones and a passing note
        note = _degree(root + 12, scale, d if d < 7 else d - 7)  # a singer's range, about E3 to E5
        i0, i1 = int(t * sr), min(n, int((t + dur) * sr))
        if i1 <= i0:
            break
        m = i1 - i0
        contour = np.full(m, float(note))
        if prev is not None and rng.random() < 0.5:  # a glide from the previous note
            g = min(m, int(0.08 * sr))
            contour[:g] = np.linspace(prev, note, g)
        f[i0:i1] = contour
        env[i0:i1] = _adsr(m, sr, 0.03, min(0.12, dur / 3)) * (0.7 + 0.3 * rng.random())
        prev = note
        t += dur + (beat * float(rng.choice([0, 0, 0.5, 1])) if rng.random() < 0.4 else 0.0)
    ts = np.arange(n) / sr
    vib_rate, vib_depth = rng.uniform(4.5, 6.5), rng.uniform(0.2, 0.45)  # semitones
    midi = np.where(f > 0, f, 60.0) + vib_depth * np.sin(2 * np.pi * vib_rate * ts)
    # a vowel-like spectrum: strong low harmonics and a formant bump around the 3rd-5th
    amps = [1.0, 0.6, 0.5, 0.45, 0.3, 0.15, 0.1, 0.06, 0.04, 0.03]
    return _harmonic_tone(_hz(midi), amps, sr) * env


def _drums(rng, n, sr, beat):
    out = np.zeros(n)
    sixteenth = beat / 4
    kick_len, snare_len, hat_len = int(0.25 * sr), int(0.18 * sr), int(0.05 * sr)
    tk = np.arange(kick_len) / sr
    kick = np.sin(2 * np.pi * np.cumsum(50 + 110 * np.exp(-tk * 30)) / sr) * np.exp(-tk * 14)
    ts = np.arange(snare_len) / sr
    snare = (0.7 * rng.standard_normal(snare_len) + 0.5 * np.sin(2 * np.pi * 190 * ts)) * np.exp(-ts * 25)
    th = np.arange(hat_len) / sr
    hat = np.diff(rng.standard_normal(hat_len + 1)) * np.exp(-th * 90) * 0.35  # differenced noise: bright
    kick_pats = [(0, 8), (0, 6, 8), (0, 8, 10), (0, 3, 8, 11)]
    kick_pat = kick_pats[int(rng.integers(len(kick_pats)))]
    hat_step = int(rng.choice([1, 2]))
    steps = int(n / (sixteenth * sr)) + 1
    for s in range(steps):
        i = int(s * sixteenth * sr)
        pos = s % 16
        hits = []
        if pos in kick_pat:
            hits.append(kick)
        if pos in (4, 12):
            hits.append(snare)
        if pos % hat_step == 0:
            hits.append(hat * (1.0 if pos % 4 == 0 else 0.6))
        for h in hits:
            m = min(len(h), n - i)
            if m > 0:
                out[i:i + m] += h[:m]
    return out


def _bass(rng, n, sr, beat, root, scale, chords):
    f = np.zeros(n)
    env = np.zeros(n)
    patterns = [(0, 2), (0, 1, 2, 3), (0, 1.5, 2, 3)]
    pattern = patterns[int(rng.integers(len(patterns)))]
    bars = len(chords)
    for b in range(bars):
        for k, p in enumerate(pattern):
            t = (b * 4 + p) * beat
            nxt = pattern[k + 1] if k + 1 < len(pattern) else 4
            dur = (nxt - p) * beat * 0.9
            i0, i1 = int(t * sr), min(n, int((t + dur) * sr))
            if i0 >= n or i1 <= i0:
                continue
            d = chords[b] + (4 if (k % 2 and rng.random() < 0.5) else 0)  # root, sometimes the fifth
            f[i0:i1] = _hz(_degree(root - 12 if root >= 46 else root, scale, d))
            env[i0:i1] = _adsr(i1 - i0, sr, 0.01, 0.05)
    return _harmonic_tone(np.where(f > 0, f, 50.0), [1.0, 0.5, 0.25, 0.12], sr) * env


def _other(rng, n, sr, beat, root, scale, chords):
    out = np.zeros(n)
    arpeggio = rng.random() < 0.5
    amps = [1.0, 0.0, 0.33, 0.0, 0.2, 0.0, 0.14]  # odd harmonics: an organ / clarinet-like colour
    for b, chord in enumerate(chords):
        notes = [_degree(root + 12, scale, chord + k) for k in (0, 2, 4)]
        if arpeggio:
            events = [((b * 4 + k * 0.5) * beat, 0.5 * beat, [notes[(k if k < 3 else 4 - k) % 3]]) for k in range(8)]
        else:
            events = [(b * 4 * beat, 4 * beat, notes)]
        for t, dur, chord_notes in events:
            i0, i1 = int(t * sr), min(n, int((t + dur) * sr))
            if i0 >= n or i1 <= i0:
                continue
            env = _adsr(i1 - i0, sr, 0.02 if arpeggio else 0.15, 0.05)
            for note in chord_notes:
                out[i0:i1] += _harmonic_tone(np.full(i1 - i0, _hz(note)), amps, sr) * env
    return out


def synth_track(seed: int, index: int, seconds: float, sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """The four stems of one synthetic track as int16 [time, 2] arrays (their sum fits in 16 bits)."""
    rng = np.random.default_rng([seed, index])
    n = int(round(seconds * sample_rate))
    bpm, beat, root, scale, chords = _song_plan(rng, seconds)
    mono = {
        "vocals": _vocals(rng, n, sample_rate, beat, root, scale, chords),
        "drums": _drums(rng, n, sample_rate, beat),
        "bass": _bass(rng, n, sample_rate, beat, root, scale, chords),
        "other": _other(rng, n, sample_rate, beat, root, scale, chords),
    }
    stereo = {}
    for name in STEMS:
        x = mono[name]
        x = x / (np.sqrt(np.mean(x ** 2)) + 1e-12) * float(rng.uniform(0.5, 1.0))  # random level per source
        pan = float(rng.uniform(-0.6, 0.6))  # constant-power panning
        angle = (pan + 1) * np.pi / 4
        stereo[name] = np.stack([x * np.cos(angle), x * np.sin(angle)], axis=1)
    peak = np.max(np.abs(sum(stereo.values())))
    scale_to = _PEAK / max(peak, 1e-12)
    return {name: np.round(stereo[name] * scale_to * 32767).astype(np.int16) for name in STEMS}


def make_synthetic_dataset(out, tracks: int = 8, test_tracks: int = 2, seconds: float = 20, seed: int = 0,
                           progress: bool = False) -> Path:
    """Write ``out/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav`` (44.1 kHz stereo 16-bit).

    ``musdb.DB(root=out, is_wav=True)`` reads it. Deterministic per ``seed``; train and test tracks differ.
    Files are written atomically, so an interrupted run leaves no half-written WAV. Returns ``Path(out)``.
    """
    out = Path(out)
    if tracks < 0 or test_tracks < 0 or tracks + test_tracks < 1:
        raise UsageError(f"need at least one track (got --tracks {tracks}, --test-tracks {test_tracks})")
    if not seconds > 0:
        raise UsageError(f"--seconds must be positive, not {seconds}")
    jobs = [("train", i, f"synth {i:03d}") for i in range(tracks)]
    jobs += [("test", tracks + i, f"synth test {i:03d}") for i in range(test_tracks)]
    with Progress(len(jobs), "synth", "track", enabled=progress) as bar:
        for subset, index, name in jobs:
            stems = synth_track(seed, index, seconds)
            folder = out / subset / name
            mixture = np.sum([stems[s].astype(np.int32) for s in STEMS], axis=0).astype(np.int16)
            for stem, audio in stems.items():
                write_wav(folder / f"{stem}.wav", audio, SAMPLE_RATE)
            write_wav(folder / "mixture.wav", mixture, SAMPLE_RATE)
            bar.update(1)
    return out
