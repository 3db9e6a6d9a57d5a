"""Moving digits: the bundled 8 x 8 digits, binarized, moving at constant velocity in a 16 x 16 frame and bouncing
off its walls -- a sequence dataset made from the bundled digits with a fixed seed (in the manner of the Moving
MNIST of Srivastava, Mansimov and Salakhutdinov, 2015, at the bundled digits' size).

Each digit image of a part (train, validation, test: the digits' own parts, so test sequences show test digits)
gives one sequence of :data:`FRAMES` frames: a start position (the digit's top-left corner, row and column in
``0..8``) and a velocity of one pixel per frame along each axis (each sign drawn at random); a coordinate that would
leave ``0..8`` reverses its velocity there. The positions are returned as well (:func:`trajectories`), so that a
model's predicted frames can be scored against the true motion.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["FRAMES", "FRAME_SIZE", "moving_sequences", "trajectories"]

#: Frames per sequence.
FRAMES = 16
#: Side of a frame in pixels.
FRAME_SIZE = 16
_DIGIT = 8
_TOP = FRAME_SIZE - _DIGIT  # the largest top-left coordinate


def trajectories(n: int, seed: int) -> torch.Tensor:
    """The top-left corner of ``n`` sequences' digits in every frame, ``(n, FRAMES, 2)`` (row, column) integers,
    from the random state ``seed``."""
    rng = np.random.RandomState(seed)
    pos = rng.randint(0, _TOP + 1, size=(n, 2))
    vel = rng.choice([-1, 1], size=(n, 2))
    out = np.empty((n, FRAMES, 2), dtype=np.int64)
    for t in range(FRAMES):
        out[:, t] = pos
        nxt = pos + vel
        bounce = (nxt < 0) | (nxt > _TOP)
        vel = np.where(bounce, -vel, vel)
        pos = pos + vel
    return torch.as_tensor(out)


def moving_sequences(digits: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary 8 x 8 ``digits`` ``(n, 1, 8, 8)`` moved about: frames ``(n, FRAMES, 1, 16, 16)`` and the positions of
    :func:`trajectories`."""
    n = len(digits)
    where = trajectories(n, seed)
    frames = torch.zeros(n, FRAMES, 1, FRAME_SIZE, FRAME_SIZE, dtype=digits.dtype)
    rows = torch.arange(_DIGIT)
    for t in range(FRAMES):
        r = where[:, t, 0, None] + rows  # (n, 8)
        c = where[:, t, 1, None] + rows
        idx = torch.arange(n)[:, None, None]
        frames[idx, t, 0, r[:, :, None], c[:, None, :]] = digits[:, 0]
    return frames, where
