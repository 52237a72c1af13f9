"""Figures: one helper saves every figure the same way; plots for the report's Fig. 2 and Fig. 3."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import torch

from fastst.io import atomic_path, load_image, project_folder
from fastst.runtime import git_state
from fastst.stylize import stylize
from fastst.transformer import single_style

FIGURES_ENV = "FASTST_FIGURES"


def figures_dir() -> Path:
    """``$FASTST_FIGURES``, else ``figures/`` of the project checkout, else ``./figures``."""
    return project_folder("figures", FIGURES_ENV)


def save_fig(
    fig: matplotlib.figure.Figure,
    name: str,
    meta: dict | None = None,
    folder: str | os.PathLike | None = None,
    dpi: int = 150,
) -> list[Path]:
    """Write ``fig`` as ``name.png`` (at ``dpi``; a large grid of photos takes less) and ``name.pdf`` with
    a ``name.json`` sidecar (preset, device, git commit, date, and whatever ``meta`` adds) into the
    figures folder, atomically.
    Figures of the smoke preset go to a ``smoke/`` subfolder that git ignores."""
    folder = Path(folder) if folder is not None else figures_dir()
    if (meta or {}).get("preset") == "smoke":
        folder = folder / "smoke"  # smoke figures never mix with (or overwrite) a real run's
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, kwargs in ((".png", {"dpi": dpi}), (".pdf", {})):
        path = folder / f"{name}{suffix}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], bbox_inches="tight", **kwargs)
        written.append(path)
    sidecar = {
        "figure": name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **git_state(),
        **(meta or {}),
    }
    path = folder / f"{name}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=2, default=str) + "\n")
    written.append(path)
    return written


def _to_numpy(image: torch.Tensor):
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def show_images(images, titles=None, ncols: int | None = None, size: float = 3.0):
    """A row (or grid) of (3, H, W) tensors or image paths, with titles."""
    images = [load_image(i) if isinstance(i, (str, Path)) else i for i in images]
    ncols = ncols or len(images)
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles or [None] * len(images)):
        ax.imshow(_to_numpy(image))
        if title:
            ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_losses(runs: dict, smooth: int = 1, log: bool = True):
    """The report's Fig. 2: weighted content, style and TV losses and their total against iteration,
    one panel per term, one line per run (``{label: losses DataFrame}``)."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for label, df in runs.items():
        for ax, column in zip(axes, ("content", "style", "tv", "total")):
            values = df[column].rolling(smooth, min_periods=1).mean() if smooth > 1 else df[column]
            ax.plot(df["iteration"], values, label=label, linewidth=1.2)
    for ax, title in zip(
        axes,
        (
            "content  $\\lambda_c\\mathcal{L}_{content}$",
            "style  $\\lambda_s\\mathcal{L}_{style}$",
            "total variation  $\\lambda_{TV}\\mathcal{L}_{TV}$",
            "total (eq. 5)",
        ),
    ):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        if log:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=9)
    fig.tight_layout()
    return fig


def snapshot_grid(
    table: dict[int, dict[str, Path]],
    photos: dict[str, torch.Tensor] | None = None,
    iterations: list[int] | None = None,
    title: str | None = None,
    size: float = 2.2,
):
    """The report's Fig. 3: rows are test photos, columns training iterations (plus the photo itself
    when ``photos`` is given). ``table`` is ``{iteration: {photo: path}}`` (see ``train.snapshot_table``)."""
    iterations = iterations or sorted(table)
    stems = sorted(set.intersection(*(set(table[i]) for i in iterations)))
    extra = 1 if photos else 0
    fig, axes = plt.subplots(
        len(stems),
        len(iterations) + extra,
        figsize=(size * (len(iterations) + extra), size * 0.75 * len(stems)),
        squeeze=False,
    )
    for r, stem in enumerate(stems):
        if photos:
            axes[r, 0].imshow(_to_numpy(photos[stem]))
        for c, it in enumerate(iterations):
            axes[r, c + extra].imshow(_to_numpy(load_image(table[it][stem])))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if photos:
        axes[0, 0].set_title("content", fontsize=10)
    for c, it in enumerate(iterations):
        axes[0, c + extra].set_title(f"iteration {it:,}", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmaps(matrices: dict[str, torch.Tensor], cmap: str = "magma", size: float = 3.2):
    """One heat map per (C, C) matrix, e.g. Gram matrices by layer."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(size * len(matrices), size), squeeze=False)
    for ax, (name, m) in zip(axes[0], matrices.items()):
        im = ax.imshow(m.detach().float().cpu().numpy(), cmap=cmap)
        ax.set_title(f"{name} ({m.shape[-1]}x{m.shape[-1]})", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def feature_maps(features: dict[str, torch.Tensor], channels: int = 6, size: float = 1.6):
    """The first ``channels`` activation maps of each layer, one row per layer."""
    fig, axes = plt.subplots(
        len(features), channels, figsize=(size * channels, size * len(features)), squeeze=False
    )
    for r, (name, f) in enumerate(features.items()):
        for c in range(channels):
            axes[r, c].imshow(f[0, c].detach().float().cpu().numpy(), cmap="viridis")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=10)
    fig.tight_layout()
    return fig


def plot_quality_curves(
    curves: dict[str, list[dict]],
    title: str | None = None,
    reference: float | None = None,
    reference_label: str = "the reference's final quality",
    highlight: tuple[str, ...] | None = None,
):
    """Time to quality: the optimality ratio (left, lower is better) and Johnson et al.'s Fig. 5
    iterations (right, higher is better) against training minutes on a log scale, one line per run
    (``{label: rows of fastst.quality.curve}``); ``reference`` draws a ratio to reach as a line. With
    ``highlight``, only those runs are drawn in colour and named (solid lines first, in its order), the
    others in thin grey."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    grey = dict(color="0.75", linewidth=0.8, zorder=1)
    # in the order named: the first ones get the palette's colours as solid lines
    coloured = list(curves) if highlight is None else [label for label in highlight if label in curves]
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for label, rows in curves.items():
        rows = [r for r in rows if r["iteration"] > 0]
        minutes = [r["elapsed_s"] / 60 for r in rows]
        if label in coloured:  # each its own colour, and past the palette's end its own dash too
            k = coloured.index(label)
            style = dict(
                marker="o",
                markersize=3,
                label=label,
                zorder=3,
                color=palette[k % len(palette)],
                linestyle=("-", "--", ":")[min(k // len(palette), 2)],
            )
        else:
            style = grey
        left.plot(minutes, [r["optimality_ratio"] for r in rows], **style)
        right.plot(
            minutes,
            [r["lbfgs_equivalent"] if r["lbfgs_equivalent"] is not None else float("nan") for r in rows],
            **style,
        )
    if highlight is not None and set(curves) - set(highlight):  # one legend entry for all grey lines
        right.plot([], [], **grey, label="other recipes tried")
    left.set_ylabel("optimality ratio (network / L-BFGS optimum)")
    right.set_ylabel("L-BFGS iterations from noise matched (Fig. 5)")
    for ax in (left, right):
        ax.set_xlabel("training time (minutes, log scale)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.grid(True, which="both", alpha=0.3)
    left.set_yscale("log")
    # ratios named at 1, 2, 3 and 5 of each decade
    named = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "1235" else "")
    left.yaxis.set_major_formatter(named)
    left.yaxis.set_minor_formatter(named)
    right.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if reference is not None:
        line = left.axhline(reference, color="grey", linestyle=":", label=reference_label)
        left.legend(handles=[line], fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _draw_fits(ax, result: dict, step: float, reference: str) -> None:
    """The power-law fits of a length-scaling result, each marked where it reaches a target."""
    # the fits are drawn out to three times the furthest target within fifty times the reference's time
    needs = [need for fit in result["fits"].values() for need in fit["needs"].values()]
    near = [n["iterations"] for n in needs if n["times_reference_time"] < 50]
    reach = max(n["iterations"] for n in needs)
    reach = min(reach, 3 * max(near)) if near else reach
    first = min(p["iterations"] for p in result["points"]) / 1.5
    for k, (form, fit) in enumerate(result["fits"].items()):
        ns = [first * (reach / first) ** (i / 99) for i in range(100)]
        ax.plot(
            [n * step / 60 for n in ns],
            [fit["floor"] + fit["scale"] * n ** -fit["exponent"] for n in ns],
            linestyle=("-", "--")[k % 2],
            color=f"C{k}",
            label=f"fit: {form} = a n^-k, k = {fit['exponent']:.3f}",
        )
        for need in fit["needs"].values():  # where the fit reaches each target, if within the plot
            if need["iterations"] <= reach:
                at = (need["iterations"] * step / 60, need["optimality_ratio"])
                ax.plot(*at, "x", color=f"C{k}", zorder=5)
                ax.annotate(
                    f"{at[0]:.0f} min: {need['times_reference_time']:.1f}x {reference}'s time",
                    at,
                    fontsize=7,
                    color=f"C{k}",
                    xytext=(-4, -12 - 10 * k),
                    textcoords="offset points",
                    ha="right",
                )


def plot_length_scaling(result: dict):
    """Final quality against training time for runs of one recipe at several lengths (a
    ``tools/length_scaling.py`` result): the runs, its power-law fits carried on to the ratios its targets
    ask for, the targets as lines and the reference's time."""
    fig, ax = plt.subplots(figsize=(9, 5))
    step, reference_min = result["cpu_step_seconds"], result["reference_seconds"] / 60
    reference = result["reference_recipe"]
    for point in result["points"]:
        minutes = point["seconds"] / 60
        ax.plot(minutes, point["optimality_ratio"], "o", color="black", zorder=4)
        ax.annotate(
            point["recipe"],
            (minutes, point["optimality_ratio"]),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    _draw_fits(ax, result, step, reference)
    styles = (":", "-.", (0, (1, 3)))
    for k, (target, need) in enumerate(next(iter(result["fits"].values()))["needs"].items()):
        ax.axhline(
            need["optimality_ratio"],
            color="grey",
            linestyle=styles[k % 3],
            label=f"{target}: {need['optimality_ratio']:.2f}",
        )
    ax.axhline(
        result["reference_final_ratio"],
        color="grey",
        linewidth=0.8,
        label=f"{reference}'s final ratio: {result['reference_final_ratio']:.2f}",
    )
    ax.axvline(reference_min, color="grey", linewidth=0.8)
    ax.annotate(
        f"{reference}'s time",
        (reference_min, ax.get_ylim()[1]),
        fontsize=7,
        rotation=90,
        va="top",
        ha="right",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training time (minutes, log scale)")
    ax.set_ylabel("optimality ratio at the end of the run (log scale)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator([1, 1.2, 1.5, 2, 2.5, 3, 4, 5]))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def style_mix_grid(
    model,
    photo: torch.Tensor,
    pairs: list[tuple[str, str]],
    weights=(0.0, 0.25, 0.5, 0.75, 1.0),
    size: float = 2.4,
):
    """One photo through a multi-style ``model``: a row per pair of styles (a, b), a column per
    weight w of b in the mix (1 - w) a + w b (Dumoulin et al.'s interpolation of the norms'
    scale and shift)."""
    names = model.style_names
    images, titles = [], []
    for a, b in pairs:
        for w in weights:
            mix = [0.0] * len(names)
            mix[names.index(a)] += 1 - w
            mix[names.index(b)] += w
            images.append(stylize(single_style(model, mix), photo))
            titles.append(a if w == 0 else b if w == 1 else f"{1 - w:g} {a}\n+ {w:g} {b}")
    fig = show_images(images, titles, ncols=len(weights), size=size)
    for ax in fig.axes:
        ax.title.set_fontsize(7)
    return fig


def styles_grid(model, photos: dict[str, torch.Tensor], size: float = 1.8):
    """Every style of a multi-style ``model`` on each photo: a row per photo (the photo first),
    a column per style."""
    names = model.style_names
    nets = [single_style(model, k) for k in range(len(names))]
    images, titles = [], []
    for stem, photo in photos.items():
        images += [photo, *(stylize(net, photo) for net in nets)]
        titles += [stem, *(n.replace("_", " ") for n in names)]
    fig = show_images(images, titles, ncols=len(names) + 1, size=size)
    for ax in fig.axes:
        ax.title.set_fontsize(7)
    return fig
