"""Johnson et al.'s Table 1 on this machine: seconds per image of the optimisation baseline (L-BFGS on
eq. 5, 100/300/500 iterations) against one forward pass of the network, at 256, 512 and 1024 px, both in
fp32. The network is the full-width one of the paper, with random weights (its speed does not depend on
them). Cells whose estimate is within FULL seconds are run in full; the others are the per-iteration cost
multiplied out and marked. Writes results/table1.json.

    python tools/table1.py [--full SECONDS]
"""

import argparse
import re

import torch

from fastst.config import TrainConfig
from fastst.data import STYLES, data_dir
from fastst.evaluate import speed_table
from fastst.io import load_image
from fastst.report import measured_on
from fastst.results import write_result
from fastst.transformer import TransformerNet


def table(result: dict) -> dict:
    """The table of docs/performance.md made of this study's result."""
    counts = sorted(int(k.split("_")[1]) for k in result["rows"][0] if re.fullmatch(r"baseline_\d+_s", k))

    def cell(row, n):
        mark = "*" if row[f"baseline_{n}_extrapolated"] else ""
        return f"{row[f'baseline_{n}_s']:,.1f} s{mark} ({row[f'speedup_{n}']:,.0f}x)"

    return {
        "columns": ["size", "network, one pass", *(f"baseline, {n} iterations (speed-up)" for n in counts)],
        "rows": [
            [f"{row['size']} x {row['size']}", f"{row['network_s']:.3f} s", *(cell(row, n) for n in counts)]
            for row in result["rows"]
        ],
        "note": f"\\* the baseline's cost per iteration (measured over {result['measured_iterations']} "
        f"iterations) multiplied out; the other cells (estimated within {result['full_seconds']:g} s) ran in "
        f"full. Network: {result['network']}; baseline: {result['baseline']}; {measured_on(result)} "
        f"(`results/{result['name']}.json`).",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--full", type=float, default=120.0, help="run cells estimated within this many seconds"
    )
    args = parser.parse_args()

    config = TrainConfig.from_preset("cpu", style=str(data_dir() / STYLES["starry_night"]))
    weights = {
        k: getattr(config, k) for k in ("content_weight", "style_weight", "tv_weight", "content_layer")
    }
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


if __name__ == "__main__":
    main()
