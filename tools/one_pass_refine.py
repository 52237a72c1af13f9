"""How short a fine-tune of the one-pass model's network for a painting already beats the peer: for each
held-out painting, the `finetune` preset from `--from anystyle` for several lengths, each network scored
with the quality measure beside the peer's any-style mode and the one pass alone, in one run, with each
run's training time by its own log. Writes results/one_pass_refine.json.

    python tools/one_pass_refine.py [--iterations 60 120 240] [--photos 2]
"""

from __future__ import annotations

import argparse

from any_style import _peer, held_out_paintings, protocol, quality_table, score_painting

from fastst import quality
from fastst.anystyle import load_anystyle
from fastst.data import TRAIN_DIR, data_dir
from fastst.report import measured_on
from fastst.results import machine, write_result
from fastst.train import TrainConfig, runs_dir, train


def finetune(painting, iterations: int) -> tuple[str, float]:
    """The network for ``painting`` after ``iterations`` of the finetune preset from the one-pass model's
    network for it (resumed where it exists); its model file and its logged training seconds."""
    out = runs_dir() / "one_pass_refine" / f"{painting.stem}-{iterations}"
    config = TrainConfig.from_preset(
        "finetune", style=str(painting), data=str(data_dir() / TRAIN_DIR), out=str(out), iterations=iterations
    )
    config.init = "anystyle"
    train(config, resume=True)
    seconds = float((out / "losses.csv").read_text().splitlines()[-1].split(",")[-1])
    return str(out / "model.pth"), seconds


def table(result: dict) -> dict:
    trained = {
        painting: {
            name: (None, row["training_seconds"]) for name, row in rows.items() if "training_seconds" in row
        }
        for painting, rows in result["quality"].items()
    }
    spec = quality_table(result["quality"], trained, cell=lambda s: f"{s:.0f} s")
    note = (
        f"Median over {len(result['photos'])} held-out photos; {measured_on(result)} "
        "(`results/one_pass_refine.json`)."
    )
    return {**spec, "note": note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[60, 120, 240])
    parser.add_argument("--photos", type=int, default=2)
    args = parser.parse_args()
    info = machine()
    peer, model = _peer(), load_anystyle()
    paintings = held_out_paintings()
    trained = {
        p.stem: {f"fastst one-pass, then {n} iterations": finetune(p, n) for n in args.iterations}
        for p in paintings
    }
    scores = {}
    for painting in paintings:
        scores[painting.stem] = score_painting(peer, model, painting, args.photos, trained)
        for label, (_, seconds) in trained[painting.stem].items():
            scores[painting.stem][label]["training_seconds"] = round(seconds, 1)
        for name, row in scores[painting.stem].items():
            print(painting.stem, name, f"{row['optimality_ratio']:.3f}", flush=True)
    photos = list(quality.reference(protocol(paintings[0]), count=args.photos).photos)
    result = {"iterations": args.iterations, "photos": photos, "quality": scores}
    print(write_result("one_pass_refine", result, machine_info=info))


if __name__ == "__main__":
    main()
