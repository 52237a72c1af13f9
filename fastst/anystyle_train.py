"""Training the one-pass model (:mod:`fastst.anystyle`): eq. 5 on photos, each stylized after a
painting drawn from many, the style-prediction network and the shared network learning together.

A run folder holds ``config.json``, ``losses.csv``, ``checkpoint.pth`` (resumable: rerun with
``resume=True``, also with more iterations) and ``model.pth`` (fp16, what ships), and ``previews/``:
held-out paintings on held-out photos as training goes.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from fastst.anystyle import (
    STATS_SIZE,
    AnyStyleNet,
    load_anystyle,
    model_file,
    net_options,
    on_network,
    painting_statistics,
    statistics_of,
)
from fastst.data import (
    PhotoDataset,
    ResumableBatchSampler,
    data_dir,
    painting_split,
    test_photos,
    usable_images,
)
from fastst.errors import FaststError
from fastst.io import atomic_torch_save, load_checkpoint, load_image, save_image
from fastst.losses import DEFAULT_WEIGHTS, STYLE_LAYERS, gram_matrix
from fastst.made_styles import DEFAULT_KINDS, check_kinds, made_styles
from fastst.runs import RunFolder
from fastst.runtime import autocast, environment, resolve_device, resolve_precision
from fastst.scale import to_longer_side
from fastst.stylize import load_model, pretrained_path
from fastst.train import start_style
from fastst.transformer import single_style
from fastst.vgg import loss_network

CONTENT_LAYER = "relu3_3"
CSV_HEADER = "iteration,content,style,tv,total,grad_norm,lr,images_per_s,elapsed_s\n"


@dataclass
class AnyStyleConfig:
    """Everything that defines a one-pass training run."""

    out: str = "runs/anystyle"
    data: str = ""  # training photos (default: the project's)
    paintings: str = ""  # folder of paintings (default: the project's, less the held-out ones)
    iterations: int = 8000  # a resumed run may be given more
    batch_size: int = 2  # photos a step, each with its own painting (more steps in the same time)
    image_size: int = 128  # square photo crops
    # each painting's targets at this longer side (0: the crops' size). The quality measure's painting
    # size keeps the strokes' size in pixels the measure judges, on the cheaper small crops
    painting_size: int = 0
    lr: float = 5e-4  # Adam, after a linear warm-up (low: the shared network starts trained)
    warmup: int = 100
    clip: float = 1000.0  # the gradient's norm is cut to at most this
    # where the shared network starts: a trained one-style network (its shape replaces width and blocks), by
    # default the shipped Starry Night, a network that already paints; or a one-pass model's file
    # (the shipped "anystyle" included), to go on training it
    init: str | None = "starry_night"
    # with ``init`` a one-pass model's file: the shipped or saved network whose convolutions replace its
    # shared network (norms of the same sizes, in the same order), for its predictor to learn
    body: str | None = None
    width: float = 0.375
    residual_blocks: int = 3
    # eq. 5 with the quality measure's weights, but lambda_s three times the measure's: at the measure's own,
    # the network drifted back to the photo with a tint, the shallow basin every painting shares
    content_weight: float = DEFAULT_WEIGHTS["content_weight"]
    style_weight: float = 3 * DEFAULT_WEIGHTS["style_weight"]
    tv_weight: float = DEFAULT_WEIGHTS["tv_weight"]
    # each painting also as this many random crops, each a painting of its own: more paintings to learn from
    painting_crops: int = 0
    # each drawn painting seen through a new random view every step: a crop, its hue turned and its
    # saturation changed, its statistics and targets computed from that view
    painting_views: bool = False
    # this many styles made from the paintings and photos (flat colour, mosaics, collages), each a painting of
    # its own: kinds of picture the paintings lack
    made_styles: int = 0
    # the kinds of made style, taken in turn (fastst.made_styles.KINDS), comma-separated
    made_kinds: str = ",".join(DEFAULT_KINDS)
    # False: the shared network stays as it starts and only the style-prediction network learns
    train_shared: bool = True
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 1
    log_every: int = 10
    checkpoint_every: int = 50
    preview_every: int = 500

    # fields that may change when a run resumes
    RESUMABLE = (
        "out",
        "iterations",
        "device",
        "precision",
        "num_workers",
        "log_every",
        "checkpoint_every",
        "preview_every",
    )


def _painting_paths(config: AnyStyleConfig) -> list[Path]:
    if config.paintings:
        return usable_images(config.paintings)
    train, _ = painting_split()
    missing = [p for p in train if not p.is_file()]
    if len(missing) == len(train):
        raise FaststError("no paintings in the data folder: run `fastst data fetch --paintings` first")
    return [p for p in train if p.is_file()]


def _random_crop(image: torch.Tensor, low: float, high: float, draw: torch.Generator) -> torch.Tensor:
    """A random crop of a (3, H, W) image: ``low`` to ``high`` of its height and width (one fraction)."""
    h, w = image.shape[-2:]
    f = low + (high - low) * float(torch.rand((), generator=draw))
    ch, cw = max(16, round(h * f)), max(16, round(w * f))
    top = int(torch.randint(h - ch + 1, (), generator=draw))
    left = int(torch.randint(w - cw + 1, (), generator=draw))
    return image[:, top : top + ch, left : left + cw]


def _crops(image: torch.Tensor, count: int, seed: int) -> list[torch.Tensor]:
    """``count`` random crops of a (3, H, W) image, each half to four fifths of its height and width."""
    draw = torch.Generator().manual_seed(seed)
    return [_random_crop(image, 0.5, 0.8, draw) for _ in range(count)]


def _colour_matrix(hue: float, saturation: float) -> torch.Tensor:
    """The 3x3 RGB matrix that turns colours by ``hue`` radians about the grey axis and scales their
    distance from grey by ``saturation``; grey stays grey."""
    axis = torch.full((3,), 3**-0.5)
    k = torch.tensor([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    turn = torch.eye(3) + torch.sin(torch.tensor(hue)) * k + (1 - torch.cos(torch.tensor(hue))) * (k @ k)
    grey = torch.full((3, 3), 1 / 3)
    return turn @ (grey + saturation * (torch.eye(3) - grey))


def painting_view(image: torch.Tensor, draw: torch.Generator) -> torch.Tensor:
    """A random view of a (3, H, W) painting: a crop of half to all of each side (one fraction for both),
    and, one time in two, its colours turned about the grey axis by any angle and their saturation scaled
    by 0.6 to 1.5."""
    view = _random_crop(image, 0.5, 1.0, draw)
    hue, saturation, turn = torch.rand(3, generator=draw).tolist()
    if turn < 0.5:
        m = _colour_matrix((2 * hue - 1) * torch.pi, 0.6 + 0.9 * saturation).to(view)
        view = torch.einsum("ij,jhw->ihw", m, view.float()).clamp(0, 1)
    return view


@torch.no_grad()
def describe_painting(image: torch.Tensor, vgg, size: int) -> tuple[torch.Tensor, list[torch.Tensor], float]:
    """A (3, H, W) painting's statistics for the predictor, its Gram matrices of eq. 2 (one per style layer)
    with its longer side at ``size``, and their energy; one VGG-16 pass when ``size`` is the statistics'."""
    feats = vgg(to_longer_side(image[None], size), STYLE_LAYERS)
    stats = statistics_of(feats)[0] if size == STATS_SIZE else painting_statistics(image, vgg)[0]
    grams = [gram_matrix(feats[name].float())[0] for name in STYLE_LAYERS]
    return stats, grams, sum(float(g.pow(2).sum()) for g in grams)


@torch.no_grad()
def painting_targets(
    paths: list[Path],
    size: int,
    cache: Path,
    device,
    progress: bool = True,
    crops: int = 0,
    made: int = 0,
    photos: list[Path] = (),
    kinds: tuple[str, ...] = DEFAULT_KINDS,
) -> dict:
    """Per painting (and per each of its ``crops`` random crops, after it), then per each of ``made`` styles
    of ``kinds`` made from the paintings and ``photos`` (:func:`fastst.made_styles.made_styles`): the
    predictor's statistics, the Gram matrices of eq. 2 at ``size`` (its longer side), and its Gram energy;
    computed once and kept in ``cache`` (keyed by the files, sizes, crops and made styles)."""
    described = [[str(p.name), p.stat().st_size] for p in paths] + [size, STATS_SIZE]
    described += ([crops] if crops else []) + ([made, len(photos)] if made else [])
    described += [list(kinds)] if made and tuple(kinds) != DEFAULT_KINDS else []
    key = hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]
    if cache.is_file():
        saved = load_checkpoint(cache, "painting cache")
        if isinstance(saved, dict) and saved.get("key") == key:
            return saved
    vgg = loss_network(device=device)
    stats, grams, energy = [], {name: [] for name in STYLE_LAYERS}, []
    names = []

    def describe(name: str, image: torch.Tensor) -> None:
        names.append(name)
        s, g, e = describe_painting(image.to(device), vgg, size)
        stats.append(s.cpu())
        for layer, gram in zip(STYLE_LAYERS, g):
            grams[layer].append(gram.cpu().half())
        energy.append(e)

    for i, path in enumerate(tqdm(paths, desc="paintings", unit="img", disable=not progress)):
        image = load_image(path)
        for k, view in enumerate([image, *_crops(image, crops, seed=i)]):
            describe(path.name if k == 0 else f"{path.name}#crop{k}", view)
    styles = made_styles(paths, list(photos), made, kinds=tuple(kinds))
    for name, image in tqdm(
        styles, total=made, desc="made styles", unit="img", disable=not progress or not made
    ):
        describe(name, image)
    saved = {
        "key": key,
        "names": names,
        "stats": torch.stack(stats),
        "grams": {name: torch.stack(v) for name, v in grams.items()},
        "energy": torch.tensor(energy),
    }
    atomic_torch_save(saved, cache)
    return saved


def per_sample_terms(vgg, y_hat, content_features, targets, config: AnyStyleConfig):
    """Eq. 1, 3 and 4, weighted as in eq. 5, one value per photo of the batch (each photo has its own
    painting's Gram targets)."""
    feats = vgg(y_hat, (*STYLE_LAYERS, CONTENT_LAYER))
    content = (feats[CONTENT_LAYER].float() - content_features.float()).pow(2).flatten(1).mean(1)
    style = sum(
        (gram_matrix(feats[name]) - targets[name].float()).pow(2).sum(dim=(1, 2)) for name in STYLE_LAYERS
    )
    img = y_hat.float()
    tv = (img[..., :, 1:] - img[..., :, :-1]).pow(2).sum(dim=(1, 2, 3)) + (
        img[..., 1:, :] - img[..., :-1, :]
    ).pow(2).sum(dim=(1, 2, 3))
    return config.content_weight * content, config.style_weight * style, config.tv_weight * tv


def _preview(model: AnyStyleNet, device, run: Path, iteration: int) -> None:
    """Held-out paintings (rows) on held-out photos (columns) at 256 px."""
    _, held_out = painting_split()
    paintings = [p for p in held_out if p.is_file()][:4]
    photos = list(test_photos(limit=3, max_size=256).values())
    if not paintings or not photos:
        return
    model.eval()
    rows = []
    for path in paintings:
        net = model.for_painting(painting_statistics(load_image(path).to(device)).cpu())
        row = [to_longer_side(load_image(path)[None], 256)[0]]
        row += [net(p[None])[0].clamp(0, 1) for p in photos]
        h = 256
        rows.append(
            torch.cat(
                [
                    torch.nn.functional.interpolate(x[None], size=(h, round(h * x.shape[-1] / x.shape[-2])))[
                        0
                    ]
                    for x in row
                ],
                dim=-1,
            )
        )
    width = max(r.shape[-1] for r in rows)
    grid = torch.cat([torch.nn.functional.pad(r, (0, width - r.shape[-1])) for r in rows], dim=-2)
    (run / "previews").mkdir(exist_ok=True)
    save_image(grid, run / "previews" / f"{iteration:06d}.jpg")
    model.train()


def starting_model(config: AnyStyleConfig, stats: torch.Tensor | None = None) -> AnyStyleNet:
    """Random weights (no ``init``); a one-pass model's file, to go on training it (with a new optimiser),
    reading the statistics as it learned to; or a one-style network, whose convolutions and norms the
    shared network starts from (a multi-style model: its mean style). A new predictor standardises its
    input by the (N, D) ``stats`` of the training paintings, where given."""
    path = pretrained_path(config.init) if config.init else None
    saved = load_checkpoint(path, "model") if path is not None and path.is_file() else None
    if isinstance(saved, dict) and "anystyle" in saved:
        model = load_anystyle(path)
        return (on_network(model, config.body) if config.body else model).train()
    if config.body:
        raise FaststError("--body goes with --from a one-pass model's file")
    if not config.init:
        model = AnyStyleNet(config.width, config.residual_blocks)
    else:
        initial = load_model(config.init)
        if initial.styles > 1:
            initial = single_style(initial, start_style(initial, "mean"))
        model = AnyStyleNet(**net_options(initial.config))
        model.start_from(initial)
    if stats is not None:
        model.predictor.mean.copy_(stats.mean(0))
        model.predictor.std.copy_(stats.std(0).clamp_min(1e-3))
    return model


def train_anystyle(config: AnyStyleConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train (or resume) a one-pass model; returns its ``model.pth``."""
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    run = RunFolder(config.out)
    run.create()
    t = _AnyStyleTraining(config, run, _resumed_state(run, config, resume), device, precision, progress)
    bar = tqdm(
        total=config.iterations, initial=t.start, desc="one-pass model", unit="it", disable=not progress
    )
    sums, count, t_log = torch.zeros(5), 0, time.perf_counter()
    iteration = done = t.start
    try:
        for iteration, batch in enumerate(t.loader, start=t.start + 1):
            t0 = time.perf_counter()
            terms = t.step(batch, iteration)
            t.elapsed += time.perf_counter() - t0
            done = iteration
            sums += torch.stack(terms).detach().float().cpu()
            count += 1
            bar.update(1)
            if iteration % config.log_every == 0 or iteration == config.iterations:
                now = time.perf_counter()
                row = (sums / count).tolist()
                t.log(iteration, row, count * config.batch_size / (now - t_log))
                bar.set_postfix(content=f"{row[0]:.3g}", style=f"{row[1]:.3g}", total=f"{row[3]:.3g}")
                sums, count, t_log = torch.zeros(5), 0, now
            if iteration % config.checkpoint_every == 0 or iteration == config.iterations:
                t.save(iteration)
            if iteration % config.preview_every == 0 or iteration == config.iterations:
                _preview(t.model, device, run.root, iteration)
    except KeyboardInterrupt:
        bar.close()
        if done > t.start:
            t.save(done)
        raise KeyboardInterrupt(
            f"iteration {done} is saved in {run.checkpoint}: continue with --resume"
        ) from None
    bar.close()
    if iteration == t.start and not t.resumed:
        t.save(iteration)
    return run.model


def _resumed_state(run: RunFolder, config: AnyStyleConfig, resume: bool) -> dict | None:
    """The checkpoint to continue from (trained with the same settings, less those that may change), or
    None for a new run."""
    if resume and run.checkpoint.is_file():
        state = load_checkpoint(run.checkpoint)
        # a field added since the run began holds its default
        saved = {**asdict(AnyStyleConfig()), **state["config"]}
        saved = {k: v for k, v in saved.items() if k not in AnyStyleConfig.RESUMABLE}
        now = {k: v for k, v in asdict(config).items() if k not in AnyStyleConfig.RESUMABLE}
        if saved != now:
            changed = sorted(k for k in now if saved.get(k) != now[k])
            raise FaststError(f"{run.checkpoint} was trained with other settings ({', '.join(changed)})")
        return state
    if run.checkpoint.is_file():
        raise FaststError(f"{run.root} holds a run already: pass --resume to continue it, or another --out")
    return None


class _AnyStyleTraining:
    """What a one-pass run needs, built from its config (and its checkpoint when resumed): each painting's
    targets, the model and its optimiser, the draw of a painting for each photo, the data loader; the
    step, and the log and checkpoint it writes."""

    def __init__(
        self, config: AnyStyleConfig, run: RunFolder, state: dict | None, device, precision, progress
    ):
        self.config, self.run, self.device, self.precision = config, run, device, precision
        self.painting_size = config.painting_size or config.image_size
        self.resumed = state is not None
        photos = usable_images(config.data or data_dir() / "train")
        paintings = _painting_paths(config)
        if config.painting_views and (config.painting_crops or config.made_styles):
            # the views are drawn from the painting files, one per painting; crops and made styles have none
            raise FaststError(
                "painting views go with the paintings alone, not with painting crops or made styles"
            )
        try:  # refused now, not after the paintings' targets
            kinds = check_kinds(tuple(config.made_kinds.split(",")))
        except ValueError as e:
            raise FaststError(str(e)) from None
        targets = painting_targets(
            paintings,
            self.painting_size,
            run.root / "paintings.pt",
            device,
            progress,
            config.painting_crops,
            config.made_styles,
            photos,
            kinds,
        )
        self.paintings = len(targets["names"])
        stats, energy = targets["stats"].to(device), targets["energy"]
        self.stats, self.grams = stats, {name: g.to(device) for name, g in targets["grams"].items()}
        # each painting's objective scaled by its Gram energy, so that no painting's loss outweighs the rest
        self.median_energy = statistics.median(energy.tolist())
        self.balance = (self.median_energy / energy).clamp(0.25, 4).to(device)
        # with painting_views, the paintings themselves (longer side at most twice the statistics' size)
        self.images = (
            [
                _as_bytes(load_image(p), 2 * STATS_SIZE)
                for p in tqdm(paintings, desc="paintings in memory", unit="img", disable=not progress)
            ]
            if config.painting_views
            else None
        )

        torch.manual_seed(config.seed)
        self.model = starting_model(config, stats.cpu()).to(device)
        if not config.train_shared:
            self.model.body.requires_grad_(False)
        learning = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(learning, lr=config.lr)
        self.draw = torch.Generator().manual_seed(config.seed)  # which painting each photo gets
        self.start, self.elapsed = 0, 0.0  # the iteration the loop starts after
        if state:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.draw.set_state(state["draw"])
            torch.set_rng_state(state["rng"])
            self.start, self.elapsed = state["iteration"], state["elapsed"]
        self.meta = {
            "config": asdict(config),
            "environment": environment(device, precision),
            "photos": len(photos),
            "paintings": len(paintings),
            "paintings_with_crops": self.paintings,
            "net": self.model.net_config,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }
        run.write_json(run.config, self.meta)
        if not state or not run.losses.is_file():
            run.losses.write_text(CSV_HEADER)
        else:
            _truncate(run.losses, self.start)
        sampler = ResumableBatchSampler(
            len(photos), config.batch_size, config.seed, self.start, config.iterations
        )
        self.loader = torch.utils.data.DataLoader(
            PhotoDataset(photos, config.image_size, config.seed),
            batch_sampler=sampler,
            num_workers=config.num_workers,
            prefetch_factor=4 if config.num_workers else None,
        )
        self.vgg = loss_network(device=device)
        self.model.train()

    def step(self, batch: torch.Tensor, iteration: int) -> tuple[torch.Tensor, ...]:
        """One optimiser step, each photo of ``batch`` towards a painting drawn for it; returns the batch's
        mean content, style, TV and total terms and the gradient's norm."""
        config, device = self.config, self.device
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr * min(1.0, iteration / max(1, config.warmup))
        batch = batch.to(device)
        pick = torch.randint(self.paintings, (batch.shape[0],), generator=self.draw).to(device)
        with autocast(device, self.precision):
            with torch.no_grad():
                content_features = self.vgg(batch, (CONTENT_LAYER,))[CONTENT_LAYER]
                if self.images is not None:
                    stats, targets, balance = self._views(pick)
                else:
                    stats, balance = self.stats[pick], self.balance[pick]
                    targets = {k: g[pick] for k, g in self.grams.items()}
            y_hat = self.model(batch, stats)
            c, s, tv = per_sample_terms(self.vgg, y_hat, content_features, targets, config)
            total = c + s + tv
            loss = (balance * total).mean()
        if not torch.isfinite(loss):
            raise FaststError(
                f"the loss became {loss.item()} at iteration {iteration}; the last checkpoint "
                f"({self.run.checkpoint}) is intact. Lower --lr"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.clip)
        self.optimizer.step()
        return c.mean(), s.mean(), tv.mean(), total.mean(), norm

    def _views(self, pick: torch.Tensor) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """For each picked painting, a new random view (:func:`painting_view`): its statistics, its Gram
        targets at the paintings' size, and its balance weight."""
        stats, grams, balance = [], {name: [] for name in STYLE_LAYERS}, []
        for i in pick.tolist():
            # in fp32: the colour turn under autocast would give bf16, which the antialiased resize refuses
            view = painting_view(self.images[i].to(self.device).float() / 255, self.draw).float()
            s, g, energy = describe_painting(view, self.vgg, self.painting_size)
            stats.append(s)
            for name, gram in zip(STYLE_LAYERS, g):
                grams[name].append(gram)
            balance.append(min(4.0, max(0.25, self.median_energy / energy)))
        targets = {name: torch.stack(v) for name, v in grams.items()}
        return torch.stack(stats), targets, torch.tensor(balance, device=self.device)

    def log(self, iteration: int, row: list[float], images_per_s: float) -> None:
        """A line of ``losses.csv``: ``row``, the mean terms and gradient norm since the last line."""
        with open(self.run.losses, "a") as f:
            f.write(
                f"{iteration},{row[0]:.6g},{row[1]:.6g},{row[2]:.6g},{row[3]:.6g},{row[4]:.4g},"
                f"{self.optimizer.param_groups[0]['lr']:.3g},{images_per_s:.3g},{self.elapsed:.1f}\n"
            )

    def save(self, iteration: int) -> None:
        """The checkpoint, and the model file as it stands."""
        atomic_torch_save(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "draw": self.draw.get_state(),
                "rng": torch.get_rng_state(),
                "iteration": iteration,
                "elapsed": self.elapsed,
                "config": asdict(self.config),
            },
            self.run.checkpoint,
        )
        model = model_file(self.model, iteration=iteration, elapsed=self.elapsed, **self.meta)
        atomic_torch_save(model, self.run.model)


def _as_bytes(image: torch.Tensor, size: int) -> torch.Tensor:
    """A (3, H, W) image in [0, 1] as bytes, its longer side brought down to at most ``size``."""
    if max(image.shape[-2:]) > size:
        image = to_longer_side(image[None], size)[0]
    return (image.clamp(0, 1) * 255).round().byte()


def _truncate(losses: Path, iteration: int) -> None:
    lines = losses.read_text().splitlines(keepends=True)
    kept = [lines[0]] + [line for line in lines[1:] if int(line.split(",")[0]) <= iteration]
    losses.write_text("".join(kept))
