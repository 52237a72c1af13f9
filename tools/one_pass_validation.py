"""One-pass models compared on paintings and photos of their training set, at the quality measure's fixed
weights, without L-BFGS: a check between training runs that leaves the held-out paintings for the final
measure (tools/any_style.py).

For each model, eq. 5's total and its content and style terms, averaged over a seeded draw of training
paintings and training photos at 256 px, at several strengths: the predictor's style embedding taken from
the average training painting's (strength 0) towards the painting's own (1) and beyond. ``--names`` takes
the paintings by file name instead (held-out ones that the final measure does not score: a validation
set). Each setting's total is also given relative to the first one's, painting by painting, so that no
painting outweighs the rest. Writes results/one_pass_validation.json (``--name``).

    python tools/one_pass_validation.py MODEL [MODEL ...] [--paintings 8] [--photos 3] [--name NAME]
    python tools/one_pass_validation.py MODEL --names A.jpg B.jpg ... --strengths 1 1.25 1.5   # 1 first
    python tools/one_pass_validation.py MODEL --names A.jpg B.jpg ... --palettes 0 0.125 0.25 0.375

``--palettes`` scores the painting networks as `fastst stylize` builds them (strength 1) at each palette
fraction instead (`fastst.anystyle.painting_network`).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
from tqdm import tqdm

from fastst.anystyle import AnyStyleNet, cached_statistics, load_anystyle, painting_network, set_palette
from fastst.data import data_dir, painting_split
from fastst.io import list_images, load_image
from fastst.losses import DEFAULT_WEIGHTS, PerceptualLoss
from fastst.results import write_result
from fastst.vgg import loss_network

STRENGTHS = (0.0, 1.0, 1.5, 2.0)
WEIGHTS = {k: DEFAULT_WEIGHTS[k] for k in ("content_weight", "style_weight", "tv_weight")}


@torch.no_grad()
def _score(paintings: list[Path], photos: list[torch.Tensor], vgg, settings, network, label: str) -> dict:
    """Eq. 5's terms averaged over paintings and photos for each of ``settings``, the painting's network
    given by ``network(painting, stats, setting)``; each total also relative to the first setting's,
    painting by painting, and on how many paintings it is lower."""
    sums = {s: torch.zeros(3) for s in settings}
    relative = {s: [] for s in settings}
    for painting in tqdm(paintings, desc="paintings", unit="painting"):
        criterion = PerceptualLoss(vgg, load_image(painting, 256), **WEIGHTS)
        stats = cached_statistics(painting)  # shared with painting_network's
        terms = {}
        for setting in settings:
            net = network(painting, stats, setting)
            terms[setting] = sum(
                torch.tensor([t.total.item(), t.content.item(), t.style.item()])
                for t in (criterion(net(photo[None]), photo[None]) for photo in photos)
            )
            sums[setting] += terms[setting]
        for setting in settings:
            relative[setting].append(terms[setting][0].item() / terms[settings[0]][0].item())
    count = len(paintings) * len(photos)
    return {
        str(s): dict(zip(("total", "content", "style"), (round(v / count, 3) for v in total.tolist())))
        | {
            f"total_relative_to_{label}_{settings[0]}": round(sum(relative[s]) / len(paintings), 4),
            "paintings_lower": sum(r < 1 for r in relative[s]),
        }
        for s, total in sums.items()
    }


def score(model: AnyStyleNet, paintings, photos, vgg, strengths=STRENGTHS) -> dict:
    """At each strength (the first the reference of the relative totals)."""
    return _score(
        paintings, photos, vgg, strengths, lambda _, stats, s: model.for_painting(stats, s), "strength"
    )


def score_palettes(model: AnyStyleNet, paintings, photos, vgg, fractions) -> dict:
    """At each palette fraction, the networks as `fastst stylize` builds them (the first fraction the
    reference of the relative totals)."""
    return _score(
        paintings,
        photos,
        vgg,
        fractions,
        lambda painting, _, f: painting_network(painting, set_palette(model, f)),
        "palette",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+", help="one-pass model files")
    parser.add_argument("--paintings", type=int, default=8)
    parser.add_argument("--photos", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--names",
        nargs="+",
        help="paintings by file name instead of a draw (held-out ones: a validation set)",
    )
    parser.add_argument("--strengths", type=float, nargs="+", default=list(STRENGTHS))
    parser.add_argument(
        "--palettes", type=float, nargs="+", help="palette fractions to score instead of --strengths"
    )
    parser.add_argument("--name", default="one_pass_validation", help="the result's name")
    args = parser.parse_args()
    draw = random.Random(args.seed)
    train, held_out = painting_split()
    if args.names:
        by_name = {p.name: p for p in train + held_out}
        missing = [n for n in args.names if n not in by_name]
        if missing:
            raise SystemExit(f"error: not a painting of the manifest: {missing[0]}")
        paintings = [by_name[n] for n in args.names]
    else:
        paintings = draw.sample(train, args.paintings)
    photo_paths = draw.sample(list_images(data_dir() / "train" / "bsds500_trainval"), args.photos)
    photos = [load_image(p, 256) for p in photo_paths]
    vgg = loss_network()
    models = {}
    for path in args.models:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        models[path] = {
            "iteration": saved.get("iteration"),
            **(
                {"by_palette": score_palettes(load_anystyle(path), paintings, photos, vgg, args.palettes)}
                if args.palettes
                else {"by_strength": score(load_anystyle(path), paintings, photos, vgg, args.strengths)}
            ),
        }
        print(path, models[path])
    record = {
        "weights": WEIGHTS,
        "paintings": [p.name for p in paintings],
        "photos": [p.name for p in photo_paths],
        "models": models,
    }
    print(write_result(args.name, record))


if __name__ == "__main__":
    main()
