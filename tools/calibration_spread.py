"""Measures the spread across styles of the style-to-content ratio at the per-image optimum, for the raw
weights and two calibrations (results/calibration_spread.json)."""
import json, sys, glob
from pathlib import Path
from fastst.io import load_image, list_images
from fastst.strength import optimum_balance, spread
from fastst.results import write_result
styles = {Path(p).stem: load_image(p, 256) for p in sorted(glob.glob("data/styles/*.jpg"))}
photos = {p.stem: load_image(p, 128) for p in [Path("data/test/demo/chicago.jpg"), *list_images("data/test/bsds500_test_subset")[:1]]}
rows = optimum_balance(styles, photos, iterations=80)
write_result("calibration_spread", {"rows": rows, "spread": spread(rows), "photo_size": 128, "style_size": 256, "iterations": 80})
print(json.dumps(spread(rows), indent=1))
