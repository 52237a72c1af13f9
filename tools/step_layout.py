"""What memory layout suits the training step on this machine: the step of each CPU preset and of the
report preset (step_timing.recipe_steps: train's step, in the precision "auto" picks here) in contiguous
memory and in channels-last memory (the network, its batch and the loss network), and with --compile also
in channels-last memory under torch.compile (the network and the loss; train does not compile), timed in
interleaved rounds in one process, with the step's FLOPs and their share of the matmul rate measured in the
same run, and the seconds its first two calls took to compile. Writes results/step_layout.json.

    python tools/step_layout.py [--rounds N] [--presets cpu,report,...] [--compile]
"""

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from fastst.config import TrainConfig
from fastst.data import STYLES, data_dir
from fastst.measure import interleaved_medians
from fastst.report import measured_on
from fastst.results import matmul_rate, write_result
from fastst.runtime import resolve_precision
from fastst.step_timing import recipe_steps


def table(result: dict) -> dict:
    """The table of docs/performance.md made of this study's result."""
    compiled = all("compiled_s" in row for row in result["rows"])
    rows = []
    for row in result["rows"]:
        cells = [
            f"`{row['preset']}`",
            f"batch {row['batch_size']}, {row['size']} px, width {row['width']:g}",
            f"{row['gflop']:.0f}",
            f"{row['contiguous_s']:.3f} s ({row['fraction_of_matmul_contiguous']:.0%})",
            f"{row['channels_last_s']:.3f} s ({row['fraction_of_matmul_channels_last']:.0%})",
            f"{row['speedup']:.2f}x",
        ]
        if compiled:
            cells += [
                f"{row['compiled_s']:.3f} s ({row['fraction_of_matmul_compiled']:.0%})",
                f"{row['compiled_speedup']:.2f}x",
                f"{row['compile_s']:.0f} s",
            ]
        rows.append(cells)
    return {
        "columns": ["preset", "step", "GFLOP", "contiguous", "channels-last", "speed-up"]
        + (["channels-last, compiled", "speed-up", "compiling"] if compiled else []),
        "rows": rows,
        "note": f"Each time: the median of {result['rounds']} interleaved rounds of one step in "
        f"{result['precision']}, with its share of the {result['precision']} matmul rate; speed-ups against "
        "contiguous memory"
        + ("; compiling: the seconds of the compiled step's first two calls" if compiled else "")
        + f"; {measured_on(result)} (`results/{result['name']}.json`).",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--presets", default="cpu,cpu_batch4,cpu_half,report")
    parser.add_argument("--compile", action="store_true", help="also time the step under torch.compile")
    args = parser.parse_args()

    device = torch.device("cpu")
    precision = resolve_precision("auto", device)
    LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    steps, flops, configs, compile_s = {}, {}, {}, {}
    for preset in args.presets.split(","):
        config = configs[preset] = TrainConfig.from_preset(
            preset, style=str(data_dir() / STYLES["starry_night"])
        )
        for name, layout in LAYOUTS.items():
            steps[preset, name] = recipe_steps(config, device, precision, layout)[config.image_size]
        with FlopCounterMode(display=False) as counter:
            steps[preset, "contiguous"]()
        flops[preset] = counter.get_total_flops()
        if args.compile:
            step = steps[preset, "compiled"] = recipe_steps(config, device, precision, compiled=True)[
                config.image_size
            ]
            started = time.perf_counter()
            for _ in range(2):
                step()
            compile_s[preset] = time.perf_counter() - started
    times = interleaved_medians(steps, args.rounds, device, slice_s=0)
    rate = matmul_rate(torch.bfloat16 if precision == "bf16" else torch.float32) * 1e9
    rows = []
    for preset, config in configs.items():
        contiguous, channels_last = times[preset, "contiguous"], times[preset, "channels_last"]
        compiled = times.get((preset, "compiled"))
        rows.append(
            {
                "preset": preset,
                "size": config.image_size,
                "batch_size": config.batch_size,
                "width": config.width,
                "gflop": flops[preset] / 1e9,
                "contiguous_s": contiguous,
                "channels_last_s": channels_last,
                "speedup": contiguous / channels_last,
                "fraction_of_matmul_contiguous": flops[preset] / contiguous / rate,
                "fraction_of_matmul_channels_last": flops[preset] / channels_last / rate,
                **(
                    {
                        "compiled_s": compiled,
                        "compiled_speedup": contiguous / compiled,
                        "fraction_of_matmul_compiled": flops[preset] / compiled / rate,
                        "compile_s": compile_s[preset],
                    }
                    if compiled
                    else {}
                ),
            }
        )
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[-1].items()})
    path = write_result("step_layout", {"precision": precision, "rounds": args.rounds, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
