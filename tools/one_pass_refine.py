"""How short, and from where, a painting's own network already beats the peer: for each held-out painting,
`--refine`'s training (the `finetune` preset) for several lengths from the one-pass model's network for
it, and with ``--from-base`` from the shipped base (what `--refine` did first), each network scored with the
quality measure beside the peer's any-style mode and the one pass alone, in one run, with each
run's training time by its own log. Then, as a person runs them (whole processes, start-up included, one
held-out photo at 512 px): the peer's any-style mode, fastst's one pass, and `fastst stylize --style-image P
--refine` the first time (training included) and again (the painting's network reused). Writes
results/one_pass_refine.json and figures/one_pass_refine.png (the paintings on a held-out photo, by method).

    python tools/one_pass_refine.py [--iterations 60 120 240] [--from-base 120 240] [--photos 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from any_style import _peer, figure, held_out_paintings, protocol, quality_table, refined, score_painting
from peers_speed import _commands, _run

from fastst import quality
from fastst.anystyle import load_anystyle
from fastst.data import TEST_DIR, data_dir
from fastst.io import list_images, load_image, tensor_to_pil
from fastst.presets import REFINE_ITERATIONS
from fastst.report import measured_on, three_figures
from fastst.results import machine, write_result
from fastst.scale import to_longer_side


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
    if "commands" not in result:
        return {**spec, "note": note}
    names = list(next(iter(result["commands"].values())))
    commands = {
        "columns": ["painting (held out)", *(f"{name}: seconds" for name in names)],
        "rows": [
            [" ".join(painting.split("__")[-2:]), *(three_figures(seconds[name]) for name in names)]
            for painting, seconds in result["commands"].items()
        ],
        "note": f"Whole processes, start-up included, one held-out photo at 512 px; the same run. "
        f"`--refine` takes {result['refine_iterations']} steps.",
    }
    return [{**spec, "note": note}, commands]


def command_seconds(paintings: list[Path]) -> dict:
    """Seconds of whole processes as a person runs them, per painting: the peer's any-style mode, the one
    pass, and ``--refine`` the first time (in a fresh runs folder: it trains) and again (it reuses)."""
    source = list_images(data_dir() / TEST_DIR)[0]
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp, "photo.jpg")
        tensor_to_pil(to_longer_side(load_image(source)[None], 512)[0].clamp(0, 1)).save(photo, quality=95)
        for painting in paintings:
            jobs = _commands(photo, Path(tmp, "out.jpg"), painting)
            refine = [*jobs["fastst one-pass"], "--refine"]
            env = {**os.environ, "FASTST_RUNS": str(Path(tmp, "runs", painting.stem))}  # nothing refined yet
            row = {
                "peer any-style": _run(jobs["peer any-style"])[0],
                "fastst one-pass": _run(jobs["fastst one-pass"])[0],
                "fastst --refine, first time": _run(refine, env)[0],
                "fastst --refine, again": _run(refine, env)[0],
            }
            seconds[painting.stem] = {name: round(s, 2) for name, s in row.items()}
            print(painting.stem, seconds[painting.stem], file=sys.stderr, flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, nargs="+", default=[60, 120, 240])
    parser.add_argument("--photos", type=int, default=2)
    parser.add_argument(
        "--from-base", type=int, nargs="*", default=[], metavar="N", help="also N iterations from the base"
    )
    args = parser.parse_args()
    info = machine()
    peer, models = _peer(), {"fastst one-pass": load_anystyle("anystyle")}
    paintings = held_out_paintings()
    trained = {
        p.stem: {
            **{f"fastst one-pass, then {n} iterations": refined(p, n, "anystyle") for n in args.iterations},
            **{f"fastst base, then {n} iterations": refined(p, n, "base") for n in args.from_base},
        }
        for p in paintings
    }
    scores = {}
    for painting in paintings:
        scores[painting.stem] = score_painting(peer, models, painting, args.photos, trained)
        for label, (_, seconds) in trained[painting.stem].items():
            scores[painting.stem][label]["training_seconds"] = round(seconds, 1)
        for name, row in scores[painting.stem].items():
            print(painting.stem, name, f"{row['optimality_ratio']:.3f}", flush=True)
    figure(peer, models, paintings, trained, 0, name="one_pass_refine", dpi=80)
    photos = list(quality.reference(protocol(paintings[0]), count=args.photos).photos)
    result = {
        "iterations": args.iterations,
        "photos": photos,
        "quality": scores,
        "refine_iterations": REFINE_ITERATIONS,
        "commands": command_seconds(paintings),
    }
    print(write_result("one_pass_refine", result, machine_info=info))


if __name__ == "__main__":
    main()
