"""The style weights across paintings: for every style of the data mirror and the extra painting, the
per-image L-BFGS optimum of two held-out photos under today's raw weights and two calibrations; the spread
across styles of the style-to-content ratio at that optimum (results/calibration_spread.json) and the
optima side by side (figures/strength_grid)."""

import glob
import sys
from pathlib import Path

from fastst.data import EXTRA_DIR, data_dir
from fastst.io import list_images, load_image
from fastst.plotting import save_fig, show_images
from fastst.report import measured_on
from fastst.results import write_result
from fastst.strength import optimum_balance, spread

ITERATIONS, PHOTO_SIZE, STYLE_SIZE = 60, 128, 256


LABELS = {
    "raw": "today's raw weights",
    "energy": "calibrated (Gram energy), the default",
    "distance": "calibrated (distance of photos to the style)",
}


def table(result: dict) -> dict:
    """The table of docs/many_styles.md made of this study's result."""
    return {
        "columns": [
            "weighting",
            "style / content term at the optimum, max over min across styles",
            "std of log10",
        ],
        "rows": [
            [LABELS.get(weighting, weighting), f"{row['max_over_min']:.1f}", f"{row['std_log10']:.2f}"]
            for weighting, row in result["spread"].items()
        ],
        "note": f"{len({r['style'] for r in result['rows']})} styles, "
        f"{len({r['photo'] for r in result['rows']})} photos at {result['photo_size']} px, "
        f"{result['iterations']} L-BFGS iterations; {measured_on(result)} (`results/{result['name']}.json`).",
    }


def main() -> None:
    root = data_dir()
    paths = sorted(glob.glob(str(root / "styles" / "*.jpg"))) + sorted(
        glob.glob(str(root / EXTRA_DIR / "*.jpg"))
    )
    if not any("great_wave" in p for p in paths):
        sys.exit("run 'python -m fastst data fetch --extra' first")
    styles = {Path(p).stem: load_image(p, STYLE_SIZE) for p in paths}
    photo_paths = [
        root / "test" / "demo" / "chicago.jpg",
        list_images(root / "test" / "bsds500_test_subset")[0],
    ]
    photos = {p.stem: load_image(p, PHOTO_SIZE) for p in photo_paths}
    images = {}
    rows = optimum_balance(styles, photos, iterations=ITERATIONS, images=images)
    result = spread(rows)
    write_result(
        "calibration_spread",
        {
            "rows": rows,
            "spread": result,
            "photo_size": PHOTO_SIZE,
            "style_size": STYLE_SIZE,
            "iterations": ITERATIONS,
        },
    )
    stem = photo_paths[0].stem
    shown = [w for w in ("raw", "energy") if any(k[0] == w for k in images)]
    grid = [img for name in styles for img in (styles[name], *(images[(w, name, stem)] for w in shown))]
    titles = [
        t
        for name in styles
        for t in (
            name.replace("_", " "),
            *(f"{w}" + (" (today)" if w == "raw" else " (calibrated)") for w in shown),
        )
    ]
    fig = show_images(grid, titles, ncols=3 * 2, size=2.4)
    save_fig(fig, "strength_grid", {"photo": stem, "iterations": ITERATIONS, "photo_size": PHOTO_SIZE})
    for weighting, s in result.items():
        print(f"{weighting:>9}: max/min {s['max_over_min']:.2f}, std log10 {s['std_log10']:.3f}")


if __name__ == "__main__":
    main()
