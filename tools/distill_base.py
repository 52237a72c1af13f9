"""The base's styles in a smaller network, taught by the base itself: distillation.

The smaller base trained on eq. 5 from scratch collapsed to the tinted photo (docs/many_styles.md). Here
the student (by default the shipped Starry Night's network: folded input and output, half width, three
residual blocks; its norms copied to every style) learns to give the base's own picture: each step takes
a batch of crops of training photos, each with a style drawn at random, and lowers the distance between
the student's picture and the base's, in pixels (L1) and in VGG-16's relu2_2 features (L1, relative to
the base's), and with ``--style-weight`` in the Gram matrices of eq. 3's style layers (squared distance,
relative to the base's): a student that cannot draw the base's strokes where the base draws them is still
asked for strokes of the same kind, not their average. No style image enters; the base is the teacher.
``--student`` may also be a multi-style model file of the teacher's styles (a run's model.pth), to go on
from it. With ``--style NAME`` the student learns that one style of the teacher alone, as a one-style
network (a model file named after the style, which `fastst stylize --style NAME` prefers over the base);
a multi-style ``--student`` then starts from its norms of that style.

Resumable (run it again to continue); writes runs/distill_base/model.pth (a multi-style model file that
`fastst stylize --model` and tools/fast_base.py read) and its log, losses.csv.

    python tools/distill_base.py --iterations 6000
    python tools/fast_base.py runs/distill_base/model.pth --name fast_base_distilled
    python tools/distill_base.py --style the_scream --student runs/distill_base/model.pth --iterations 1500
    python tools/distill_base.py --style the_scream --fresh-width 0.75 --style-weight 2 --iterations 3000 \
        --out runs/distill_the_scream_w75                  # another width, from random weights
    python tools/distill_base.py --style the_scream --pruned-width 0.75 --style-weight 2 --iterations 3000 \
        --out runs/distill_the_scream_w75_pruned           # the same shape, its middle cut from the base
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from fastst.config import runs_dir
from fastst.data import data_dir, random_crop, usable_images
from fastst.inference import phase_taps
from fastst.io import atomic_torch_save, load_checkpoint
from fastst.losses import STYLE_LAYERS, gram_matrix
from fastst.runtime import autocast, environment, resolve_precision
from fastst.stylize import load_model, model_styles
from fastst.transformer import TransformerNet
from fastst.vgg import loss_network

FEATURE_LAYER = "relu2_2"


def student_from(source: str, styles: int) -> TransformerNet:
    """A multi-style network of ``source``'s shape, its weights, each norm's scale and shift copied to
    every style (``source`` one-style)."""
    one = load_model(source)
    net = TransformerNet(**{**one.config, "styles": styles})
    weights = {}
    for key, tensor in one.state_dict().items():
        target = net.state_dict()[key]
        weights[key] = tensor.expand_as(target).clone() if tensor.shape != target.shape else tensor
    net.load_state_dict(weights)
    return net


def deepened(net: TransformerNet, blocks: int) -> TransformerNet:
    """``net`` with ``blocks`` residual blocks: its own first, then new ones that start as the identity
    (the last norm's scale and shift zero), so the student starts where ``net`` is."""
    if blocks < net.config["residual_blocks"]:
        raise SystemExit(
            f"--residual-blocks {blocks} is fewer than the student's {net.config['residual_blocks']}"
        )
    deeper = TransformerNet(**{**net.config, "residual_blocks": blocks})
    deeper.load_state_dict(net.state_dict(), strict=False)
    with torch.no_grad():
        for block in list(deeper.residuals)[net.config["residual_blocks"] :]:
            for parameter in block.body[-1].parameters():
                parameter.zero_()
    return deeper.train(net.training)


def _convs(module: torch.nn.Module) -> list[torch.nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]


def _norms(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in module.modules() if isinstance(m, torch.nn.InstanceNorm2d)]


def pruned(teacher: TransformerNet, shape: dict, probe: torch.Tensor) -> TransformerNet:
    """A one-style network of ``shape`` (folded ends, ``shuffle`` 2, narrower and with fewer residual blocks
    than the one-style ``teacher``) whose middle is the teacher's own, cut down: every layer between the
    ends keeps the channels whose instance norm scales weigh most (the residual stream's by the sum over the
    norms that write it), and the residual blocks kept are those that change their input most on ``probe``
    (a batch of photos), in order. Only the folded ends, which the teacher has no counterpart for, start
    from random weights."""
    if teacher.config.get("shuffle", 1) != 1 or shape.get("shuffle") != 2:
        raise SystemExit("--pruned-width cuts a network with 9x9 ends (the base) into one with folded ends")
    if teacher.config["upsample"] != "resize" or shape.get("upsample", "resize") != "resize":
        raise SystemExit("--pruned-width needs both networks to upsample by resizing")
    if not 0 < shape["width"] <= teacher.config["width"]:
        raise SystemExit(
            f"--pruned-width must be above 0 and at most the teacher's {teacher.config['width']}"
        )
    if shape["residual_blocks"] > teacher.config["residual_blocks"]:
        raise SystemExit(
            f"the student's residual blocks must be at most the teacher's {teacher.config['residual_blocks']}"
        )
    net = TransformerNet(**shape)
    t_enc, t_dec = _norms(teacher.encoder), _norms(teacher.decoder)
    blocks = list(teacher.residuals)
    with torch.no_grad():
        h = teacher.encoder(probe)
        change = []
        for block in blocks:
            after = block(h)
            change.append(((after - h).norm() / h.norm()).item())
            h = after
    kept = sorted(sorted(range(len(blocks)), key=lambda b: -change[b])[: shape["residual_blocks"]])
    c2, c3 = _norms(net.encoder)[0].num_features, _norms(net.encoder)[1].num_features

    def top(weights: torch.Tensor, n: int) -> torch.Tensor:
        return weights.abs().argsort(descending=True)[:n].sort().values

    k2 = top(t_enc[1].weight, c2)  # the half-resolution channels the folded input conv now writes
    stream = t_enc[2].weight.abs() + sum(_norms(b)[1].weight.abs() for b in blocks)
    k3 = top(stream, c3)  # the residual stream's channels
    d2 = top(t_dec[0].weight, c2)  # the decoder's half-resolution channels

    def copy(conv, norm, t_conv, t_norm, out_idx, in_idx):
        conv.weight.copy_(t_conv.weight[out_idx][:, in_idx])
        conv.bias.copy_(t_conv.bias[out_idx])
        norm.weight.copy_(t_norm.weight[out_idx])
        norm.bias.copy_(t_norm.bias[out_idx])

    with torch.no_grad():
        _norms(net.encoder)[0].weight.copy_(t_enc[1].weight[k2])
        _norms(net.encoder)[0].bias.copy_(t_enc[1].bias[k2])
        copy(_convs(net.encoder)[1], _norms(net.encoder)[1], _convs(teacher.encoder)[2], t_enc[2], k3, k2)
        for block, b in zip(net.residuals, kept):
            inner = top(_norms(blocks[b])[0].weight, c3)
            (conv1, conv2), (norm1, norm2) = _convs(block), _norms(block)
            (t_conv1, t_conv2), (t_norm1, t_norm2) = _convs(blocks[b]), _norms(blocks[b])
            copy(conv1, norm1, t_conv1, t_norm1, inner, k3)
            copy(conv2, norm2, t_conv2, t_norm2, k3, inner)
        copy(_convs(net.decoder)[0], _norms(net.decoder)[0], _convs(teacher.decoder)[0], t_dec[0], d2, k3)
    net.pruned_from = {"residual_blocks": kept, "relative_change": [round(c, 4) for c in change]}
    print(f"cut from the teacher: {net.pruned_from}")
    return net


def _taps(rule, phases: int, taps: int, kernel: int) -> torch.Tensor:
    """m[a, q, y] = 1 where ``rule(a, y)`` puts the original tap y of output phase a at the new tap q."""
    m = torch.zeros(phases, taps, kernel)
    for a in range(phases):
        for y in range(kernel):
            q = rule(a, y)
            if q is not None and 0 <= q < taps:
                m[a, q, y] = 1
    return m


def folded(net: TransformerNet) -> TransformerNet:
    """``net`` (Johnson et al.'s layout: 9x9 ends, resize upsampling) as a ``fold`` network computing the same
    function (to rounding): the 9x9 layers become 5x5 layers from and to folded maps, the stride-2 layer
    after the first a 2x2 layer of the folded map, each upsampling a 3x3 layer writing every output phase."""
    if net.config.get("shuffle", 1) != 1 or net.config["upsample"] != "resize" or net.config.get("fold"):
        raise SystemExit("only a network of 9x9 ends and resize upsampling folds")
    fold = TransformerNet(**{**net.config, "fold": True})
    e, d, fe, fd = net.encoder, net.decoder, fold.encoder, fold.decoder
    nine = phase_taps(9)  # (a, s, q, y): the 9x9 layers' taps on the folded maps, as the inference form's
    # the stride-2 layer: tap y reads row 2i + y - 1 = 2(i - 1 + q) + s
    down = _taps(lambda s, y: (y - 1 - s) // 2 + 1 if (y - 1 - s) % 2 == 0 else None, 2, 2, 3)  # (s, q, y)
    # nearest x2 then a 3x3 layer: output row 2i + a, tap y reads low-resolution row i + (a + y - 1) // 2,
    # tap (a + y - 1) // 2 + 1 of the map replicated by 1
    up = _taps(lambda a, y: (a + y - 1) // 2 + 1, 2, 3, 3)  # (a, k, y)
    with torch.no_grad():
        fold.residuals.load_state_dict(net.residuals.state_dict())
        pairs = (
            (fe[1].norm, e[1]),
            (fe[5], e[4]),
            (fe[7], e[6]),
            (fe[8], e[7]),
            (fd[3], d[1]),
            (fd[7].norm, d[4]),
        )
        for new, old in pairs:
            new.load_state_dict(old.state_dict())
        for new, old in ((fe[0][1], e[0][1]), (fd[10], d[6][1])):
            w = torch.einsum("asqy,btpx,oiyx->oabistqp", nine, nine, old.weight)
            new.weight.copy_(w.reshape(new.weight.shape))
            new.bias.copy_(old.bias.repeat_interleave(4))
        fe[4].weight.copy_(
            torch.einsum("sqy,tpx,oiyx->oistqp", down, down, e[3][1].weight).reshape(fe[4].weight.shape)
        )
        fe[4].bias.copy_(e[3][1].bias)
        for new, old in ((fd[1], d[0][1][1]), (fd[6], d[3][1][1])):
            new.weight.copy_(
                torch.einsum("aky,blx,oiyx->oabikl", up, up, old.weight).reshape(new.weight.shape)
            )
            new.bias.copy_(old.bias.repeat_interleave(4))
    fold.style_names = net.style_names
    return fold.train(net.training)


def _tucker(conv: torch.nn.Conv2d, into: torch.nn.Module) -> None:
    """Set ``into`` (:func:`fastst.transformer.factored` of ``conv``'s shape) to ``conv``'s truncated
    higher-order SVD: the leading singular vectors of the weight's output and input unfoldings."""
    w = conv.weight.detach().double()
    co, ci = w.shape[:2]
    layers = list(into) if isinstance(into, torch.nn.Sequential) else [into]
    core, first, last = w, None, None
    if layers[0].kernel_size == (1, 1) and conv.kernel_size != (1, 1):
        first, layers = layers[0], layers[1:]
        u_in = torch.linalg.svd(w.transpose(0, 1).reshape(ci, -1), full_matrices=False)[0][
            :, : first.out_channels
        ]
        core = torch.einsum("oikl,ir->orkl", core, u_in)
        first.weight.copy_(u_in.T.reshape(first.weight.shape))
    if len(layers) == 2:
        last = layers[1]
        u_out = torch.linalg.svd(w.reshape(co, -1), full_matrices=False)[0][:, : last.in_channels]
        core = torch.einsum("oikl,or->rikl", core, u_out)
        last.weight.copy_(u_out.reshape(last.weight.shape))
        last.bias.copy_(conv.bias)
    else:
        layers[0].bias.copy_(conv.bias)
    layers[0].weight.copy_(core)


def whole(layer: torch.nn.Module) -> torch.nn.Conv2d:
    """The one convolution a factored layer (:func:`fastst.transformer.factored`) computes; a convolution as
    it is."""
    if isinstance(layer, torch.nn.Conv2d):
        return layer
    convs = list(layer)
    first = convs.pop(0) if convs[0].kernel_size == (1, 1) and len(convs) > 1 else None
    core, last = convs[0], (convs[1] if len(convs) > 1 else None)
    w = core.weight.detach().double()
    if first is not None:
        w = torch.einsum("rskl,si->rikl", w, first.weight.detach().double()[:, :, 0, 0])
    if last is not None:
        w = torch.einsum("or,rikl->oikl", last.weight.detach().double()[:, :, 0, 0], w)
    conv = torch.nn.Conv2d(w.shape[1], w.shape[0], core.kernel_size, core.stride)
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_((last if last is not None else core).bias)
    return conv


def factorized(net: TransformerNet, ranks: dict, pad: str | None = None) -> TransformerNet:
    """A ``fold`` network ``net`` with the convolutions ``ranks`` names factored (Tucker-2, by truncated
    higher-order SVD of each weight, or of the one convolution a layer already factored computes): the start
    of a distilled smaller network. The layers ``net`` factors already and ``ranks`` does not name, or names
    with the same ranks, are kept as they are. ``pad`` (TransformerNet's) changes how its layers pad, the
    weights kept."""
    if not net.config.get("fold"):
        raise SystemExit("factor a fold network (distill_base.folded)")
    have = net.config.get("ranks") or {}
    config = {**net.config, "ranks": {**have, **ranks}}
    if pad is not None:
        config["pad"] = pad
    small = TransformerNet(**config)
    state = small.state_dict()
    kept = {k: v for k, v in net.state_dict().items() if k in state and state[k].shape == v.shape}
    small.load_state_dict(kept, strict=False)
    with torch.no_grad():
        for name, pair in ranks.items():
            if have.get(name) == list(pair):
                continue
            for (parent, i), (source, j) in zip(small.factored_slots(name), net.factored_slots(name)):
                _tucker(whole(source[j]), parent[i])
    small.style_names = net.style_names
    return small.train(net.training)


def crops(photos: list[Path], size: int, count: int, rng: random.Random) -> torch.Tensor:
    """``count`` random ``size`` px crops of random photos as training takes them (:func:`random_crop`:
    a random flip too), each photo scaled first so that its shorter side is between ``size`` and twice
    it (the scales the held-out photos are stylized at)."""
    batch = []
    for path in rng.sample(photos, count):
        g = torch.Generator().manual_seed(rng.getrandbits(63))
        with Image.open(path) as im:
            batch.append(random_crop(im.convert("RGB"), size, g, scale_to=rng.randint(size, 2 * size)))
    return torch.stack(batch)  # random_crop gives [0, 1] already


def distance(
    student: torch.Tensor, teacher: torch.Tensor, vgg, feature_weight: float, style_weight: float = 0.0
) -> tuple:
    """The distillation loss and its terms: pixels, relu2_2 features and (``style_weight`` > 0) the
    style layers' Gram matrices, each relative to the teacher's so that the weights are plain ratios."""
    pixels = F.l1_loss(student, teacher)
    layers = tuple(dict.fromkeys((FEATURE_LAYER, *STYLE_LAYERS))) if style_weight else (FEATURE_LAYER,)
    ours = vgg(student, layers)
    with torch.no_grad():
        theirs = vgg(teacher, layers)
    features = F.l1_loss(ours[FEATURE_LAYER], theirs[FEATURE_LAYER]) / (
        theirs[FEATURE_LAYER].abs().mean().clamp_min(1e-6)
    )
    style = torch.zeros((), device=student.device)
    if style_weight:
        for layer in STYLE_LAYERS:
            g_ours, g_theirs = gram_matrix(ours[layer]), gram_matrix(theirs[layer])
            style = style + F.mse_loss(g_ours, g_theirs) / g_theirs.pow(2).mean().clamp_min(1e-12)
        style = style / len(STYLE_LAYERS)
    return pixels + feature_weight * features + style_weight * style, pixels, features, style


def style_batch(count: int, batch: int, mix_share: float, rng: random.Random, draws: list | None = None):
    """The styles of a batch: each crop one of ``count`` styles at random, or with ``mix_share`` chance a
    random mix of two ((batch, count) weights then); None for a one-style network. ``draws``: how often
    each style is drawn, relative to the others (by default all alike)."""
    if count == 1:
        return None

    def draw() -> int:
        return rng.randrange(count) if draws is None else rng.choices(range(count), draws)[0]

    if not mix_share:
        return torch.tensor([draw() for _ in range(batch)])
    mix = torch.zeros(batch, count)
    for row in mix:
        a = draw()
        if rng.random() < mix_share:
            b, t = draw(), rng.random()
            row[a] += t
            row[b] += 1 - t
        else:
            row[a] = 1
    return mix


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", default="base", help="the multi-style network to copy")
    parser.add_argument("--student", default="starry_night", help="a one-style network: the shape and start")
    parser.add_argument("--iterations", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=128, help="crop size in pixels")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's peak rate (cosine decay to zero)")
    parser.add_argument("--feature-weight", type=float, default=1.0)
    parser.add_argument(
        "--style-weight", type=float, default=0.0, help="weight of the Gram matrices' distance (0: none)"
    )
    parser.add_argument(
        "--residual-blocks", type=int, default=None, help="deepen the student to this many residual blocks"
    )
    parser.add_argument(
        "--fresh-width",
        type=float,
        default=None,
        help="a student of --student's shape at this width, from random weights (drawn with --seed)",
    )
    parser.add_argument(
        "--pruned-width",
        type=float,
        default=None,
        help="with --style: a student of --student's shape at this width, its middle cut from the teacher's "
        "(its ends from random weights, drawn with --seed)",
    )
    parser.add_argument(
        "--ranks",
        type=json.loads,
        default=None,
        help="a student that is the teacher itself, folded and factored (JSON: layer -> [r_in, r_out], "
        "the layers of fastst.transformer.FACTORED_LAYERS), its norms the teacher's and kept",
    )
    parser.add_argument(
        "--start",
        default=None,
        help="with --ranks: start from this network (a model file or shipped name), the teacher folded and "
        "factored already, in place of the whole teacher; its layers --ranks names with other ranks are "
        "factored anew from the convolution each computes, the others kept",
    )
    parser.add_argument(
        "--pad",
        choices=["reflect", "zero"],
        default=None,
        help="with --ranks: how the student's layers pad their maps (TransformerNet's pad; by default the "
        "start's)",
    )
    parser.add_argument(
        "--mix-share", type=float, default=0.0, help="the share of crops given a mix of two styles, not one"
    )
    parser.add_argument(
        "--draws",
        type=json.loads,
        default=None,
        help="how often to draw some of the teacher's styles, relative to the others' 1 (JSON: style -> "
        "weight)",
    )
    parser.add_argument("--style", default=None, help="learn this one style of the teacher alone")
    parser.add_argument(
        "--out", default=None, help="run folder (default runs/distill_base, with --style runs/distill_STYLE)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.pad and not args.ranks:
        raise SystemExit("--pad goes with --ranks (a student that is the teacher itself, refactored)")

    default = f"distill_{args.style}" if args.style else "distill_base"
    out = Path(args.out) if args.out else runs_dir() / default
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu")
    precision = resolve_precision("auto", device)
    if args.style:
        if args.style not in model_styles(args.teacher):
            raise SystemExit(f"{args.teacher} holds no style {args.style!r}")
        teacher, names = load_model(args.teacher, style=args.style), [args.style]
        several = len(model_styles(args.student)) > 1
        student = load_model(args.student, style=args.style if several else None).train()
    else:
        teacher = load_model(args.teacher)
        names = teacher.style_names
        student = None if args.ranks else student_from(args.student, len(names))
    if args.ranks:
        others = {
            "--style": args.style,
            "--fresh-width": args.fresh_width,
            "--pruned-width": args.pruned_width,
            "--residual-blocks": args.residual_blocks,
        }
        if any(others.values()) or args.student != parser.get_default("student"):
            given = [name for name, value in others.items() if value] or ["--student"]
            raise SystemExit(f"--ranks starts from the whole teacher: leave out {', '.join(given)}")
        start = folded(teacher) if args.start is None else load_model(args.start)
        if start.styles != teacher.styles or start.style_names != teacher.style_names:
            raise SystemExit(f"--start {args.start} does not hold the teacher's styles")
        try:
            student = factorized(start, args.ranks, args.pad).train()
        except ValueError as e:
            raise SystemExit(f"--ranks: {e}") from None
        for norm in student.conditional_norms():  # the teacher's styles, mixes and predicted norms kept
            norm.requires_grad_(False)
    if args.fresh_width:
        torch.manual_seed(args.seed)
        student = TransformerNet(**{**student.config, "width": args.fresh_width}).train()
    if args.pruned_width:
        if not args.style:
            raise SystemExit("--pruned-width cuts one style of the teacher: give --style")
        torch.manual_seed(args.seed)
        probe = crops(usable_images(data_dir() / "train", warn=False), args.size, 8, random.Random(args.seed))
        shape = {**student.config, "width": args.pruned_width}
        if args.residual_blocks:
            shape["residual_blocks"] = args.residual_blocks
        student = pruned(teacher.eval(), shape, probe).train()
    elif args.residual_blocks:
        student = deepened(student, args.residual_blocks)
    unknown = set(args.draws or {}) - set(names)
    if unknown:
        raise SystemExit(f"--draws: the teacher has no style {', '.join(sorted(unknown))}")
    draws = [float((args.draws or {}).get(name, 1.0)) for name in names] if args.draws else None
    optimiser = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=args.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, args.iterations) / args.iterations))
    )
    start, spent, checkpoint = 0, 0.0, out / "checkpoint.pth"
    if checkpoint.is_file():
        saved = load_checkpoint(checkpoint)
        student.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        start, spent = saved["iteration"], saved.get("seconds", 0.0)
        print(f"resuming {out} at iteration {start}")
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    if hasattr(student, "pruned_from"):  # which of the teacher's residual blocks the student kept, and why
        settings["pruned_from"] = student.pruned_from
    (out / "config.json").write_text(
        json.dumps({"settings": settings, **environment(device, precision)}, indent=1)
    )

    photos = usable_images(data_dir() / "train", warn=False)
    rng = random.Random(f"{args.seed}-{start}")  # a resumed run draws on from where it stopped
    vgg = loss_network()
    log_path = out / "losses.csv"
    new_log = not log_path.exists()
    began = time.perf_counter() - spent  # the log's seconds count the whole run, across resumes
    with open(log_path, "a", newline="") as log:
        writer = csv.writer(log)
        if new_log:
            writer.writerow(["iteration", "loss", "pixels", "features", "style", "lr", "seconds"])
        bar = tqdm(range(start, args.iterations), initial=start, total=args.iterations, desc="distilling")
        for i in bar:
            x = crops(photos, args.size, args.batch, rng)
            styles = style_batch(len(names), args.batch, args.mix_share, rng, draws)
            with torch.no_grad(), autocast(device, precision):
                target = teacher(x, styles).float().clamp(0, 1)
            student.train()
            with autocast(device, precision):
                loss, pixels, features, style = distance(
                    student(x, styles).float(), target, vgg, args.feature_weight, args.style_weight
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            if (i + 1) % 10 == 0:
                writer.writerow(
                    [
                        i + 1,
                        f"{loss.item():.5f}",
                        f"{pixels.item():.5f}",
                        f"{features.item():.5f}",
                        f"{style.item():.5f}",
                        f"{schedule.get_last_lr()[0]:.3g}",
                        f"{time.perf_counter() - began:.1f}",
                    ]
                )
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if (i + 1) % 200 == 0 or i + 1 == args.iterations:
                log.flush()
                state = {"iteration": i + 1, "seconds": time.perf_counter() - began}
                save(student, optimiser, schedule, state, names, settings, device, precision, out)
    print(f"wrote {out / 'model.pth'}")


def save(student, optimiser, schedule, state: dict, names, settings, device, precision, out: Path) -> None:
    """The checkpoint to resume from, and the model file, each written whole or not at all."""
    atomic_torch_save(
        {
            "model": student.state_dict(),
            "optimiser": optimiser.state_dict(),
            "schedule": schedule.state_dict(),
            **state,
        },
        out / "checkpoint.pth",
    )
    atomic_torch_save(
        {
            "model": student.state_dict(),
            "net": student.config,
            **({"styles": names} if len(names) > 1 else {}),
            "config": {
                "style": names if len(names) > 1 else names[0],
                "distilled": settings,
                "preset": "distilled",
            },
            "iteration": state["iteration"],
            "seconds": state["seconds"],
            "environment": environment(device, precision),
        },
        out / "model.pth",
    )


if __name__ == "__main__":
    main()
