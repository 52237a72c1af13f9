"""Held-out photos stylized by two networks trained alike, for the same number of iterations, on one
painting: today's raw weights (lambda_s 2) against the calibrated default (style strength 1). Both are
fine-tuned from the shipped Starry Night network (the finetune preset), so each takes minutes; runs
are resumable. Writes figures/strength_<style> and results/strength_<style>.json (the two weights and
the training time of each run).

    python tools/strength_pictures.py [STYLE_IMAGE]

The default is Woman with a Parasol, the mirror's painting whose calibrated weight is furthest from
today's (results/calibration_spread.json).
"""

import json
import sys
from pathlib import Path

from fastst import data
from fastst.io import load_image
from fastst.plotting import save_fig, show_images
from fastst.results import write_result
from fastst.stylize import load_model, stylize
from fastst.train import TrainConfig, runs_dir, train


def main() -> None:
    style_image = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else data.data_dir() / data.STYLES["woman_with_a_parasol"]
    )
    name = style_image.stem
    weightings = {
        "today's weights": {"style_weight": 2.0, "style_strength": None},
        "calibrated (strength 1)": {"style_strength": 1.0},
    }
    photos = data.test_photos(limit=3, max_size=256)
    style = load_image(style_image, 256)
    images, titles = [style, *photos.values()], ["style", *photos]
    runs = {}
    for label, weights in weightings.items():
        out = (
            runs_dir()
            / "strength"
            / f"{name}-{'raw' if weights.get('style_strength') is None else 'calibrated'}"
        )
        config = TrainConfig.from_preset(
            "finetune",
            style=str(style_image),
            data=str(data.data_dir() / data.TRAIN_DIR),
            out=str(out),
            init="starry_night",
            **weights,
        )
        result = train(config, resume=True)
        model = load_model(out / "model.pth")
        saved = json.loads((out / "config.json").read_text())
        runs[label] = {
            "run": str(out),
            "style_weight": saved["style_weight"],
            "iterations": result.iterations,
            "seconds_per_iteration": result.seconds_per_iteration,
        }
        images += [None, *(stylize(model, p) for p in photos.values())]
        titles += [f"{label}, lambda_s {saved['style_weight']:.3g}", *["" for _ in photos]]
    images = [im if im is not None else style * 0 + 1 for im in images]
    fig = show_images(images, titles, ncols=1 + len(photos), size=2.8)
    save_fig(fig, f"strength_{name}", {"runs": runs})
    write_result(f"strength_{name}", {"style": name, "runs": runs})
    print(f"wrote figures/strength_{name} and results/strength_{name}.json")


if __name__ == "__main__":
    main()
