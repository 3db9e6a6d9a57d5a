"""Spoken digits: the words "zero" to "nine" synthesized by eSpeak NG at several voices, pitches and speeds,
resampled to 8 kHz and shipped as log-mel frames (``spoken_digits.npz`` beside this module).

The file is made once, offline, by this module (``python -m pyrogen.data.speech --build``: Debian's ``espeak-ng``
and ``sox`` on the path) and never at run time; :func:`load_spoken_digits` reads it. How it is made:

- every word of :data:`WORDS` by every voice of :data:`VOICES` (seven English accents of eSpeak NG, each with the
  variants :data:`VARIANTS`), at every pitch of :data:`PITCHES` and every speed of :data:`SPEEDS` (words per
  minute): 10 x 7 x 4 x 3 x 2 = 1,680 utterances;
- ``sox`` resamples each to 8 kHz, 16-bit mono;
- frames of :data:`WINDOW` samples (32 ms, a Hann window) every :data:`HOP` samples (16 ms), the power spectrum
  through :data:`BANDS` triangular mel filters from 0 to 4 kHz (the HTK mel scale), the natural log of each
  band's power plus :data:`FLOOR`;
- the silence around the word trimmed (frames whose total power is below 1e-4 of the utterance's loudest), the
  word put at the start of :data:`FRAMES` frames' worth of samples (a longer word cut), and white noise of
  standard deviation :data:`NOISE` (about -60 dB of full scale, a fixed seed) added to all of it, so that no
  frame is exact silence (a constant would give a Gaussian model an unbounded density);
- parts drawn by voice variant, so no speaker of the test part is heard in training: the variants of one accent
  are spread over the parts with a fixed seed (train 70%, validation 15%, test 15% of the speakers).

eSpeak NG is GPL-3.0-or-later; the synthesized recordings are its output, not a part of it.
"""

from __future__ import annotations

import argparse
import io
import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

__all__ = ["BANDS", "FRAMES", "PATH", "WORDS", "build", "load_spoken_digits", "log_mel"]

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOICES = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029")
VARIANTS = ("m1", "m3", "f1", "f3")
PITCHES = (35, 50, 65)
SPEEDS = (140, 180)
RATE = 8000
WINDOW = 256
HOP = 128
BANDS = 20
FRAMES = 40
FLOOR = 1e-6
NOISE = 1e-3
PATH = Path(__file__).with_name("spoken_digits.npz")


def mel_filters(bands: int = BANDS, n_fft: int = WINDOW, rate: int = RATE) -> np.ndarray:
    """Triangular filters ``(bands, n_fft // 2 + 1)`` equally spaced on the HTK mel scale from 0 to ``rate / 2``."""

    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(0.0, mel(np.array(rate / 2.0)), bands + 2))
    freqs = np.linspace(0.0, rate / 2.0, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return np.clip(np.minimum(up, down), 0.0, None)


def _frames(signal: np.ndarray) -> np.ndarray:
    """The power spectra ``(T, WINDOW // 2 + 1)`` of ``signal``'s Hann-windowed frames."""
    if len(signal) < WINDOW:
        signal = np.pad(signal, (0, WINDOW - len(signal)))
    count = 1 + (len(signal) - WINDOW) // HOP
    idx = np.arange(WINDOW)[None] + HOP * np.arange(count)[:, None]
    return np.abs(np.fft.rfft(signal[idx] * np.hanning(WINDOW)[None], n=WINDOW, axis=1)) ** 2 / WINDOW


def trim(signal: np.ndarray) -> np.ndarray:
    """``signal`` from its first to its last frame whose power is at least 1e-4 of the loudest frame's."""
    energy = _frames(signal).sum(1)
    loud = np.flatnonzero(energy >= 1e-4 * energy.max())
    return signal[loud[0] * HOP : loud[-1] * HOP + WINDOW]


def log_mel(signal: np.ndarray) -> np.ndarray:
    """A mono 8 kHz ``signal`` (floats) to its log-mel frames ``(T, BANDS)``."""
    return np.log(_frames(signal) @ mel_filters().T + FLOOR)


def utterance(signal: np.ndarray, rng: np.random.RandomState) -> tuple[np.ndarray, int]:
    """The trimmed word at the start of :data:`FRAMES` frames of samples, plus noise: its log-mel frames
    ``(FRAMES, BANDS)`` and the word's length in frames before cutting."""
    word = trim(signal)
    length = 1 + max(0, len(word) - WINDOW) // HOP
    total = (FRAMES - 1) * HOP + WINDOW
    out = rng.normal(0.0, NOISE, total)
    n = min(total, len(word))
    out[:n] += word[:n]
    return log_mel(out), length


def _synthesize(word: str, voice: str, pitch: int, speed: int) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", word],
        check=True,
        capture_output=True,
    ).stdout
    raw = subprocess.run(
        ["sox", "-t", "wav", "-", "-r", str(RATE), "-c", "1", "-e", "signed", "-b", "16", "-t", "raw", "-"],
        input=wav,
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0


def build(path: Path = PATH, seed: int = 0) -> Path:
    """Synthesize every utterance and write the dataset to ``path`` (see the module's docstring).

    Raises:
        RuntimeError: ``espeak-ng`` or ``sox`` is not on the path.
    """
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"building the spoken digits needs {tool} (Debian: apt-get install espeak-ng sox)")
    speakers = [f"{v}+{var}" for v in VOICES for var in VARIANTS]
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(speakers))
    n_train, n_val = round(0.7 * len(speakers)), round(0.15 * len(speakers))
    part_of = {}
    for rank, i in enumerate(order):
        part_of[speakers[i]] = 0 if rank < n_train else 1 if rank < n_train + n_val else 2
    x, y, part, speaker, lengths = [], [], [], [], []
    noise = np.random.RandomState(seed + 1)
    for s_i, spk in enumerate(speakers):
        for (label, word), pitch, speed in itertools.product(enumerate(WORDS), PITCHES, SPEEDS):
            frames, length = utterance(_synthesize(word, spk, pitch, speed), noise)
            lengths.append(length)
            x.append(frames)
            y.append(label)
            part.append(part_of[spk])
            speaker.append(s_i)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        x=np.asarray(x, dtype=np.float32),
        y=np.asarray(y, dtype=np.int64),
        part=np.asarray(part, dtype=np.int64),
        speaker=np.asarray(speaker, dtype=np.int64),
        length=np.asarray(lengths, dtype=np.int64),
        speakers=np.asarray(speakers),
    )
    from pyrogen.io import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())
    return path


def load_spoken_digits(path: Path = PATH) -> dict[str, np.ndarray]:
    """The arrays of the shipped file: ``x`` ``(n, FRAMES, BANDS)`` log-mel frames, ``y`` the digit, ``part``
    (0 train, 1 validation, 2 test), ``speaker``, ``length`` (frames before cutting), ``speakers`` (names)."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", action="store_true", help="synthesize the utterances and write the file")
    args = p.parse_args(argv)
    if args.build:
        print(build())
    data = load_spoken_digits()
    print({k: v.shape for k, v in data.items()}, "lengths: median", int(np.median(data["length"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
