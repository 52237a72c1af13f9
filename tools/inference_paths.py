"""What stylizing one image costs by each path a user could take, timed in the same interleaved rounds:
the plain network (eager fp32, PyTorch's defaults), fastst's path, its torch.compile'd form, and the
exported ONNX model under onnxruntime and OpenVINO (those installed: the export and openvino extras),
with the lowest PSNR of each against the plain fp32 output on the held-out photos. Writes
results/inference_paths.json.

    python tools/inference_paths.py [MODEL] [--repeats N]
"""

import argparse

from fastst.bench import bench_inference
from fastst.data import test_photos
from fastst.report import measured_on
from fastst.results import write_result
from fastst.stylize import load_model

PATHS = {
    "fast": "`fastst stylize`",
    "compiled": "`--compile`",
    "onnxruntime": "onnxruntime",
    "openvino": "OpenVINO",
}


def table(result: dict) -> dict:
    """The table of docs/performance.md made of this study's result."""
    paths = [p for p in PATHS if f"{p}_s" in result["rows"][0]]
    precision_key = {"fast": "precision", "compiled": "compiled_precision"}
    psnr_key = {"fast": "psnr_db", "compiled": "compiled_psnr_db"}
    rows = [
        [f"{row['size']} x {row['size']}", f"{row['plain_s'] * 1e3:,.0f} ms"]
        + [
            f"{row[f'{p}_s'] * 1e3:,.0f} ms, {row[f'{p}_speedup']:.2f}x, "
            f"{row[precision_key.get(p, f'{p}_precision')]}, "
            f"{row[psnr_key.get(p, f'{p}_psnr_db')]:.0f} dB"
            for p in paths
        ]
        for row in result["rows"]
    ]
    return {
        "columns": ["size", "plain (eager fp32)", *(PATHS[p] for p in paths)],
        "rows": rows,
        "note": "Each cell: the median of one image's time, the speed-up over the plain network, the "
        "precision the path runs in, and the lowest PSNR against the plain fp32 output over "
        f"{result['rows'][0]['psnr_photos']} held-out photos. Model `{result['model']}` (width "
        f"{result['width']}); all paths timed in the same interleaved rounds; {measured_on(result)} "
        f"(`results/{result['name']}.json`).",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="starry_night")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    model = load_model(args.model)
    photos = list(test_photos(limit=3).values())
    rows = bench_inference(model, (256, 512, 1024), repeats=args.repeats, compile=True, photos=photos)
    for row in rows:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    write_result("inference_paths", {"model": args.model, "width": model.config["width"], "rows": rows})


if __name__ == "__main__":
    main()
