"""Where the cpu preset's training step spends its time: the step (train's own, at the preset's size and
batch) under torch's profiler, its operators' own time grouped into convolutions (forward and backward),
the Gram matrices' products, max pooling, copies (dtype casts in bf16, changes of memory layout) and the
rest, with the FLOPs of the first two and their rate against the machine's matmul rate measured in the same
run: of the step's precision for the convolutions, of fp32 for the Gram matrices (which are computed in
fp32). Beside it, in interleaved rounds, the same step as training took it before its instance norms ran
as group norms and its Adam was fused (torch's InstanceNorm2d, Adam's default implementation on the
CPU), for the speed-up of those two changes. Writes results/NAME.json (default step_profile).

    python tools/step_profile.py [--steps N] [--name NAME]
"""

import argparse
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from fastst.config import TrainConfig
from fastst.data import STYLES, data_dir
from fastst.measure import interleaved_medians
from fastst.report import measured_on
from fastst.results import matmul_rate, write_result
from fastst.runtime import resolve_precision
from fastst.step import build_model, parameter_groups
from fastst.step_timing import bench_recipes, recipe_steps
from fastst.transformer import InstanceNorm2d, replace_modules

GROUPS = {  # profiler operator name -> group
    "aten::mkldnn_convolution": "convolution",
    "aten::convolution_backward": "convolution",
    "aten::bmm": "gram",
    "aten::max_pool2d_with_indices": "pooling",
    "aten::max_pool2d_with_indices_backward": "pooling",
    "aten::copy_": "copies",
}
FLOP_GROUPS = {"convolution": "convolution", "convolution_backward": "convolution", "bmm": "gram"}


def with_torchs_norms(config: TrainConfig) -> torch.nn.Module:
    """train's network with torch's InstanceNorm2d in place of its own (the same weights)."""

    def torchs(norm: InstanceNorm2d) -> torch.nn.InstanceNorm2d:
        library = torch.nn.InstanceNorm2d(norm.num_features, eps=norm.eps, affine=True)
        library.load_state_dict(norm.state_dict())
        return library

    return replace_modules(build_model(config), lambda m: isinstance(m, InstanceNorm2d), torchs)


def table(result: dict) -> dict:
    """The table of docs/performance.md made of this study's result."""
    rows = []
    for name, row in result["groups"].items():
        rate, gflop = row["fraction_of_matmul"], row["gflop"]
        rows.append(
            [
                name,
                f"{row['share_of_step']:.0%}",
                f"{gflop:.1f}" if gflop else "none",
                f"{rate:.0%}" if rate is not None else "n/a",
            ]
        )
    before = result.get("before")
    return {
        "columns": [
            "part of the step",
            "share of its time",
            "GFLOP",
            "their rate against the matmul rate of their precision",
        ],
        "rows": rows,
        "note": f"The `{result['preset']}` preset's step (batch {result['batch_size']}, {result['size']} px, "
        f"{result['precision']}): {result['seconds']:.3f} s, {result['gflop']:.0f} GFLOP, "
        f"{result['fraction_of_matmul']:.0%} of the {result['precision']} matmul rate"
        + (
            f"; in interleaved rounds of the same run, {before['now_seconds']:.3f} s against "
            f"{before['seconds']:.3f} s with torch's instance norm and Adam unfused "
            f"({before['seconds'] / before['now_seconds']:.2f}x)"
            if before
            else ""
        )
        + f"; {measured_on(result)} (`results/{result['name']}.json`).",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--name", default="step_profile", help="the result file's name")
    args = parser.parse_args()

    device = torch.device("cpu")
    precision = resolve_precision("auto", device)
    config = TrainConfig.from_preset("cpu", style=str(data_dir() / STYLES["starry_night"]))
    # the step's seconds, FLOPs and share of the matmul rate as the time-to-quality results time it
    timing = bench_recipes({"cpu": config}, rounds=args.steps, device=device)[0]
    step = recipe_steps(config, device, precision)[config.image_size]

    # the step as training took it before: torch's instance norm and Adam's default implementation
    before = recipe_steps(
        config,
        device,
        precision,
        build=with_torchs_norms,
        optimizer_for=lambda model, config: torch.optim.Adam(parameter_groups(model, config)),
    )[config.image_size]
    compared = interleaved_medians({"before": before, "now": step}, args.steps, device, slice_s=0)

    with FlopCounterMode(display=False) as counter:
        step()
    flops = defaultdict(int)
    for op, count in counter.get_flop_counts()["Global"].items():
        flops[FLOP_GROUPS.get(str(op).split(".")[1], "other")] += count
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    own = defaultdict(float)
    for event in prof.key_averages():
        own[GROUPS.get(event.key, "other")] += event.self_cpu_time_total
    profiled = sum(own.values())
    rates = {"convolution": matmul_rate(torch.bfloat16 if precision == "bf16" else torch.float32)}
    rates["gram"] = matmul_rate(torch.float32)
    groups = {
        name: {
            "share_of_step": own[name] / profiled,
            "gflop": flops.get(name, 0) / 1e9,
            "fraction_of_matmul": flops[name] / 1e9 / (own[name] / profiled * timing["seconds"]) / rates[name]
            if flops.get(name)
            else None,
        }
        for name in ("convolution", "gram", "pooling", "copies", "other")
    }
    result = {
        "preset": "cpu",
        "size": config.image_size,
        "batch_size": config.batch_size,
        "precision": precision,
        "seconds": timing["seconds"],
        "gflop": timing["gflop"],
        "fraction_of_matmul": timing["fraction_of_matmul"],
        "groups": groups,
        "before": {"seconds": compared["before"], "now_seconds": compared["now"]},
    }
    path = write_result(args.name, result)
    for name, row in groups.items():
        print(name, {k: round(v, 3) if v is not None else None for k, v in row.items()})
    print(
        f"before the group norm and fused Adam: {compared['before'] / compared['now']:.2f}x the step's time"
    )
    print(
        f"step {timing['seconds']:.3f} s, {timing['fraction_of_matmul']:.0%} of the matmul rate; wrote {path}"
    )


if __name__ == "__main__":
    main()
