"""Smaller networks for a shipped style, on the curve of seconds against quality: each candidate network's
quality (fastst.quality: the optimality ratio, with the content and style terms apart, median over the
held-out photos) and its seconds a photo on the default path at 256, 512 and 1024 px, timed in one run of
interleaved rounds beside the peer's built-in style; and a figure of the held-out photos through each.
Writes results/NAME.json and figures/NAME.png (``--name``, by default fast_networks).

    python tools/fast_networks.py --style starry_night shipped=starry_night fast=runs/fast/a/model.pth ...
    python tools/fast_networks.py --style the_scream --name fast_the_scream --count 3 base=base ...

The first candidate is the one the others are compared with. A multi-style model (the shipped base) takes
part as its network of ``--style``.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from any_style import _peer, terms
from peers_speed import square_photo

from fastst import quality
from fastst.data import data_dir
from fastst.io import pil_to_tensor, tensor_to_pil
from fastst.measure import interleaved_medians
from fastst.plotting import save_fig, show_images
from fastst.results import machine, write_result
from fastst.runtime import process_settings
from fastst.stylize import Stylizer, load_model, model_styles, pretrained_path, stylize
from fastst.transformer import count_parameters

SIZES = (256, 512, 1024)


def median_terms(model, ref: quality.Reference) -> dict:
    """Median over the held-out photos of the optimality ratio and of eq. 5's terms of one pass."""
    rows = [
        terms(ref, stem, stylize(model.eval(), photo, precision="fp32")) for stem, photo in ref.photos.items()
    ]
    named = {"ratio": "optimality_ratio", "content": "content", "style": "style"}
    return {k: round(statistics.median(r[v] for r in rows), 3) for k, v in named.items()}


def seconds(models: dict, rounds: int, precision: str = "auto") -> dict:
    """Seconds a photo of each network on the default path (in ``precision``) and of the peer's built-in
    style, in interleaved rounds under the process settings ``fastst stylize`` runs with."""
    peer = _peer()
    stylizers = {name: Stylizer(model, precision, runtime="auto") for name, model in models.items()}
    fns = {}
    for size in SIZES:
        pil = square_photo(size)
        fns[f"peer built-in {size}"] = lambda pil=pil: peer.stylize(pil, 0)
        for name, s in stylizers.items():
            fns[f"{name} {size}"] = lambda pil=pil, s=s: tensor_to_pil(s(pil_to_tensor(pil)))
    with process_settings(torch.device("cpu")):
        timed = interleaved_medians(fns, rounds, torch.device("cpu"))
    return {k: round(v, 4) for k, v in timed.items()}


def tables(result: dict) -> dict:
    names = list(result["networks"])
    first = result["networks"][names[0]]["quality"]["ratio"]
    quality_rows = []
    for name in names:
        n = result["networks"][name]
        q = n["quality"]
        quality_rows.append(
            [
                name,
                n["net"],
                f"{n['parameters'] / 1e3:.0f} k",
                f"{q['ratio']:.2f}",
                f"{100 * (q['ratio'] / first - 1):+.1f}%",
                f"{q['content']:.1f}",
                f"{q['style']:.1f}",
            ]
        )
    return {
        "quality": {
            "columns": [
                "network",
                "shape",
                "parameters",
                "optimality ratio",
                f"against {names[0]}",
                "content",
                "style",
            ],
            "rows": quality_rows,
        },
        "speed": speed_table(result["seconds"], {name: name for name in names}),
    }


def speed_table(seconds: dict, labels: dict) -> dict:
    """Seconds a photo of the peer's built-in style and of each network (``labels``: its key in
    ``seconds`` -> its row's name), then the peer's seconds over each network's."""
    rows = [["peer built-in", *(f"{seconds[f'peer built-in {n}']:.3f} s" for n in SIZES)]]
    for key, label in labels.items():
        rows.append([label, *(f"{seconds[f'{key} {n}']:.3f} s" for n in SIZES)])
    for key, label in labels.items():
        rows.append(
            [f"{label}: the peer's seconds / its own"]
            + [f"{seconds[f'peer built-in {n}'] / seconds[f'{key} {n}']:.2f}" for n in SIZES]
        )
    return {"columns": ["seconds a photo", *(f"{n} px" for n in SIZES)], "rows": rows}


def figure(models: dict, ref: quality.Reference, style: str, figure_name: str = "fast_networks") -> None:
    photos = list(ref.photos.values())[:4]
    images, titles = [], []
    for photo in photos:
        images.append(photo)
        titles.append("photo")
        for name, model in models.items():
            images.append(stylize(model.eval(), photo, precision="fp32"))
            titles.append(name)
    fig = show_images(images, titles, ncols=len(models) + 1)
    save_fig(fig, figure_name, {"style": style, "networks": list(models)})


def _one_style(path: str, style: str):
    """The network of ``path``: a one-style model as it is, a multi-style one as its network of ``style``."""
    return load_model(path, style=style if len(model_styles(path)) > 1 else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="starry_night", help="the style image's name in data/styles")
    parser.add_argument("networks", nargs="+", metavar="NAME=MODEL", help="a shipped name or a model file")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--name", default="fast_networks", help="the result's and the figure's name")
    parser.add_argument("--count", type=int, default=None, help="held-out photos (default all)")
    args = parser.parse_args()
    pairs = [item.split("=", 1) for item in args.networks]
    models = {name: _one_style(path, args.style) for name, path in pairs}
    style = data_dir() / "styles" / f"{args.style}.jpg"
    # the time-to-quality studies' L-BFGS budgets, whose curves results/lbfgs/ holds
    protocol = quality.evaluation_protocol(style, iterations=200, noise_iterations=200)
    ref = quality.reference(protocol, count=args.count)
    info = machine()
    networks = {}
    for (name, path), model in zip(pairs, models.values()):
        networks[name] = {
            "model": str(path if not pretrained_path(path).is_file() else pretrained_path(path).name),
            "net": ", ".join(f"{k} {v}" for k, v in model.config.items() if k not in ("norm", "upsample")),
            "parameters": count_parameters(model),
            "quality": median_terms(model, ref),
        }
        print(name, networks[name]["quality"], flush=True)
    timed = seconds(models, args.rounds)
    result = {"style": args.style, "photos": list(ref.photos), "networks": networks, "seconds": timed}
    result["tables"] = tables(result)
    print(write_result(args.name, result, machine_info=info))
    figure(models, ref, args.style, args.name)


if __name__ == "__main__":
    main()
