"""Any painting as the style, in one pass: a style-prediction network (Ghiasi et al., 2017) that reads a
painting's VGG-16 statistics and writes the instance norms' scales and shifts of one shared, small
transformation network.

The painting's statistics, and so its one-style network, are computed once per painting
(:meth:`AnyStyleNet.for_painting`); the result is a plain :class:`~fastst.transformer.TransformerNet`, so
everything built for a trained style (the inference form, reduced precision, tiles, video, the app)
runs it unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import weakref
from pathlib import Path

import torch
from torch import nn

from fastst import host, palette
from fastst.errors import FaststError
from fastst.host import pretrained_path
from fastst.io import file_digest, load_checkpoint, load_image
from fastst.losses import STYLE_LAYERS
from fastst.palette import MAX_GAIN  # noqa: F401  (the palette's cap, named where the model is)
from fastst.scale import to_longer_side
from fastst.transformer import InstanceNorm2d, TransformerNet, instance_norm, replace_modules
from fastst.vgg import VGG16Features, loss_network

# The painting's longer side when its statistics are read: the quality measure's style size, so that a
# painting is seen at the scale the objective judges it at.
STATS_SIZE = 256


def statistics_size(layers=STYLE_LAYERS) -> int:
    """The length of :func:`painting_statistics`' vector: a mean and a spread per channel and layer."""
    channels = {"relu1_2": 64, "relu2_2": 128, "relu3_3": 256, "relu4_3": 512}
    return 2 * sum(channels[name] for name in layers)


@torch.no_grad()
def painting_statistics(
    painting: torch.Tensor, vgg: VGG16Features | None = None, size: int | None = STATS_SIZE
) -> torch.Tensor:
    """The (N, D) style description of a (3, H, W) painting or a batch: per channel of each style layer,
    the mean and the log standard deviation of the VGG-16 activations (the statistics AdaIN matches),
    with the painting's longer side first brought to ``size``."""
    vgg = vgg if vgg is not None else loss_network()
    x = painting[None] if painting.dim() == 3 else painting
    if size is not None:
        x = to_longer_side(x.float(), size)
    return statistics_of(vgg(x.float().clamp(0, 1), STYLE_LAYERS))


def statistics_of(feats: dict[str, torch.Tensor]) -> torch.Tensor:
    """:func:`painting_statistics` from the style layers' activations of the painting at its size."""
    parts = []
    for name in STYLE_LAYERS:
        f = feats[name].float().flatten(2)
        parts += [f.mean(-1), torch.log(f.std(-1) + 1e-3)]
    return torch.cat(parts, dim=1)


class ModulatedInstanceNorm(nn.Module):
    """Instance norm whose scale and shift come from outside, one (N, C) pair per batch: set
    ``scale`` and ``shift`` before the pass (:meth:`AnyStyleNet.forward` does)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = channels, eps
        self.scale: torch.Tensor | None = None
        self.shift: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = instance_norm(x, eps=self.eps, channels=self.num_features)
        return y * self.scale[:, :, None, None].to(y.dtype) + self.shift[:, :, None, None].to(y.dtype)


class StylePredictor(nn.Module):
    """Statistics -> every norm's scale and shift: standardised, through a hidden layer and a narrow
    bottleneck (Ghiasi et al.'s style embedding), then out to one number per scale and shift. It starts
    at the plain instance norm (scale 1, shift 0) for every painting."""

    def __init__(self, inputs: int, outputs: int, hidden: int = 256, bottleneck: int = 100):
        super().__init__()
        self.register_buffer("mean", torch.zeros(inputs))
        self.register_buffer("std", torch.ones(inputs))
        self.embed = nn.Sequential(
            nn.Linear(inputs, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, bottleneck)
        )
        self.out = nn.Linear(bottleneck, outputs)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, stats: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """``strength`` moves the style embedding from the average training painting's (0) to the
        painting's own (1), as Ghiasi et al. interpolate styles, or beyond."""
        embedding = self.embed((stats - self.mean) / self.std)
        if strength != 1.0:
            average = self.embed(torch.zeros_like(stats))
            embedding = average + strength * (embedding - average)
        return self.out(embedding)


class AnyStyleNet(nn.Module):
    """A transformation network shared by every painting, with its norms' scales and shifts predicted
    from the painting's statistics. ``net(photos, stats)`` stylizes a batch, each photo with its own
    painting's (N, D) statistics; :meth:`for_painting` gives one painting's plain network."""

    def __init__(
        self,
        width: float = 0.375,
        residual_blocks: int = 3,
        input_skip: bool = True,
        shuffle: int = 1,
        fold: bool = False,
        ranks: dict | None = None,
        pad: str = "reflect",
    ):
        super().__init__()
        body = TransformerNet(
            width=width,
            residual_blocks=residual_blocks,
            input_skip=input_skip,
            shuffle=shuffle,
            fold=fold,
            ranks=ranks,
            pad=pad,
        )
        self.net_config = dict(body.config)
        self.norm_names = [name for name, m in body.named_modules() if isinstance(m, InstanceNorm2d)]
        self.norm_sizes = [body.get_submodule(name).num_features for name in self.norm_names]
        self.body = replace_modules(
            body, lambda m: isinstance(m, InstanceNorm2d), lambda m: ModulatedInstanceNorm(m.num_features)
        )
        self.predictor = StylePredictor(statistics_size(), 2 * sum(self.norm_sizes))
        # the fraction of the way its networks' colours are moved to the painting's (painting_network)
        self.palette = 0.0

    @torch.no_grad()
    def start_from(self, net: TransformerNet) -> None:
        """Start from a trained one-style network of the same shape: its convolutions become the shared
        network's, and its norms' scales and shifts the predictor's output for every painting."""
        state = net.state_dict()
        self.body.load_state_dict({k: v for k, v in state.items() if k in self.body.state_dict()})
        parts = []
        for name in self.norm_names:
            parts += [state[f"{name}.weight"] - 1, state[f"{name}.bias"]]
        self.predictor.out.bias.copy_(torch.cat(parts))

    def norm_parameters(
        self, stats: torch.Tensor, strength: float = 1.0
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(scale, shift) of every norm, each (N, C), for (N, D) statistics, at the given ``strength``."""
        raw = self.predictor(stats, strength)
        pairs, start = [], 0
        for c in self.norm_sizes:
            scale, shift = raw[:, start : start + c], raw[:, start + c : start + 2 * c]
            pairs.append((1 + scale, shift))
            start += 2 * c
        return pairs

    def forward(self, photos: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        for name, (scale, shift) in zip(self.norm_names, self.norm_parameters(stats)):
            norm = self.body.get_submodule(name)
            norm.scale, norm.shift = scale, shift
        return self.body(photos)

    @torch.no_grad()
    def for_painting(self, stats: torch.Tensor, strength: float = 1.0) -> TransformerNet:
        """The plain one-style network of one painting's (1, D) statistics, in eval mode on the CPU."""
        one = TransformerNet(**self.net_config)
        state = {k: v for k, v in self.body.state_dict().items()}
        pairs = self.norm_parameters(stats.reshape(1, -1).float(), strength)
        for name, (scale, shift) in zip(self.norm_names, pairs):
            state[f"{name}.weight"], state[f"{name}.bias"] = scale[0], shift[0]
        one.load_state_dict(state)
        return one.eval()


class SharedNetwork(nn.Module):
    """A one-pass model's shared network as one graph for every painting: ``(image, norms, colour)`` -> the
    stylized batch in [0, 1], where ``norms`` (1, K) are a painting's norms' scales and shifts, norm by norm
    (:attr:`PaintingInputs.norms`), and ``colour`` (3, 4) its colour map ``[matrix | shift]``, applied before
    the clamp. The exported runtimes run it, so that a new painting needs no export of its own."""

    def __init__(self, model: AnyStyleNet):
        super().__init__()
        # a copy: the exports and sessions made of it stay this network's if the model is trained further
        self.body = copy.deepcopy(model.body).cpu()
        self.norms = [self.body.get_submodule(name) for name in model.norm_names]
        self.config = {**model.net_config, "inputs": "norms, colour"}  # what runtimes' digests read
        self.versions = _versions(model)

    def forward(self, image: torch.Tensor, norms: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        start = 0
        for norm in self.norms:
            c = norm.num_features
            norm.scale, norm.shift = norms[:, start : start + c], norms[:, start + c : start + 2 * c]
            start += 2 * c
        y = self.body(image, clamp=False)
        y = torch.einsum("ij,njhw->nihw", colour[:, :3], y) + colour[:, 3].reshape(1, 3, 1, 1)
        return y.clamp(0, 1)


class PaintingEncoder(nn.Module):
    """A one-pass model's painting side as one graph: a painting (1, 3, H, W) in [0, 1], its longer side at
    STATS_SIZE, -> its norms' scales and shifts (1, K), laid out as :attr:`PaintingInputs.norms`: VGG-16's
    statistics, then the style-prediction network. The quick path runs it, exported, for a painting it has
    not seen (:mod:`fastst.quick`)."""

    def __init__(self, model: AnyStyleNet, vgg: VGG16Features | None = None):
        super().__init__()
        self.model, self.vgg = model, vgg if vgg is not None else loss_network()

    def forward(self, painting: torch.Tensor) -> torch.Tensor:
        stats = statistics_of(self.vgg(painting.float().clamp(0, 1), STYLE_LAYERS))
        return torch.cat([t for pair in self.model.norm_parameters(stats) for t in pair], 1)


_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _versions(model: AnyStyleNet) -> tuple[int, ...]:
    """Counts of in-place changes to the shared network's weights: they differ once it has been trained."""
    return tuple(p._version for p in model.body.parameters())


@dataclasses.dataclass(frozen=True, eq=False)
class PaintingInputs:
    """One painting's network as its one-pass model's :class:`SharedNetwork` and the painting's inputs to
    it: ``shared(image, norms, colour)`` is what the painting's network computes. Set by
    :func:`painting_network` as the network's ``one_pass``, valid while the network's weights are the ones
    it was given (a run that trains a painting's network drops it: ``fastst.train.initial_model``)."""

    shared: SharedNetwork
    norms: torch.Tensor
    colour: torch.Tensor

    def __deepcopy__(self, memo):  # immutable; a copied network shares its painting's inputs
        return self

    def arrays(self) -> tuple:
        """The graph's inputs after the image, as arrays."""
        return self.norms.numpy(), self.colour.numpy()


def painting_inputs(
    model: AnyStyleNet, net: TransformerNet, colour: tuple[torch.Tensor, torch.Tensor] | None
) -> PaintingInputs:
    """The :class:`PaintingInputs` of ``net``, the painting's network from ``model`` (its norms as given,
    before any colour map is folded in), with the colour map ``colour`` (matrix, shift), or none."""
    shared = _SHARED.get(model)
    if shared is None or shared.versions != _versions(model):
        shared = _SHARED[model] = SharedNetwork(model)
    norms = [net.get_submodule(name) for name in model.norm_names]
    vector = torch.cat([t.detach().float().cpu() for m in norms for t in (m.weight, m.bias)])[None]
    matrix, shift = colour if colour is not None else (torch.eye(3), torch.zeros(3))
    return PaintingInputs(shared, vector, torch.cat([matrix.float(), shift.float()[:, None]], 1))


def net_options(config: dict) -> dict:
    """The options of :class:`AnyStyleNet` in a network's ``config`` (a one-pass model's or a one-style
    network's)."""
    names = ("width", "residual_blocks", "input_skip", "shuffle", "fold", "ranks", "pad")
    return {k: v for k, v in config.items() if k in names}


def model_file(model: AnyStyleNet, half: bool = True, **extra) -> dict:
    """The model's file content: its options and weights (fp16 where ``half``), plus ``extra`` (the
    run's record); returned for the caller to write atomically."""
    weights = {k: (v.half() if half and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    kept = {"palette": model.palette} if model.palette else {}
    return {"anystyle": model.net_config, "model": weights, **kept, **extra}


def shared_convolutions(model: AnyStyleNet, name: str) -> dict[str, torch.Tensor]:
    """The weights of ``model``'s shared network (its convolutions: its norms have none) taken from the
    shipped or saved network ``name``, keyed as in ``model``'s state."""
    from fastst.stylize import load_model  # fastst.stylize imports this module

    net = load_model(name)
    shape = (set(net.config) | set(model.net_config)) - {"styles"}
    if any(net.config.get(k) != model.net_config.get(k) for k in shape):
        raise FaststError(f"the one-pass model's shared network is not the shape of {name}")
    state = net.state_dict()
    return {f"body.{k}": state[k].float() for k in model.body.state_dict()}


@torch.no_grad()
def on_network(model: AnyStyleNet, name: str) -> AnyStyleNet:
    """``model``'s style-prediction network (and palette fraction) on the convolutions of the shipped or
    saved network ``name`` (one style or several) as its shared network: a network whose norms are
    ``model``'s, in the same order and of the same sizes, such as one distilled from its shared network
    with the norms kept. Its predictor may then learn the new network (``train-anystyle --body``)."""
    from fastst.stylize import load_model  # fastst.stylize imports this module

    new = AnyStyleNet(**net_options(load_model(name).config))
    if new.norm_sizes != model.norm_sizes:
        raise FaststError(f"the norms of {name} are not those of the one-pass model's network")
    predictor = {f"predictor.{k}": v for k, v in model.predictor.state_dict().items()}
    new.load_state_dict({**shared_convolutions(new, name), **predictor})
    try:
        set_palette(new, model.palette)
    except FaststError as e:
        raise FaststError(f"the one-pass model's palette on {name}: {e}") from None
    return new.to(next(model.parameters()).device).train(model.training)


def without_shared_convolutions(saved: dict, name: str) -> dict:
    """A one-pass model's file ``saved`` without its shared network's weights where they equal those of
    the network ``name`` (a predictor trained on a frozen shipped network): the loader takes them from
    ``name``. Otherwise ``saved`` unchanged."""
    model = AnyStyleNet(**net_options(saved["anystyle"]))
    try:
        theirs = shared_convolutions(model, name)
    except FaststError:
        return saved
    ours = {k: v for k, v in saved["model"].items() if k.startswith("body.")}
    if ours.keys() != theirs.keys() or any(not torch.equal(v.float(), theirs[k]) for k, v in ours.items()):
        return saved
    kept = {k: v for k, v in saved["model"].items() if not k.startswith("body.")}
    return {**saved, "model": kept, "body_from": name, "body_digest": _digest(theirs)}


def average_predictors(saved: list[dict]) -> dict:
    """One one-pass model file from several (``saved``, as loaded) that share one shared network and one
    standardisation of the statistics (as runs of the predictor alone from one start do; that is checked,
    the start is not): the first file, its style-prediction network's weights the mean of theirs."""
    if not saved:
        raise FaststError("no one-pass models to average")
    first = saved[0]["model"]
    learned = [
        k for k in first if k.startswith("predictor.") and k not in ("predictor.mean", "predictor.std")
    ]
    for other in saved[1:]:
        theirs = other["model"]
        if theirs.keys() != first.keys() or other["anystyle"] != saved[0]["anystyle"]:
            raise FaststError("one-pass models to average must have the same network")
        if any(not torch.equal(theirs[k], v) for k, v in first.items() if k not in learned):
            raise FaststError(
                "one-pass models to average must share their shared network and standardisation"
            )
    mean = {k: (sum(s["model"][k].float() for s in saved) / len(saved)).to(first[k].dtype) for k in learned}
    return {**saved[0], "model": {**first, **mean}}


def _digest(weights: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(weights):
        h.update(k.encode() + weights[k].float().contiguous().numpy().tobytes())
    return h.hexdigest()


def is_one_pass(path: str | os.PathLike) -> bool:
    """Whether ``path`` (or the shipped model of that name) is a one-pass model's file."""
    path = pretrained_path(path)
    if not path.is_file():
        return False
    saved = load_checkpoint(path, "model")
    return isinstance(saved, dict) and "anystyle" in saved


def load_anystyle(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> AnyStyleNet:
    """A one-pass model from its file or shipped name (default: the shipped default,
    :func:`fastst.host.one_pass_file`), on ``device``, loaded without running code."""
    path = host.one_pass_file(path)
    if not path.is_file():
        shipped = path.parent == host.PRETRAINED_DIR and path.stem in host.SHIPPED_ONE_PASS
        make = f": train one with `make {path.stem.replace('_', '-')}`" if shipped else ""
        raise FaststError(f"no one-pass model at {path}{make}")
    saved = read_one_pass(path)
    model = AnyStyleNet(**net_options(saved["anystyle"]))
    weights = {k: v.float() for k, v in saved["model"].items()}
    if saved.get("body_from"):  # the shared network's convolutions are a shipped network's, not repeated here
        shared = shared_convolutions(model, saved["body_from"])
        if _digest(shared) != saved.get("body_digest"):
            raise FaststError(f"one-pass model {path} was trained on another {saved['body_from']} network")
        weights.update(shared)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, AttributeError) as e:
        raise FaststError(
            f"one-pass model {path} does not match its network: {str(e).splitlines()[0]}"
        ) from None
    try:
        set_palette(model, float(saved.get("palette", 0.0)))
    except FaststError as e:
        raise FaststError(f"one-pass model {path}: {e}") from None
    return model.eval().to(device)


def rests_on(saved: dict) -> list[Path]:
    """The files besides itself that a one-pass model file (``saved``, as :func:`read_one_pass` reads it)
    takes weights from: the shipped network of its shared convolutions, where it does not hold them."""
    return [pretrained_path(saved["body_from"])] if saved.get("body_from") else []


def read_one_pass(path: Path) -> dict:
    """A one-pass model's file as saved (no network built), or a one-line error for any other file."""
    saved = load_checkpoint(path, "model")
    if not isinstance(saved, dict) or "anystyle" not in saved or "model" not in saved:
        raise FaststError(f"not a fastst one-pass model: {path}")
    return saved


def checked_palette(model: AnyStyleNet, fraction: float) -> float:
    """``fraction``, if it is a palette fraction ``model`` takes: 0 to 1 (:func:`painting_network`),
    and above 0 only where its networks' last convolution alone writes the colours."""
    palette.checked_fraction(fraction)
    if fraction:
        try:
            _colour_conv(model.body)
        except FaststError:
            raise FaststError(
                "this one-pass model takes no palette: its network's last convolution does not write the "
                "colours alone (it has an input skip); anystyle_fast's and anystyle_base's do"
            ) from None
    return fraction


def set_palette(model: AnyStyleNet, fraction: float) -> AnyStyleNet:
    """``model`` with its palette fraction set (:func:`checked_palette`)."""
    model.palette = checked_palette(model, fraction)
    return model


_PAINTINGS: dict[str, dict] = {}  # by the painting's content: a folder, a clip, the webcam reuse them


def _painting(painting: str | os.PathLike | torch.Tensor, colours: bool = False) -> dict:
    """Its "stats", the painting at STATS_SIZE ("small") and, where ``colours``, its colours'
    :func:`colour_moments` at its own size ("colours"), computed once per content."""
    if isinstance(painting, torch.Tensor):
        key = hashlib.sha256(painting.float().cpu().numpy().tobytes()).hexdigest()
    else:
        try:
            key = file_digest(painting)
        except OSError as e:
            raise FaststError(f"cannot read the painting {painting}: {e.strerror}") from None
    entry = _PAINTINGS.get(key)
    if entry is None or (colours and "colours" not in entry):
        image = painting if isinstance(painting, torch.Tensor) else load_image(painting)
        image = image.float().cpu()
        if entry is None:
            if len(_PAINTINGS) >= 64:
                _PAINTINGS.pop(next(iter(_PAINTINGS)))
            small = to_longer_side(image[None], STATS_SIZE)[0]
            entry = _PAINTINGS[key] = {"stats": painting_statistics(image), "small": small}
        if colours:
            entry["colours"] = colour_moments(image)
    return entry


def cached_statistics(painting: str | os.PathLike | torch.Tensor) -> torch.Tensor:
    """:func:`painting_statistics` of a painting file or (3, H, W) image, computed once per content."""
    return _painting(painting)["stats"]


def forget_statistics() -> None:
    """Empty :func:`cached_statistics`' cache: every painting is then read as a new one."""
    _PAINTINGS.clear()


def colour_moments(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean (3,) and covariance (3, 3) of a (3, H, W) image's colours, in double
    (:func:`fastst.palette.colour_moments`)."""
    mean, cov = palette.colour_moments(image.detach().float().cpu().numpy())
    return torch.from_numpy(mean), torch.from_numpy(cov)


def palette_map(
    output: torch.Tensor, target: tuple[torch.Tensor, torch.Tensor], fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine colour map ``y -> matrix @ y + shift`` that takes ``fraction`` of the way from the colours
    of ``output`` ((3, H, W)) to ``target``'s :func:`colour_moments` (:func:`fastst.palette.palette_map`:
    at 1 all the way, at 0 nothing changes, no colour direction stretched by more than MAX_GAIN)."""
    moments = palette.colour_moments(output.detach().float().cpu().numpy())
    matrix, shift = palette.palette_map(moments, tuple(t.numpy() for t in target), fraction)
    return torch.from_numpy(matrix), torch.from_numpy(shift)


def _colour_conv(net: TransformerNet) -> nn.Conv2d:
    """The last convolution of ``net``, where it alone writes the output's colours: 3 channels, or 12 that a
    pixel shuffle unfolds (colour c's 2x2 pixel phases at 4c to 4c + 3)."""
    last = net.last_conv()
    if net.input_skip or last.out_channels not in (3, 12) or last.bias is None:
        raise FaststError(
            "a colour map folds only into a network whose last convolution writes the colours (no input skip)"
        )
    return last


@torch.no_grad()
def with_colour_map(net: TransformerNet, matrix: torch.Tensor, shift: torch.Tensor) -> TransformerNet:
    """``net`` (no input skip) with ``y -> matrix @ y + shift`` folded into its last convolution, the one that
    writes the colours: the same network, at no cost, the map applied before the output's clamp."""
    last = _colour_conv(net)
    phases = last.out_channels // 3  # each colour's pixel phases where a pixel shuffle follows
    weight = last.weight.reshape(3, phases, *last.weight.shape[1:])
    last.weight.copy_(torch.einsum("ij,jp...->ip...", matrix, weight).reshape(last.weight.shape))
    bias = matrix @ last.bias.reshape(3, phases) + shift[:, None]
    last.bias.copy_(bias.reshape(-1))
    return net


def painting_network(
    painting: str | os.PathLike | torch.Tensor,
    model: AnyStyleNet | None = None,
    device: str | torch.device = "cpu",
    palette: float | None = None,
) -> TransformerNet:
    """One painting's network (a path or a (3, H, W) image in [0, 1]), from ``model`` (default: the
    shipped default one-pass model, :func:`load_anystyle`'s), on ``device``. Where the model has a ``palette``
    fraction (or ``palette`` gives one), the network's colours are moved that fraction of the way to the
    painting's (:func:`palette_map`, measured on the network's picture of the painting itself, folded
    into the network). The network's ``one_pass`` holds its :class:`PaintingInputs`. Bad painting files
    raise a one-line :class:`FaststError`."""
    model = model if model is not None else load_anystyle()
    fraction = model.palette if palette is None else checked_palette(model, palette)
    entry = _painting(painting, colours=bool(fraction))
    net = model.cpu().for_painting(entry["stats"])
    colour = None
    if fraction:
        with torch.no_grad():
            own = net(entry["small"][None])[0]
        colour = palette_map(own, entry["colours"], fraction)
    inputs = painting_inputs(model, net, colour)
    if colour is not None:
        net = with_colour_map(net, *colour)
    net.one_pass = inputs  # the exported runtimes run the model's shared graph with these inputs
    return net.to(device)
