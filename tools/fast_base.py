"""The base's styles on a smaller network: for each style, the shipped base and a candidate multi-style
network scored with the quality measure (the optimality ratio, the content and style terms apart, median
over the held-out photos whose L-BFGS curves results/lbfgs/ holds), both timed on `fastst stylize`'s
default path at 256, 512 and 1024 px beside the peer's built-in style in one run of interleaved rounds,
and a figure of one held-out photo through each style of both. Writes results/NAME.json and
figures/NAME.png (``--name``, by default fast_base).

    python tools/fast_base.py runs/base_small/model.pth [--base base] [--count 3] [--alone STYLE=MODEL ...]
    python tools/fast_base.py runs/distill_base/model.pth --name fast_base_distilled --label distilled

``--alone`` adds a one-style network of one of the base's styles (the shipped Starry Night: the network
`fastst stylize --style starry_night` runs), scored and timed in the same run.
"""

from __future__ import annotations

import argparse

from fast_networks import median_terms, seconds, speed_table

from fastst import quality
from fastst.data import data_dir
from fastst.plotting import save_fig, show_images
from fastst.report import measured_on
from fastst.results import machine, write_result
from fastst.stylize import load_model, pretrained_path, stylize
from fastst.transformer import count_parameters, single_style

# The quality target of a smaller network: at most this much above the base's optimality ratio, per style.
TARGET = 0.05


def _row(label: str, base: dict, other: dict) -> list[str]:
    return [
        label,
        f"{base['ratio']:.2f}",
        f"{other['ratio']:.2f}",
        f"{100 * (other['ratio'] / base['ratio'] - 1):+.1f}%",
        f"{base['content']:.1f} / {other['content']:.1f}",
        f"{base['style']:.1f} / {other['style']:.1f}",
    ]


def table(result: dict) -> list[dict]:
    """The quality table, then the speed table (docs/many_styles.md)."""
    rows, label = [], result["networks"]["candidate"]["label"]
    for style, row in result["quality"].items():
        name = style.replace("_", " ")
        if "alone" in row:  # a shipped one-style network of the style, in the same columns
            rows.append(_row(f"{name}: its shipped one-style network", row["base"], row["alone"]))
        rows.append(_row(f"{name}: {label}", row["base"], row["candidate"]))
    return [
        {
            "columns": [
                "style: network",
                "base: optimality ratio",
                "network: optimality ratio",
                "network against base",
                "content (base / network)",
                "style term (base / network)",
            ],
            "rows": rows,
        },
        {
            **speed_table(result["seconds"], {k: n["label"] for k, n in result["networks"].items()}),
            "note": f"Median over {len(result['photos'])} held-out photos a style; "
            + ("seconds in fp32; " if result.get("precision") == "fp32" else "")
            + f"{measured_on(result)} "
            f"(`results/{result['name']}.json`).",
        },
    ]


def figure(models: dict, photo, styles: list[str], name: str, labels: dict) -> None:
    """Each style of each network on ``photo``, titled by ``labels`` (the result's network labels)."""
    images, titles = [], []
    for style in styles:
        for network_name, model in models.items():
            network = single_style(model, model.style_names.index(style)).eval()
            images.append(stylize(network, photo, precision="fp32"))
            titles.append(f"{style.replace('_', ' ')}, {labels[network_name]}")
    fig = show_images(images, titles, ncols=4)
    save_fig(fig, name, {"styles": styles, "networks": list(models)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", help="a multi-style model file with the base's styles")
    parser.add_argument("--base", default="base")
    parser.add_argument("--count", type=int, default=3, help="held-out photos a style")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--name", default="fast_base", help="the result's and the figure's name")
    parser.add_argument("--label", default="smaller base", help="the candidate's name in the tables")
    parser.add_argument("--alone", nargs="*", default=[], metavar="STYLE=MODEL", help="one-style networks")
    parser.add_argument(
        "--precision", choices=["auto", "fp32"], default="auto", help="the precision of the timed passes"
    )
    parser.add_argument("--styles", nargs="+", default=None, help="score these of the base's styles only")
    args = parser.parse_args()
    models = {"base": load_model(args.base), "candidate": load_model(args.candidate)}
    alone = {style: (path, load_model(path)) for style, path in (a.split("=", 1) for a in args.alone)}
    styles = models["base"].style_names
    if models["candidate"].style_names != styles:
        raise SystemExit(f"{args.candidate} has the styles {models['candidate'].style_names}, not {styles}")
    unknown = sorted(set(args.styles or []) - set(styles))
    if unknown:
        raise SystemExit(f"the base holds no style {', '.join(unknown)}: choose from {', '.join(styles)}")
    info = machine()
    rows, scored = {}, args.styles or styles
    for style in scored:
        protocol = quality.evaluation_protocol(
            data_dir() / "styles" / f"{style}.jpg", iterations=200, noise_iterations=200
        )
        ref = quality.reference(protocol, count=args.count)
        index = styles.index(style)
        rows[style] = {name: median_terms(single_style(m, index), ref) for name, m in models.items()}
        if style in alone:
            rows[style]["alone"] = median_terms(alone[style][1], ref)
        print(style, rows[style], flush=True)
    photo = next(iter(ref.photos.values()))
    one_style = {name: single_style(m, 0) for name, m in models.items()}  # the speed is any style's
    one_style.update({f"alone {style}": model for style, (_, model) in alone.items()})
    timed = seconds(one_style, args.rounds, args.precision)
    networks = {
        name: {
            "model": str(path if not pretrained_path(path).is_file() else pretrained_path(path).name),
            "label": {"base": f"shipped {args.base}", "candidate": args.label}.get(
                name, f"shipped {name[6:]}"
            ),
            "net": ", ".join(f"{k} {v}" for k, v in m.config.items() if k not in ("norm", "upsample")),
            "parameters": count_parameters(m),
        }
        for (name, m), path in zip(
            [*models.items(), *((f"alone {st}", m) for st, (_, m) in alone.items())],
            [args.base, args.candidate, *(p for p, _ in alone.values())],
        )
    }
    worst = max(r["candidate"]["ratio"] / r["base"]["ratio"] - 1 for r in rows.values())
    result = {
        "styles": scored,
        "photos": list(ref.photos),
        "networks": networks,
        "quality": rows,
        "seconds": timed,
        "precision": args.precision,
        "target": TARGET,
        "worst_against_base": round(worst, 4),
        "within_target": worst <= TARGET,
    }
    print(write_result(args.name, result, machine_info=info))
    figure(models, photo, scored, args.name, {k: n["label"] for k, n in networks.items()})


if __name__ == "__main__":
    main()
