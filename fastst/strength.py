"""A style strength that means the same for every style image.

The style term of eq. 5 grows with the style image's own Gram matrices: a dark or smooth painting
has small ones, so one lambda_s stylizes it weakly, and a bright busy one strongly. The calibrated
weight divides lambda_s by the style image's Gram energy, sum_j ||G_j(y_s)||_F^2 over the style
layers, and scales it so that The Starry Night at 256 px keeps the default lambda_s: strength 1 is
today's default objective for that painting and the same relative pull towards every other.
"""

from __future__ import annotations

import math
import statistics

import torch
from tqdm.auto import tqdm

from fastst.gatys import gatys
from fastst.losses import DEFAULT_WEIGHTS, STYLE_LAYERS, gram_matrix, style_loss
from fastst.vgg import loss_network

# sum_j ||G_j||_F^2 of The Starry Night (starry_night.jpg, longer side 256 px) over STYLE_LAYERS with the
# ImageNet VGG-16: the anchor of strength 1 (tests recompute it from the image).
REFERENCE_ENERGY = 35.591


def style_energy(style: torch.Tensor, layers=STYLE_LAYERS) -> float:
    """sum_j ||G_j(y_s)||_F^2 over ``layers`` of a (3, H, W) style image in [0, 1]."""
    with torch.no_grad():
        feats = loss_network()(style.float()[None].cpu(), tuple(layers))
        return sum(gram_matrix(feats[name]).pow(2).sum().item() for name in layers)


def calibrated_style_weight(style: torch.Tensor, strength: float = 1.0, layers=STYLE_LAYERS) -> float:
    """lambda_s for ``style`` (a (3, H, W) image at the size it is trained with) at ``strength``,
    to 4 significant digits: the same on every machine and thread count, whose float sums differ
    in the last bits."""
    weight = strength * DEFAULT_WEIGHTS["style_weight"] * REFERENCE_ENERGY / style_energy(style, layers)
    return float(f"{weight:.4g}")


def _distance_weight(style: torch.Tensor, photos: list[torch.Tensor], strength: float = 1.0) -> float:
    """The alternative calibration: lambda_s scaled so that the style term of the unchanged photos
    (their Gram distance to the style) is the same for every style, anchored like the energy's."""
    with torch.no_grad():
        vgg = loss_network()
        target = [gram_matrix(f) for f in vgg(style[None], STYLE_LAYERS).values()]
        distance = statistics.mean(
            style_loss([gram_matrix(f) for f in vgg(p[None], STYLE_LAYERS).values()], target).item()
            for p in photos
        )
    return distance


WEIGHTINGS = ("raw", "energy", "distance")


def optimum_balance(
    styles: dict, photos: dict, iterations: int = 80, progress: bool = True, images: dict | None = None
) -> list[dict]:
    """Per style, photo and weighting: the weighted style and content terms of eq. 5 at the per-image
    L-BFGS optimum (from the content image). A weighting that means the same for every style keeps
    their ratio alike across styles. ``images``, if given, receives each optimum by (weighting,
    style, photo)."""
    rows = []
    reference_photos = list(photos.values())
    anchor = None
    jobs = [(w, name, stem) for w in WEIGHTINGS for name in styles for stem in photos]
    for weighting, name, stem in tqdm(jobs, desc="optimum balance", disable=not progress):
        style = styles[name]
        if weighting == "raw":
            weight = DEFAULT_WEIGHTS["style_weight"]
        elif weighting == "energy":
            weight = calibrated_style_weight(style)
        else:
            if anchor is None:  # the same anchor as the energy's: The Starry Night keeps the default
                anchor = _distance_weight(styles["starry_night"], reference_photos)
            weight = DEFAULT_WEIGHTS["style_weight"] * anchor / _distance_weight(style, reference_photos)
        result = gatys(
            photos[stem],
            style,
            iterations,
            "lbfgs",
            progress=False,
            **{**DEFAULT_WEIGHTS, "style_weight": weight},
        )
        rows.append(
            {
                "weighting": weighting,
                "style": name,
                "photo": stem,
                "style_weight": weight,
                **{f"{k}_term": v for k, v in result.terms.items()},
                "style_to_content": result.terms["style"] / result.terms["content"],
            }
        )
        if images is not None:
            images[(weighting, name, stem)] = result.image
    return rows


def spread(rows: list[dict]) -> dict:
    """Per weighting: the median style-to-content ratio per style, and their spread across styles
    (max / min, and the standard deviation of log10)."""
    out = {}
    for weighting in dict.fromkeys(r["weighting"] for r in rows):
        per_style = {}
        for r in rows:
            if r["weighting"] == weighting:
                per_style.setdefault(r["style"], []).append(r["style_to_content"])
        medians = {k: statistics.median(v) for k, v in per_style.items()}
        logs = [math.log10(v) for v in medians.values()]
        out[weighting] = {
            "per_style": medians,
            "max_over_min": max(medians.values()) / min(medians.values()),
            "std_log10": statistics.pstdev(logs),
        }
    return out


def preview(
    style: torch.Tensor, photos: dict, strengths=(0.5, 1.0, 2.0), iterations: int = 40, progress: bool = True
) -> dict:
    """Per-image optimisation of each photo at each strength: what a strength gives, in about a
    minute, before minutes of training. Returns {(strength, photo): image}."""
    out = {}
    jobs = [(s, stem) for s in strengths for stem in photos]
    for strength, stem in tqdm(jobs, desc="preview", disable=not progress):
        weight = calibrated_style_weight(style, strength)
        out[(strength, stem)] = gatys(
            photos[stem],
            style,
            iterations,
            "lbfgs",
            progress=False,
            **{**DEFAULT_WEIGHTS, "style_weight": weight},
        ).image
    return out
