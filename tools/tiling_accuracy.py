"""How far stylizing in tiles is from one pass over the whole image: the largest real photos of the data
set, and the largest one upscaled 2x (15 MP, above the size where fastst tiles; its instance-norm
statistics come from a copy shrunk to STATS_SIZE, as for any image that large). PSNR of the tiled output
(fastst's default tile, overlap and statistics size) against the untiled one, in fp32, and the same with
the statistics taken at each image's own size (what the tiles alone cost). Writes
results/tiling_accuracy.json.

    python tools/tiling_accuracy.py [MODEL] [--count N]
"""

import argparse

import torch
from PIL import Image

from fastst.data import TRAIN_DIR, data_dir
from fastst.io import list_images, load_image
from fastst.measure import psnr
from fastst.report import measured_on
from fastst.results import write_result
from fastst.stylize import load_model, stylize
from fastst.tiles import OVERLAP, STATS_SIZE, TILE, stylize_tiled


def table(result: dict) -> dict:
    """The table of docs/performance.md made of this study's result."""
    return {
        "columns": [
            "photo",
            "size",
            "tiled against one pass (PSNR)",
            "largest difference",
            "with exact statistics (PSNR)",
        ],
        "rows": [
            [
                row["photo"],
                f"{row['width']} x {row['height']}",
                f"{row['psnr_db']:.1f} dB",
                f"{row['max_abs_difference']:.3f}",
                f"{row['psnr_db_exact_statistics']:.1f} dB",
            ]
            for row in result["rows"]
        ],
        "note": f"Tiles of {result['tile']} px overlapping by {result['overlap']} px, statistics from the "
        f"image shrunk to {result['stats_size']} px, {result['precision']}, model `{result['model']}`; "
        f"{measured_on(result)} (`results/{result['name']}.json`).",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="starry_night")
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args()

    sizes = {}
    for path in list_images(data_dir() / TRAIN_DIR):
        with Image.open(path) as im:
            sizes[path] = im.size
    largest = sorted(sizes, key=lambda p: sizes[p][0] * sizes[p][1], reverse=True)[: args.count]
    model = load_model(args.model)
    cases = [(path.name, load_image(path)) for path in largest]
    upscaled = torch.nn.functional.interpolate(cases[0][1][None], scale_factor=2, mode="bicubic").clamp(0, 1)[
        0
    ]
    cases.append((f"{cases[0][0]} upscaled 2x", upscaled))
    rows = []
    for name, image in cases:
        whole = stylize(model, image, precision="fp32")
        tiled = stylize_tiled(model, image, precision="fp32", progress=True)
        exact_statistics = stylize_tiled(model, image, precision="fp32", stats_size=max(image.shape[-2:]))
        rows.append(
            {
                "photo": name,
                "width": image.shape[-1],
                "height": image.shape[-2],
                "psnr_db": psnr(tiled, whole),
                "max_abs_difference": float((tiled - whole).abs().max()),
                "psnr_db_exact_statistics": psnr(exact_statistics, whole),
            }
        )
        print(rows[-1], flush=True)
    write_result(
        "tiling_accuracy",
        {
            "model": args.model,
            "tile": TILE,
            "overlap": OVERLAP,
            "stats_size": STATS_SIZE,
            "precision": "fp32",
            "rows": rows,
            "min_psnr_db": min(r["psnr_db"] for r in rows),
        },
    )


if __name__ == "__main__":
    main()
