"""How far the best norms for one painting take the one-pass model's shared network.

For each held-out painting of tools/any_style.py, the shared network of the one-pass model is frozen and
only the norms' scales and shifts (the predictor's output for that painting, where they start) are fitted
to that painting by Adam on eq. 5 at the quality measure's weights, on training photos at the measure's
photo size. The painting's network is scored before and after on any_style.py's protocol (held-out photos,
the optimality ratio, content and style terms apart). If the fitted norms still leave the network behind
the peer, what limits the one-pass model is the shared network, not only what the predictor makes of the
painting.

Writes results/one_pass_norm_fit.json.

    python tools/one_pass_norm_fit.py [--steps 150] [--lr 0.01]
    python tools/one_pass_norm_fit.py --model base --name one_pass_norm_fit_base   # another shared network
    python tools/one_pass_norm_fit.py --model base --size 128 --painting-size 128 --name ...   # other sizes

``--model`` is a one-pass model's file (default: the shipped ``anystyle``) or a trained network, whose
convolutions are then the shared network and whose norms (a multi-style model's: its mean style) the fit
starts from, as ``fastst train-anystyle --from`` starts a run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from any_style import held_out_paintings, protocol, terms
from tqdm.auto import tqdm

from fastst import quality
from fastst.anystyle import cached_statistics
from fastst.anystyle_train import CONTENT_LAYER, AnyStyleConfig, per_sample_terms, starting_model
from fastst.data import TRAIN_DIR, PhotoDataset, data_dir, usable_images
from fastst.io import load_image
from fastst.losses import DEFAULT_WEIGHTS, STYLE_LAYERS, gram_matrix
from fastst.results import write_result
from fastst.scale import to_longer_side
from fastst.vgg import loss_network

BATCH = 2


def _set_norms(model, raw: torch.Tensor) -> None:
    """The body's norms take the scales and shifts in ``raw`` (the predictor's output layout)."""
    start = 0
    for name, channels in zip(model.norm_names, model.norm_sizes):
        norm = model.body.get_submodule(name)
        norm.scale, norm.shift = (
            1 + raw[:, start : start + channels],
            raw[:, start + channels : start + 2 * channels],
        )
        start += 2 * channels


def _score(model, raw: torch.Tensor, ref: quality.Reference) -> dict:
    model.eval()
    _set_norms(model, raw.detach())
    with torch.no_grad():
        rows = [
            terms(ref, stem, model.body(photo[None])[0].clamp(0, 1)) for stem, photo in ref.photos.items()
        ]
    return {k: statistics.median(r[k] for r in rows) for k in ("optimality_ratio", "content", "style")}


def fit(
    model, painting, photos: PhotoDataset, vgg, steps: int, lr: float, painting_size: int | None = None
) -> dict:
    """The painting's norms fitted with the shared network frozen, on ``photos`` and the painting at
    ``painting_size`` (default: the measure's style size); its scores before and after."""
    p = protocol(painting)
    ref = quality.reference(p, count=2, progress=False)
    start = model.predictor(cached_statistics(painting).reshape(1, -1)).detach()
    raw = torch.nn.Parameter(start.clone())
    with torch.no_grad():
        style = vgg(to_longer_side(load_image(painting)[None], painting_size or p.style_size), STYLE_LAYERS)
    targets = {name: gram_matrix(style[name]).expand(BATCH, -1, -1) for name in STYLE_LAYERS}
    config = AnyStyleConfig(
        **{k: DEFAULT_WEIGHTS[k] for k in ("content_weight", "style_weight", "tv_weight")}
    )
    before = _score(model, raw, ref)
    optimiser = torch.optim.Adam([raw], lr=lr)
    t0, losses = time.perf_counter(), []
    model.train()
    for step in tqdm(range(steps), desc=f"fit {painting.stem[:24]}", unit="step"):
        batch = torch.stack(
            [photos[(int(i), step * BATCH + j)] for j, i in enumerate(torch.randint(len(photos), (BATCH,)))]
        )
        _set_norms(model, raw)
        with torch.no_grad():
            content = vgg(batch, (CONTENT_LAYER,))[CONTENT_LAYER]
        c, s, tv = per_sample_terms(vgg, model.body(batch), content, targets, config)
        loss = (c + s + tv).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return {
        "before": before,
        "after": _score(model, raw, ref),
        "seconds": time.perf_counter() - t0,
        "norms_moved": (raw - start).norm().item() / start.norm().item(),
        "first_losses": losses[:10],
        "last_losses": losses[-10:],
    }


def table(result: dict) -> dict:
    rows = []
    for painting, row in result["paintings"].items():
        for when in ("before", "after"):
            r = row[when]
            # the start: a one-pass model's predictor's norms, or a trained network's own (its mean style)
            label = "its starting norms" if when == "before" else f"norms fitted ({result['steps']} steps)"
            name = " ".join(painting.split("__")[-2:])
            rows.append(
                [name, label, f"{r['optimality_ratio']:.2f}", f"{r['content']:.1f}", f"{r['style']:.1f}"]
            )
    columns = [
        "painting (held out)",
        "one-pass network",
        "optimality ratio (median)",
        "content term",
        "style term (x2)",
    ]
    return {"columns": columns, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--model", default="anystyle", help="a one-pass model or a trained network")
    parser.add_argument("--name", default="one_pass_norm_fit", help="the result's name")
    parser.add_argument("--size", type=int, help="the photo crops' size (default: the measure's)")
    parser.add_argument("--painting-size", type=int, help="the painting's size (default: the measure's)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, vgg = starting_model(AnyStyleConfig(init=args.model)).eval(), loss_network()
    for p in model.parameters():
        p.requires_grad_(False)
    size = args.size or protocol(held_out_paintings()[0]).photo_size
    photos = PhotoDataset(usable_images(data_dir() / TRAIN_DIR), size)
    paintings = {
        p.stem: fit(model, p, photos, vgg, args.steps, args.lr, args.painting_size)
        for p in held_out_paintings()
    }
    record = {
        "model": args.model,
        "net": model.net_config,
        "steps": args.steps,
        "lr": args.lr,
        "batch": BATCH,
        "size": args.size,
        "painting_size": args.painting_size,
        "paintings": paintings,
    }
    record["tables"] = {"norm_fit": table(record)}
    print(write_result(args.name, record))


if __name__ == "__main__":
    main()
