"""What the commands that draw figures or run the notebooks do (``preview``, ``notebooks run``,
``notebooks strip``): one handler each, given the options :mod:`fastst.cli` parsed. Apart from
:mod:`fastst.commands` because they load the plotting code, which the other commands do not need."""

from __future__ import annotations

from pathlib import Path

from fastst.data import TEST_DIR, data_dir
from fastst.errors import FaststError
from fastst.io import list_images, load_image
from fastst.notebooks import run, strip
from fastst.plotting import save_fig, show_images
from fastst.strength import calibrated_style_weight, preview


def preview_command(args) -> int:
    out = Path(args.out)
    if not out.parent.is_dir():
        raise FaststError(f"output folder does not exist: {out.parent}")
    style = load_image(args.style, args.style_size)
    folder = Path(args.photos) if args.photos else data_dir() / TEST_DIR
    paths = list_images(folder)[: args.count] if folder.is_dir() else []
    if not paths:
        raise FaststError(f"no photos in {folder}")
    photos = {p.stem: load_image(p, args.size) for p in paths}
    images = preview(style, photos, args.strengths, args.iterations)
    grid = [photos[stem] for stem in photos] + [images[(s, stem)] for s in args.strengths for stem in photos]
    titles = list(photos) + [
        f"strength {s:g} (lambda_s {calibrated_style_weight(style, s):.3g})"
        for s in args.strengths
        for _ in photos
    ]
    fig = show_images(grid, titles, ncols=len(photos), size=2.6)
    written = save_fig(
        fig,
        out.stem,
        {"style": str(args.style), "strengths": args.strengths, "iterations": args.iterations},
        folder=out.parent,
    )
    print(
        f"wrote {written[0]}: rows are strengths {', '.join(f'{s:g}' for s in args.strengths)}; "
        f"train with --style-strength S"
    )
    return 0


def notebooks_run_command(args) -> int:
    seconds = run(preset=args.preset, html=args.html, only=args.only)
    print(
        f"ran {len(seconds)} notebooks in {sum(seconds.values()) / 60:.1f} min: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    )
    return 0


def notebooks_strip_command(args) -> int:
    changed = strip()
    print(f"cleared outputs of {len(changed)} notebooks")
    return 0
