"""What the main job (`make`) took: each notebook's minutes from the executed notebooks' own timestamps,
each style's training from its run's log, the machine, and the figures it drew (their preset digest and
commit), read from a checkout where `make` ran (a fresh clone, say). Writes results/main_job.json.

    git clone . /tmp/clone && (cd /tmp/clone && make)
    python tools/main_job.py /tmp/clone [--name main_job]
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from fastst.config import TrainConfig, preset_digest, style_configs
from fastst.report import measured_on
from fastst.results import machine, write_result
from fastst.runs import RunFolder, last_row

FIGURES = ("fig2_losses", "fig3_starry_night", "fig3_woman_with_a_parasol")


def _time(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def notebook_minutes(path: Path) -> dict:
    """From the first cell's start to the last cell's end, by the kernel's own timestamps."""
    cells = json.loads(path.read_text())["cells"]
    stamps = [c["metadata"]["execution"] for c in cells if c.get("metadata", {}).get("execution")]
    start, end = _time(stamps[0]["iopub.status.busy"]), _time(stamps[-1]["iopub.status.idle"])
    return {
        "notebook": path.name,
        "started": start.isoformat(),
        "minutes": round((end - start).total_seconds() / 60, 2),
    }


def training(folder: Path) -> dict:
    """A run's iterations and measured duration (its log's last ``elapsed_s``) and what it ran on."""
    last = last_row(RunFolder(folder))
    env = json.loads((folder / "config.json").read_text()).get("environment", {})
    return {
        "run": folder.name,
        "iterations": int(last["iteration"]),
        "minutes": round(float(last["elapsed_s"]) / 60, 1),
        "environment": {
            k: env.get(k) for k in ("cpu", "cpu_flags", "precision", "threads", "torch", "git_commit")
        },
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkout", type=Path, help="where `make` ran")
    parser.add_argument(
        "--preset", default="cpu", help="the preset the main job trained (auto: cpu on a CPU)"
    )
    parser.add_argument("--name", default="main_job")
    parser.add_argument(
        "--executed",
        type=Path,
        default=None,
        help="the executed notebooks (default CHECKOUT/notebooks/executed)",
    )
    args = parser.parse_args(argv)
    preset = TrainConfig.resolve_preset(args.preset)
    runs = args.checkout / "runs" / preset
    trained = {name: training(runs / Path(c.out).name) for name, c in style_configs(preset).items()}
    executed = sorted((args.executed or args.checkout / "notebooks" / "executed").glob("*.ipynb"))
    notebooks = [notebook_minutes(p) for p in executed]
    figures = {
        name: {
            k: v
            for k, v in json.loads((args.checkout / "figures" / f"{name}.json").read_text()).items()
            if k in ("date", "git_commit", "git_dirty", "preset", "preset_digest")
        }
        for name in FIGURES
    }
    others = [n for n in notebooks if not n["notebook"].startswith("03")]
    result = {
        "preset": preset,
        "preset_digest": preset_digest(preset),
        "training": trained,
        "notebooks": notebooks,
        # notebook 3 is its training (which resumes, so its notebook's own minutes may cover part of it):
        # the main job's minutes are the other notebooks' and the training runs' logged minutes
        "minutes_apart_from_training": round(sum(n["minutes"] for n in others), 1),
        "training_minutes": round(sum(t["minutes"] for t in trained.values()), 1),
        "figures": figures,
        "machine_note": "matmul rates measured when collected, on the machine of the run",
    }
    result["main_job_minutes"] = round(result["minutes_apart_from_training"] + result["training_minutes"], 1)
    print(write_result(args.name, result, machine_info=machine()))


def table(result: dict) -> dict:
    """Minutes each notebook of the main job took; notebook 3's are its training runs' logged minutes."""
    rows = []
    for n in result["notebooks"]:
        if n["notebook"].startswith("03"):
            for name, t in result["training"].items():
                rows.append(
                    [
                        f"`{n['notebook']}`: training {name.replace('_', ' ')} "
                        f"({t['iterations']:,} iterations, its log)",
                        f"{t['minutes']:.1f}",
                    ]
                )
        else:
            rows.append([f"`{n['notebook']}`", f"{n['minutes']:.1f}"])
    rows.append(["the main job", f"{result['main_job_minutes']:.1f}"])
    return {
        "columns": ["notebook", "minutes"],
        "rows": rows,
        "note": f"The `{result['preset']}` preset; the other notebooks' minutes by the kernel's timestamps. "
        f"{measured_on(result)} (`results/{result['name']}.json`).",
    }


if __name__ == "__main__":
    main()
