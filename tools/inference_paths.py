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
from fastst.results import write_result
from fastst.stylize import load_model

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
