"""Held-out photos stylized by two networks trained for the same time on The Great Wave (a painting the
data mirror does not hold): today's raw weights against the calibrated default
(figures/strength_great_wave)."""

import json

from fastst import data
from fastst.io import load_image
from fastst.plotting import save_fig, show_images
from fastst.stylize import load_model, stylize
from fastst.train import runs_dir

runs = {
    "today's weights (lambda_s 2)": runs_dir() / "ttq" / "great_wave-finetune_raw",
    "calibrated (strength 1)": runs_dir() / "ttq" / "great_wave-finetune",
}
photos = data.test_photos(limit=3, max_size=256)
style = load_image(data.data_dir() / data.EXTRA_DIR / "great_wave.jpg", 256)
images, titles = [style, *photos.values()], ["style", *photos]
meta = {}
for label, run in runs.items():
    model = load_model(run / "model.pth")
    config = json.loads((run / "config.json").read_text())
    images += [None, *(stylize(model, p) for p in photos.values())]
    titles += ["", *[f"{label}" for _ in photos]]
    meta[label] = {
        "run": str(run),
        "style_weight": config["style_weight"],
        "iterations": config["config"]["iterations"],
    }
images = [im if im is not None else style * 0 + 1 for im in images]
fig = show_images(images, titles, ncols=1 + len(photos), size=2.8)
save_fig(fig, "strength_great_wave", {"runs": meta})
print("wrote figures/strength_great_wave")
