"""Johnson et al.'s Table 1 on this machine: seconds per image of the optimisation baseline (L-BFGS on
eq. 5, 100/300/500 iterations) against one forward pass of the network, at 256, 512 and 1024 px, both in
fp32. The network is the full-width one of the paper, with random weights (its speed does not depend on
them). Cells whose estimate is within FULL seconds are run in full; the others are the per-iteration cost
multiplied out and marked. Writes results/table1.json.

    python tools/table1.py [--full SECONDS]
"""

import argparse

import torch

from fastst.config import TrainConfig
from fastst.data import STYLES, data_dir
from fastst.evaluate import speed_table
from fastst.io import load_image
from fastst.results import write_result
from fastst.transformer import TransformerNet

parser = argparse.ArgumentParser()
parser.add_argument("--full", type=float, default=120.0, help="run cells estimated within this many seconds")
args = parser.parse_args()

config = TrainConfig.from_preset("cpu", style=str(data_dir() / STYLES["starry_night"]))
weights = {k: getattr(config, k) for k in ("content_weight", "style_weight", "tv_weight", "content_layer")}
torch.manual_seed(0)
model = TransformerNet().eval()
style = load_image(config.style, config.style_size)
rows = speed_table(model, style, weights, measured=5, full_seconds=args.full)
for row in rows:
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
write_result(
    "table1",
    {
        "network": "full width (Johnson et al.'s), random weights, plain eager fp32, batch 1",
        "baseline": "L-BFGS on eq. 5 (fastst.gatys), fp32, timed over its iterations only",
        "style": "starry_night",
        "style_size": config.style_size,
        "weights": weights,
        "measured_iterations": 5,
        "full_seconds": args.full,
        "rows": rows,
    },
)
