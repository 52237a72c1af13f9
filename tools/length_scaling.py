"""How the cpu preset's final quality on The Great Wave scales with its length, and what two time-to-quality
targets would ask of it by that trend.

Reads the runs of the cpu preset at several lengths, each on its own one-cycle schedule, from
results/time_to_quality_great_wave_fp32.json (tools/great_wave_fp32.py trains and scores them). Fits their
final optimality ratio against their iterations as a power law, in two forms: of the ratio, and of the ratio
less 1 (the optimum per photo as a floor, which the ratio approaches). From each fit, the
iterations that two ratios would need, and that many steps of the cpu preset as a multiple of cpu_batch4's
training time (both from that result's one step benchmark; the speed-up the step would need to get there in
cpu_batch4's time): the ratio 30% below cpu_batch4's final one, and the ratio that matches 100 L-BFGS
iterations from noise (Johnson et al.'s Fig. 5; from the cached curves).
Writes results/length_scaling.json.

    python tools/length_scaling.py
"""

import math

import numpy as np

from fastst import quality
from fastst.data import EXTRA_DIR, data_dir
from fastst.recipes import RUN_COLUMNS, logged_cell
from fastst.report import three_figures
from fastst.results import read_result, write_result

STYLE = data_dir() / EXTRA_DIR / "great_wave.jpg"
# the result's runs of the cpu preset, unchanged but for their length (cpu_2200_seed1: and its seed)
RUNS = ("cpu_1100", "cpu_2200", "cpu_2200_seed1", "cpu_4400", "cpu_7100", "cpu")


def fit(points: list[dict], floor: float) -> tuple[float, float]:
    """Least squares of log(ratio - floor) on log(iterations): (log a, k) of ratio = floor + a n^-k."""
    slope, log_a = np.polyfit(
        np.log([p["iterations"] for p in points]),
        np.log([p["optimality_ratio"] - floor for p in points]),
        1,
    )
    return float(log_a), -float(slope)


def table(result: dict) -> list[dict]:
    """The tables of docs/time_to_quality.md made of this study's result: the runs, then the fits."""
    reference = result["reference_recipe"]
    curves = read_result(result["from"])["curves"]  # the runs' own logs
    runs = {
        "columns": list(RUN_COLUMNS),
        "rows": [
            [
                f"`{point['recipe']}`",
                f"{point['iterations']:,}",
                f"{point['seconds'] / 60:.1f} min",
                logged_cell(curves.get(point["recipe"], [])),
                f"{point['optimality_ratio']:.2f}",
                f"{point['lbfgs_equivalent']:g}",
            ]
            for point in result["points"]
        ],
    }
    needs = next(iter(result["fits"].values()))["needs"]  # the targets, the same in every fit
    fits = {
        "columns": ["fit", "k"]
        + [
            f"{target} (ratio {need['optimality_ratio']:.2f}): iterations, times `{reference}`'s time"
            for target, need in needs.items()
        ],
        "rows": [
            [f"{form} = a n<sup>-k</sup>", f"{fit['exponent']:.3f}"]
            + [
                f"{three_figures(need['iterations'])}, {three_figures(need['times_reference_time'])}x"
                for need in fit["needs"].values()
            ]
            for form, fit in result["fits"].items()
        ],
        "note": f"The `cpu` preset's final quality against its length n, each on its own schedule (median "
        f"over {result['photos']} held-out photos at {result['photo_size']} px; runs, scores and times from "
        f"`results/{result['from']}.json`), and power-law fits of it; `{reference}`'s final ratio is "
        f"{result['reference_final_ratio']:.2f}. The multiple of `{reference}`'s time is the speed-up the "
        f"`cpu` preset's step would need to get there in that time; the step runs at "
        f"{result['cpu_step_fraction_of_matmul']:.0%} of the machine's matmul rate, so that at the full rate "
        f"it would be {1 / result['cpu_step_fraction_of_matmul']:.1f}x faster; "
        f"`{result['command']}` (`results/{result['name']}.json`).",
    }
    return [runs, fits]


def main() -> None:
    measured = read_result("time_to_quality_great_wave_fp32")
    points = [
        {
            "recipe": label,
            "iterations": measured["summary"][label]["iterations"],
            "optimality_ratio": measured["summary"][label]["final_optimality_ratio"],
            "lbfgs_equivalent": measured["summary"][label]["final_lbfgs_equivalent"],
            "seconds": measured["summary"][label]["total_seconds"],
        }
        for label in RUNS
    ]
    points.sort(key=lambda p: p["iterations"])

    ref = quality.result_reference(measured, STYLE)
    reference = measured["summary"][measured["reference_recipe"]]
    step_row = next(row for row in measured["step_timing"] if row["recipe"] == "cpu")
    step = step_row["seconds"]
    targets = {
        f"30% below {measured['reference_recipe']}'s final ratio": 0.7 * reference["final_optimality_ratio"],
        "Fig. 5 at 100 iterations": quality.fig5_threshold(ref, 100),
    }
    fits = {}
    for form, floor in (("ratio", 0.0), ("ratio - 1", 1.0)):
        log_a, k = fit(points, floor)
        needs = {}
        for target, ratio in targets.items():
            n = math.exp((log_a - math.log(ratio - floor)) / k)
            needs[target] = {
                "optimality_ratio": ratio,
                "iterations": n,
                "times_reference_time": n * step / reference["total_seconds"],
            }
        fits[form] = {"floor": floor, "exponent": k, "scale": math.exp(log_a), "needs": needs}
        print(
            form,
            f"k={k:.3f}",
            {t: f"{v['iterations']:.3g} it, {v['times_reference_time']:.3g}x" for t, v in needs.items()},
        )
    write_result(
        "length_scaling",
        {
            "style": STYLE.name,
            "from": measured["name"],
            "reference_recipe": measured["reference_recipe"],
            "reference_final_ratio": reference["final_optimality_ratio"],
            "reference_seconds": reference["total_seconds"],
            "cpu_step_seconds": step,
            # the share of the machine's matmul rate the step's FLOPs run at: at the full rate it would be
            # this share's inverse times faster
            "cpu_step_fraction_of_matmul": step_row["fraction_of_matmul"],
            "photos": len(ref.photos),
            "photo_size": ref.protocol.photo_size,
            "points": points,
            "fits": fits,
        },
        machine_info=measured["machine"],  # the machine the runs were timed on; the fit itself is arithmetic
    )


if __name__ == "__main__":
    main()
