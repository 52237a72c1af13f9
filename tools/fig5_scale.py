"""What Johnson et al.'s Fig. 5 count asks of a network, on the objective the time-to-quality results are
scored on: for The Starry Night and The Great Wave, the optimality ratio a network needs to match 10, 20,
50, 100 and 200 L-BFGS iterations from noise (fastst.quality.fig5_threshold; median over the test set),
beside the best ratio and count each time-to-quality result measured. Reads the cached L-BFGS curves.
Writes results/fig5_scale.json.

    python tools/fig5_scale.py
"""

from fastst import quality
from fastst.data import EXTRA_DIR, STYLES, data_dir
from fastst.results import machine, read_result, write_result

ITERATIONS = (10, 20, 50, 100, 200)


def table(result: dict) -> dict:
    """The table of docs/time_to_quality.md made of this study's result."""
    counts = list(result["rows"][0]["thresholds"])
    rows = []
    for row in result["rows"]:
        best = row["best_measured"]
        rows.append(
            [
                row["style"].replace("_", " "),
                *(f"{row['thresholds'][n]:.2f}" for n in counts),
                f"{best['optimality_ratio']:.2f} ({best['lbfgs_equivalent']:g} iterations)",
            ]
        )
    return {
        "columns": ["style", *(f"{n} iterations" for n in counts), "best measured"],
        "rows": rows,
        "note": "The optimality ratio a network needs to match that many L-BFGS iterations from noise "
        f"(median over {result['rows'][0]['photos']} held-out photos at {result['photo_size']} px), and the "
        "lowest final ratio of any recipe in that style's time-to-quality table with its count; "
        f"`{result['command']}` (`results/{result['name']}.json`).",
    }


def main() -> None:
    styles = {
        "starry_night": data_dir() / STYLES["starry_night"],
        "great_wave": data_dir() / EXTRA_DIR / "great_wave.jpg",
    }
    rows = []
    for name, path in styles.items():
        measured = read_result(f"time_to_quality_{name}")
        ref = quality.result_reference(measured, path)
        best = min(measured["summary"].values(), key=lambda row: row["final_optimality_ratio"])
        rows.append(
            {
                "style": name,
                "photos": len(ref.photos),
                "thresholds": {n: quality.fig5_threshold(ref, n) for n in ITERATIONS},
                "best_measured": {
                    "result": measured["name"],
                    "optimality_ratio": best["final_optimality_ratio"],
                    "lbfgs_equivalent": best["final_lbfgs_equivalent"],
                },
            }
        )
        print(name, {n: round(v, 3) for n, v in rows[-1]["thresholds"].items()}, rows[-1]["best_measured"])
    write_result(
        "fig5_scale",
        {"rows": rows, "photo_size": ref.protocol.photo_size},
        machine_info=machine(measure=False),
    )


if __name__ == "__main__":
    main()
