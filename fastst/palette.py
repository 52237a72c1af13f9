"""A painting's palette on a picture: the affine colour map that moves a picture's colour mean and
covariance towards a painting's, in NumPy, so that the full path (:func:`fastst.anystyle.painting_network`)
and the quick path without PyTorch (:mod:`fastst.quick`) compute the same map."""

from __future__ import annotations

import numpy as np

from fastst.errors import FaststError

MAX_GAIN = 4.0  # the most the full map stretches (or shrinks) any colour direction


def checked_fraction(fraction: float, name: str = "the palette fraction") -> float:
    """``fraction`` if it lies between 0 and 1 (NaN does not), else a one-line error naming it ``name``."""
    if not 0.0 <= fraction <= 1.0:
        raise FaststError(f"{name} is between 0 and 1, not {fraction:g}")
    return fraction


def colour_moments(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean (3,) and covariance (3, 3) of a (3, H, W) image's colours (summed in single precision, so
    that a large painting needs no copy in double precision; returned in double)."""
    x = np.asarray(image, np.float32).reshape(3, -1)
    return x.mean(1, dtype=np.float64), np.cov(x, dtype=np.float32).astype(np.float64)


def _root(c: np.ndarray, power: float) -> np.ndarray:
    values, vectors = np.linalg.eigh(c + 1e-5 * np.eye(3))
    return vectors @ np.diag(np.maximum(values, 1e-8) ** power) @ vectors.T


def palette_map(
    moments: tuple[np.ndarray, np.ndarray], target: tuple[np.ndarray, np.ndarray], fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """The affine colour map ``y -> matrix @ y + shift`` (float32) that takes ``fraction`` of the way from
    a picture's colours (their :func:`colour_moments`, ``moments``) to ``target``'s: at 1, the picture's
    colour mean and covariance become the target's (through the symmetric square roots of the two
    covariances), at 0 nothing changes. The full map stretches or shrinks no colour direction by more
    than MAX_GAIN."""
    (mean, cov), (target_mean, target_cov) = moments, target
    full = _root(np.asarray(target_cov, np.float64), 0.5) @ _root(np.asarray(cov, np.float64), -0.5)
    # a picture of nearly one colour would be stretched without bound: no direction by more than MAX_GAIN
    u, gains, v = np.linalg.svd(full)
    full = u @ np.diag(np.clip(gains, 1 / MAX_GAIN, MAX_GAIN)) @ v
    matrix = fraction * full + (1 - fraction) * np.eye(3)
    shift = fraction * (np.asarray(target_mean, np.float64) - full @ mean)
    return matrix.astype(np.float32), shift.astype(np.float32)
