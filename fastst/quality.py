"""The quality measure: how close a network's single pass comes to optimising each photo.

For each held-out photo, eq. 5 of the network's output is compared with per-image L-BFGS on the
same objective (Gatys et al.'s method, the baseline the network replaces):

- the *optimality ratio*: the network's objective over the best L-BFGS reaches in N iterations from
  the content image (1.0: as good as optimising each photo);
- *Johnson et al.'s Fig. 5 protocol*: the first L-BFGS iteration, started from noise as their
  ``slow_neural_style.lua`` starts, whose objective is at or below the network's.

Both sides score images clamped to [0, 1] in fp32. The L-BFGS curves do not depend on the network:
they are computed once per style, photo and setting and kept as JSON files (``results/lbfgs/``),
so scoring a checkpoint costs one forward pass per photo.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from fastst.data import TEST_DIR, data_dir
from fastst.errors import FaststError
from fastst.gatys import gatys
from fastst.io import atomic_path, file_digest, list_images, load_checkpoint, load_image, project_folder
from fastst.losses import DEFAULT_WEIGHTS, STYLE_LAYERS, PerceptualLoss
from fastst.results import command_line, machine, timestamp
from fastst.runs import RunFolder
from fastst.strength import calibrated_style_weight
from fastst.stylize import load_model, stylize
from fastst.transformer import TransformerNet
from fastst.vgg import loss_network

CACHE_ENV = "FASTST_LBFGS_CACHE"


@dataclass(frozen=True)
class Protocol:
    """What a score means: the objective (eq. 5 weights, style image size) and the baseline's budget."""

    style: str  # style image path
    style_weight: float  # lambda_s of the objective; see `evaluation_protocol`
    content_weight: float = DEFAULT_WEIGHTS["content_weight"]
    tv_weight: float = DEFAULT_WEIGHTS["tv_weight"]
    content_layer: str = "relu3_3"
    style_layers: tuple = STYLE_LAYERS
    style_size: int = 256  # longer side of the style image
    photo_size: int = 256  # longer side of each held-out photo
    iterations: int = 500  # L-BFGS iterations from the content image (the ratio's reference)
    noise_iterations: int = 500  # L-BFGS iterations from noise (Fig. 5 protocol)

    def weights(self) -> dict:
        return {
            "content_weight": self.content_weight,
            "style_weight": self.style_weight,
            "tv_weight": self.tv_weight,
            "content_layer": self.content_layer,
            "style_layers": tuple(self.style_layers),
        }


def evaluation_protocol(style: str | os.PathLike, **overrides) -> Protocol:
    """The fixed objective every training recipe is scored on for ``style``: the default weights,
    with lambda_s the style's calibrated weight at strength 1 (which for The Starry Night is the
    default's), whatever weights a recipe trains with."""
    style_size = overrides.get("style_size", Protocol.style_size)
    if "style_weight" not in overrides:
        overrides["style_weight"] = calibrated_style_weight(load_image(style, style_size))
    return Protocol(style=str(style), **overrides)


def cache_dir() -> Path:
    """``$FASTST_LBFGS_CACHE``, else ``results/lbfgs/`` of the checkout (committed, so that scoring a
    model needs no L-BFGS run where its curves already exist)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return project_folder("results", "FASTST_RESULTS") / "lbfgs"


def _key_digest(key: dict) -> str:
    """A short name for what a cached file holds."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]


def lbfgs_curve(
    protocol: Protocol,
    photo_path: Path,
    init: str,
    iterations: int,
    cache: Path | None = None,
    progress: bool = True,
) -> list[float]:
    """Eq. 5 after 0, 1, ..., ``iterations`` L-BFGS iterations on one photo, from a cached file
    where one with at least that many iterations exists, else computed and cached."""
    cache = cache or cache_dir()
    key = {
        "style_sha256": file_digest(protocol.style),
        "photo_sha256": file_digest(photo_path),
        "init": init,
        **{
            k: v for k, v in protocol.__dict__.items() if k not in ("style", "iterations", "noise_iterations")
        },
        "style_layers": list(protocol.style_layers),
    }
    path = cache / f"{Path(protocol.style).stem}_{photo_path.stem}_{init}_{_key_digest(key)}.json"
    if path.exists():
        saved = json.loads(path.read_text())
        if len(saved["objective"]) > iterations:
            return saved["objective"][: iterations + 1]
    photo = load_image(photo_path, protocol.photo_size)
    style = load_image(protocol.style, protocol.style_size)
    result = gatys(
        photo,
        style,
        iterations,
        "lbfgs",
        init=init,
        vgg=loss_network(),
        progress=progress,
        **protocol.weights(),
    )
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(
            json.dumps(
                {
                    **key,
                    "style": Path(protocol.style).name,
                    "photo": photo_path.name,
                    "iterations": iterations,
                    "objective": result.objective,
                    # where and by what the curve was computed; not part of the key, so that a curve
                    # cached before these were recorded is still found
                    "machine": machine(measure=False),
                    "command": command_line(),
                    "date": timestamp(),
                }
            )
            + "\n"
        )
    return result.objective


def network_objective(
    model: TransformerNet,
    photo: torch.Tensor,
    criterion: PerceptualLoss,
    content_features: torch.Tensor | None = None,
) -> float:
    """Eq. 5 of the network's single pass on one photo, in fp32, output clamped (eval mode);
    ``content_features``: the photo's own, where already computed."""
    out = stylize(model.eval(), photo, precision="fp32")
    with torch.no_grad():
        return criterion(out[None], photo[None], content_features).total.item()


def first_at_or_below(curve: list[float], value: float) -> int | None:
    """The first iteration count whose objective is at or below ``value`` (None: never)."""
    return next((i for i, v in enumerate(curve) if v <= value), None)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


@dataclass
class Reference:
    """The baseline's curves for one protocol and photo set: computed once, reused per model."""

    protocol: Protocol
    photos: dict  # stem -> (3, H, W) tensor
    content_curves: dict  # stem -> objective after 0..N iterations from the content image
    noise_curves: dict  # stem -> the same from noise
    criterion: PerceptualLoss
    content_features: dict  # stem -> the photo's features at the content layer (the same for every model)
    key: str  # names what a score against this reference means: the protocol and the photos' bytes


def reference(
    protocol: Protocol,
    photos_dir: str | os.PathLike | None = None,
    count: int | None = None,
    cache: Path | None = None,
    progress: bool = True,
) -> Reference:
    """The L-BFGS curves of ``protocol`` on the held-out photos (default: the test set)."""
    folder = Path(photos_dir) if photos_dir else data_dir() / TEST_DIR
    paths = list_images(folder)[:count] if folder.is_dir() else []
    if not paths:
        raise FaststError(f"no held-out photos in {folder}")
    content, noise = {}, {}
    for path in tqdm(paths, desc="L-BFGS reference", unit="photo", disable=not progress):
        content[path.stem] = lbfgs_curve(protocol, path, "content", protocol.iterations, cache, progress)
        noise[path.stem] = lbfgs_curve(protocol, path, "noise", protocol.noise_iterations, cache, progress)
    photos = {p.stem: load_image(p, protocol.photo_size) for p in paths}
    criterion = PerceptualLoss(
        loss_network(), load_image(protocol.style, protocol.style_size), **protocol.weights()
    )
    features = {stem: criterion.content_features(photo[None]) for stem, photo in photos.items()}
    key = {
        **protocol.__dict__,
        "style": file_digest(protocol.style),
        "style_layers": list(protocol.style_layers),
        "photos": [file_digest(p) for p in paths],
    }
    return Reference(protocol, photos, content, noise, criterion, features, _key_digest(key))


def result_reference(result: dict, style: str | os.PathLike, progress: bool = True) -> Reference:
    """The reference a time-to-quality ``result`` of ``style`` was scored against: the style's evaluation
    protocol with the result's L-BFGS budgets, on the test set (its curves are cached)."""
    budgets = {k: result["protocol"][k] for k in ("iterations", "noise_iterations")}
    return reference(evaluation_protocol(style, **budgets), progress=progress)


def score(model: TransformerNet, ref: Reference) -> dict:
    """The quality of ``model`` against ``ref``: per photo and the median over photos.

    ``optimality_ratio``: the network's objective over the lowest the content-start curve reaches;
    ``lbfgs_equivalent``: Fig. 5's first noise-start iteration at or below the network (None if the
    baseline never gets there within its budget, i.e. the network beats it)."""
    rows = []
    for stem, photo in ref.photos.items():
        value = network_objective(model, photo, ref.criterion, ref.content_features[stem])
        best = min(ref.content_curves[stem])
        noise = ref.noise_curves[stem]
        rows.append(
            {
                "photo": stem,
                "network_objective": value,
                "lbfgs_best": best,
                "optimality_ratio": value / best,
                "lbfgs_equivalent": first_at_or_below(noise, value),
                "unchanged_photo_objective": ref.content_curves[stem][0],
            }
        )
    beaten = sum(r["lbfgs_equivalent"] is None for r in rows)
    equivalents = sorted(
        (r["lbfgs_equivalent"] if r["lbfgs_equivalent"] is not None else float("inf")) for r in rows
    )
    median_equivalent = statistics.median(equivalents)
    return {
        "optimality_ratio": _median(r["optimality_ratio"] for r in rows),
        "lbfgs_equivalent": median_equivalent if median_equivalent != float("inf") else None,
        "lbfgs_equivalent_beyond_budget": beaten,
        "photos": rows,
    }


def fig5_threshold(ref: Reference, iterations: int) -> float:
    """The optimality ratio a network needs to match ``iterations`` of Fig. 5's L-BFGS from noise, the
    median over ``ref``'s photos: on each, the lowest objective of the noise-start curve before that
    iteration over the lowest of the content-start curve (a lower ratio than this scores more iterations)."""
    if not 1 <= iterations < min(len(curve) for curve in ref.noise_curves.values()):
        raise FaststError(f"Fig. 5 counts 1 to {ref.protocol.noise_iterations} iterations, not {iterations}")
    return statistics.median(
        min(ref.noise_curves[stem][:iterations]) / min(ref.content_curves[stem]) for stem in ref.photos
    )


def score_file(model_path: str | os.PathLike, ref: Reference, style: str | None = None) -> dict:
    """The quality of a model file (of one of its styles, for a multi-style model)."""
    return score(load_model(model_path, style=style), ref)


def curve(
    run: str | os.PathLike, ref: Reference, progress: bool = True, style: str | None = None
) -> list[dict]:
    """Quality against training time: every kept set of weights of a run (``weights/``), scored
    (for ``style`` of a multi-style run). Each score is kept beside the weights, under the weights
    file's hash and the reference's key, so that scoring a run again scores only what is new."""
    folder = RunFolder(run).weights
    paths = sorted(folder.glob("*.pth")) if folder.is_dir() else []
    if not paths:
        raise FaststError(f"{run} kept no weights to score (train with --keep-weights-every N)")
    kept = folder / f"scores_{ref.key}{f'_{style}' if style else ''}.json"
    scores = json.loads(kept.read_text()) if kept.exists() else {}
    rows = []
    for path in tqdm(paths, desc=f"scoring {Path(run).name}", unit="ckpt", disable=not progress):
        digest = file_digest(path)
        if digest not in scores:
            saved = load_checkpoint(path, "kept weights")
            result = score_file(path, ref, style)
            scores[digest] = {
                "iteration": saved["iteration"],
                "elapsed_s": saved["elapsed_s"],
                **{k: v for k, v in result.items() if k != "photos"},
            }
            try:
                with atomic_path(kept) as tmp:
                    tmp.write_text(json.dumps(scores, indent=1) + "\n")
            except OSError:  # a run folder that cannot be written to is scored without keeping scores
                pass
        rows.append(dict(scores[digest]))
    return rows
