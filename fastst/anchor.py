"""Keeping the network's sampling grid fixed to the scene as a camera moves, in NumPy alone, so that the
quick path (:mod:`fastst.quick_video`) stabilises a clip as the full path does (:mod:`fastst.temporal`).

The network samples its input on a grid of :data:`GRID` pixels (two stride-2 convolutions): its output for a
picture moved by other than a multiple of it differs in texture, not just in place. :class:`GridAnchor`
finds the camera's travel from frame to frame by phase correlation and pads each frame by that travel,
modulo the grid, before the network (:func:`padded`); :func:`cropped` takes the frame back out after.
"""

from __future__ import annotations

import numpy as np

GRID = 4
# Padded frames are made a multiple of this many pixels: OpenVINO's pass of a folded network at a size whose
# quarter-resolution maps have an odd side (a 720p frame padded by GRID - 1) took far longer than at the next
# multiple of 8.
PADDED_MULTIPLE = 8


def _spectrum(frame) -> np.ndarray:
    """The Fourier transform of a (3, H, W) frame's grey levels (the sum of its channels: phase correlation
    reads the phase of each frequency, not its amplitude), for phase correlation."""
    return np.fft.rfft2(np.asarray(frame, dtype=np.float32).sum(0))


def _shift(before: np.ndarray, now: np.ndarray, shape: tuple[int, int]) -> tuple[int, int]:
    """:func:`global_shift` from the two frames' :func:`_spectrum` and their (H, W)."""
    cross = now * before.conj()
    peak = int(np.fft.irfft2(cross / np.maximum(np.abs(cross), 1e-12), s=shape).argmax())
    h, w = shape
    y, x = divmod(peak, w)
    return -(x - w if x > w // 2 else x), -(y - h if y > h // 2 else y)


def global_shift(before, now) -> tuple[int, int]:
    """The whole-pixel translation (dx, dy) of the camera between two frames ((3, H, W) arrays or CPU
    tensors), by phase correlation: ``now`` at p shows what ``before`` showed at p + (dx, dy)."""
    return _shift(_spectrum(before), _spectrum(now), tuple(np.shape(now)[-2:]))


class GridAnchor:
    """Each frame's offset on the grid: the camera's travel so far, modulo :data:`GRID`. Under a pure
    translation, a network fed frames padded by these offsets sees the same pixels on the same grid in
    every frame."""

    def __init__(self):
        self.previous: np.ndarray | None = None  # the last frame's spectrum
        self.x = self.y = 0

    def offsets(self, frames) -> list[tuple[int, int]]:
        """The (x, y) offsets of a batch of frames ((N, 3, H, W)), in clip order, batch after batch."""
        out = []
        for frame in frames:
            spectrum = _spectrum(frame)
            if self.previous is not None:
                dx, dy = _shift(self.previous, spectrum, tuple(np.shape(frame)[-2:]))
                self.x, self.y = self.x + dx, self.y + dy
            self.previous = spectrum
            out.append((self.x % GRID, self.y % GRID))
        return out


def padded_size(h: int, w: int) -> tuple[int, int]:
    """The size of an (h, w) frame once :func:`padded`."""
    return tuple(n + GRID - 1 + (-(n + GRID - 1)) % PADDED_MULTIPLE for n in (h, w))


def padded(frames: np.ndarray, offsets: list[tuple[int, int]]) -> np.ndarray:
    """Each frame of (N, 3, H, W) reflected by its offset (a, b) on the left and top and by :data:`GRID` - 1
    - a (- b) on the right and bottom, the same size for every frame, then replicated on the right and
    bottom to :func:`padded_size`."""
    h, w = frames.shape[-2:]
    ph, pw = (p - n - GRID + 1 for p, n in zip(padded_size(h, w), (h, w)))
    out = np.stack(
        [
            np.pad(f, ((0, 0), (b, GRID - 1 - b), (a, GRID - 1 - a)), mode="reflect")
            for f, (a, b) in zip(frames, offsets)
        ]
    )
    return np.pad(out, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge") if ph or pw else out


def cropped(out, offsets: list[tuple[int, int]], h: int, w: int) -> list:
    """Each frame of a padded batch's output taken back to (h, w) at its offset."""
    return [o[:, b : b + h, a : a + w] for o, (a, b) in zip(out, offsets)]
