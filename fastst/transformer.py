"""The image transformation network f_W of Johnson et al. (2016), Fig. 2 / supplementary Table 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Downsampling by 4 needs sizes divisible by 4; the reflection padding of the 9x9 convolution
# needs at least 5 pixels. Inputs are padded up to this and cropped back.
_MULTIPLE = 4
_MIN_SIZE = 16
SKIP_INIT_SCALE = 0.1  # the last layer's default initialisation, scaled down


def instance_norm(
    x: torch.Tensor, weight=None, bias=None, eps: float = 1e-5, channels: int | None = None
) -> torch.Tensor:
    """``F.instance_norm`` of a batch (N, C, H, W), computed on a CPU as a group norm with one channel a
    group: the same function, whose CPU kernels, forward and backward, work in channels-last memory,
    where instance norm's copy their input to contiguous memory and hand the next layer a contiguous
    output to copy back (``tools/step_profile.py``). On other devices, and for ONNX (which has an
    instance norm operator), it is torch's. ``channels`` (C) lets the ONNX exporter, which needs the
    channel count of a norm without ``weight``, export one whose input's channels it cannot tell (a
    reshaped map's: :class:`FoldedNorm`)."""
    if x.device.type == "cpu" and not torch.onnx.is_in_onnx_export():
        return F.group_norm(x, x.shape[1], weight, bias, eps)
    if weight is None and channels is not None and torch.onnx.is_in_onnx_export():
        weight, bias = x.new_ones(channels), x.new_zeros(channels)
    return F.instance_norm(x, weight=weight, bias=bias, eps=eps)


class InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` by :func:`instance_norm`; its state is ``nn.InstanceNorm2d``'s."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.track_running_stats or x.dim() != 4:
            return super().forward(x)
        return instance_norm(x, self.weight, self.bias, self.eps)

    def folded(self, x: torch.Tensor, phases: int) -> torch.Tensor:
        """This norm of a map each of whose channels was folded into ``phases`` consecutive channels of ``x``
        (:class:`FoldedNorm`): a group norm, each channel's phases a group."""
        if self.track_running_stats:
            return (
                super().forward(x.reshape(x.shape[0], -1, phases * x.shape[2], x.shape[3])).reshape(x.shape)
            )
        weight, bias = (
            p.repeat_interleave(phases) if p is not None else None for p in (self.weight, self.bias)
        )
        return F.group_norm(x, x.shape[1] // phases, weight, bias, self.eps)


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with one scale and shift per style (Dumoulin, Shlens & Kudlur, 2017).

    ``weight`` and ``bias`` are (styles, channels). The pass uses the mix of styles set in
    ``mix`` by :class:`TransformerNet` (a (batch or 1, styles) weight matrix): the scale and shift
    are the mix's weighted sums, so a one-hot mix is that style's own instance norm.
    """

    def __init__(self, channels: int, styles: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.styles, self.eps = channels, styles, eps
        self.weight = nn.Parameter(torch.ones(styles, channels))
        self.bias = nn.Parameter(torch.zeros(styles, channels))
        self.mix: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mix is None:
            raise RuntimeError("a multi-style network needs a style: call it as net(x, style)")
        mix = self.mix.to(self.weight.dtype)
        scale, shift = mix @ self.weight, mix @ self.bias
        y = instance_norm(x, eps=self.eps, channels=self.num_features)
        return y * scale[:, :, None, None].to(y.dtype) + shift[:, :, None, None].to(y.dtype)


def _norm(kind: str, channels: int, styles: int = 1) -> nn.Module:
    if kind == "instance" and styles > 1:
        return ConditionalInstanceNorm2d(channels, styles)
    if kind == "instance":
        return InstanceNorm2d(channels, affine=True)
    if kind == "batch" and styles == 1:
        return nn.BatchNorm2d(channels)
    if kind == "batch":
        raise ValueError("several styles need instance norm")
    raise ValueError(f"norm must be 'instance' or 'batch', not {kind!r}")


class ConvLayer(nn.Sequential):
    """Reflection padding, then a convolution (padding keeps the size at stride 1)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with normalisation and a skip (He et al., as in Johnson et al.)."""

    def __init__(self, channels: int, norm: str, styles: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3),
            _norm(norm, channels, styles),
            nn.ReLU(inplace=True),
            ConvLayer(channels, channels, 3),
            _norm(norm, channels, styles),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FoldedNorm(nn.Module):
    """A norm of C channels at full resolution, applied to the folded map (4C channels at half resolution,
    each channel's 2x2 pixel phases side by side): the four phases are viewed as four times the rows, so
    the statistics, scale and shift are the full-resolution map's. ``norm`` is any per-channel norm; one
    with a ``folded(x, phases)`` method computes the same on the folded map itself, which a CPU pass uses."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c4, h, w = x.shape
        folded = getattr(self.norm, "folded", None)
        if (
            folded is not None
            and x.device.type == "cpu"
            and not torch.onnx.is_in_onnx_export()
            and not torch.compiler.is_compiling()
        ):
            # the norm's own form for the folded map: the reshape below copies a channels-last map, and
            # hands the next layer a contiguous one to copy back
            return folded(x, 4)
        return self.norm(x.reshape(n, c4 // 4, 4 * h, w)).reshape(n, c4, h, w)


class FoldedReflect(nn.Module):
    """Reflection padding of a full-resolution map by ``2 * blocks`` pixels, done on its folded form
    (channel c's phase (a, b) at 4c + 2a + b, as ``nn.PixelUnshuffle(2)`` orders them): the folded map of
    the padded one. Reflected, full row -r is row r and row 2m - 1 + r is row 2m - 1 - r (2m rows), so each
    new block row takes its row phase 0 from one block row and its phase 1 from the next: thin slices
    chosen between by phase, no copy of the map but the one that joins them (none of its transposes)."""

    def __init__(self, blocks: int):
        super().__init__()
        self.blocks = blocks

    def _padded(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        k = self.blocks
        phase = (torch.arange(x.shape[1], device=x.device) // (2 if dim == 2 else 1)) % 2
        first = (phase == 0).reshape(1, -1, 1, 1)  # the channels of phase 0 along ``dim``

        def row(i: int) -> torch.Tensor:
            return x.narrow(dim, i if i >= 0 else x.shape[dim] + i, 1)

        top = [torch.where(first, row(j), row(j - 1)) for j in range(k, 0, -1)]
        bottom = [torch.where(first, row(-1 - j), row(-2 - j)) for j in range(k)]
        return torch.cat([*top, x, *bottom], dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._padded(self._padded(x, 2), 3)


class FoldedInputLayer(ConvLayer):
    """The first layer of a ``fold`` network: the image reflection-padded by 4, its 2x2 pixel blocks folded
    into 12 channels, and a 5x5 convolution to the folded map of ``channels`` (4 x channels): Johnson et
    al.'s 9x9 first layer, computed at half resolution. A :class:`ConvLayer` (padding, convolution), so the
    inference form keeps the image exact through it as through the 9x9 one."""

    def __init__(self, channels: int):
        nn.Sequential.__init__(
            self, nn.Sequential(nn.ReflectionPad2d(4), nn.PixelUnshuffle(2)), nn.Conv2d(12, 4 * channels, 5)
        )


def factored(conv: nn.Conv2d, r_in: int | None, r_out: int | None) -> nn.Module:
    """``conv`` as a Tucker-2 product: a 1x1 convolution to ``r_in`` channels, the kernel between ``r_in`` and
    ``r_out`` channels (stride kept), and a 1x1 convolution from ``r_out``; a rank of None (or not below
    the channels) keeps that side whole. Fresh weights: tools/distill_base.py's ``factorized`` sets them
    from a network's own."""
    if conv.padding != (0, 0) or conv.groups != 1 or conv.dilation != (1, 1):
        raise ValueError("only a plain convolution (unpadded, ungrouped) is factored")
    r_in = r_in if r_in and r_in < conv.in_channels else None
    r_out = r_out if r_out and r_out < conv.out_channels else None
    layers = []
    if r_in:
        layers.append(nn.Conv2d(conv.in_channels, r_in, 1, bias=False))
    layers.append(
        nn.Conv2d(
            r_in or conv.in_channels,
            r_out or conv.out_channels,
            conv.kernel_size,
            conv.stride,
            bias=r_out is None,
        )
    )
    if r_out:
        layers.append(nn.Conv2d(r_out, conv.out_channels, 1))
    return nn.Sequential(*layers) if len(layers) > 1 else layers[0]


def is_pointwise(m: nn.Module) -> bool:
    """Whether ``m`` is a plain 1x1 convolution (stride 1, unpadded, ungrouped): a pixel-wise map."""
    return (
        isinstance(m, nn.Conv2d)
        and m.kernel_size == (1, 1)
        and m.stride == (1, 1)
        and m.padding == (0, 0)
        and m.groups == 1
    )


def pads_into_convs(model: nn.Module) -> nn.Module:
    """``model`` (changed in place, and returned) with each zero padding that feeds a convolution made that
    convolution's own padding: the same function, with no padded copy of the map. The convolution is the
    layer right after the padding or, in a factored layer (:func:`factored`), the first past its leading
    1x1 convolutions without bias, which map zero pixels to zero. A padding wider on one side than the
    other stays where it is."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            pad, layer = seq[i], seq[i + 1]
            if type(pad) is not nn.ZeroPad2d or len(set(pad.padding)) != 1:
                continue
            convs = list(layer) if isinstance(layer, nn.Sequential) else [layer]
            k = 0
            while k < len(convs) - 1 and is_pointwise(convs[k]) and convs[k].bias is None:
                k += 1
            conv = convs[k]
            if isinstance(conv, nn.Conv2d) and conv.padding == (0, 0) and conv.padding_mode == "zeros":
                conv.padding = (pad.padding[0],) * 2
                seq[i] = nn.Identity()
    return model


# the convolutions a ``ranks`` option may factor, by name
FACTORED_LAYERS = ("residual", "into", "down", "down2", "up1", "up2", "out")


class UpsampleLayer(nn.Sequential):
    """x2 upsampling: nearest resize + 3x3 conv (no checkerboard), or a transposed convolution."""

    def __init__(self, c_in: int, c_out: int, mode: str):
        if mode == "resize":
            super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvLayer(c_in, c_out, 3))
        elif mode == "transpose":
            super().__init__(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1))
        else:
            raise ValueError(f"upsample must be 'resize' or 'transpose', not {mode!r}")


class TransformerNet(nn.Module):
    """Feed-forward style network: RGB batch in [0, 1] -> RGB batch in [0, 1] of the same size.

    Args:
        norm: ``"instance"`` (Ulyanov et al., the default) or ``"batch"`` (the paper's original).
        upsample: ``"resize"`` (nearest x2 then conv) or ``"transpose"`` (fractionally strided conv).
        width: channel multiplier; 0.5 is Johnson et al.'s half-width model.
        input_skip: add the input to the output, with the last convolution starting at zero, so the
            untrained network is the identity instead of a black image (faster start of training).
        styles: how many styles the network holds. With more than one, every instance norm has a
            scale and shift per style (:class:`ConditionalInstanceNorm2d`) and the pass takes the
            style: ``net(x, style)`` with an index, a batch of indices, or weights over the styles (a
            mix). One style is the single-style network, parameter for parameter.

        shuffle: 2 folds each 2x2 block of the input's pixels into channels (pixel unshuffle) and
            unfolds the last layer's 12 channels into the output's (pixel shuffle), in place of the 9x9
            convolutions and the last upsampling: no layer runs at full resolution, which makes the
            network faster on a CPU (docs/performance.md). 1 is Johnson et al.'s network.
        fold: the same function as Johnson et al.'s network (``shuffle`` 1, ``upsample`` "resize"),
            computed with no layer at full resolution: the 9x9 first and last layers, the stride-2 layer
            after the first and the last upsampling work on 2x2 pixel blocks folded into channels
            (:class:`FoldedInputLayer`, :class:`FoldedNorm`, :class:`FoldedReflect`); tools/distill_base.py's
            ``folded`` carries a network's weights over exactly.
        ranks: with ``fold``, the convolutions named in :data:`FACTORED_LAYERS` to factor (:func:`factored`),
            each to its [r_in, r_out].
        pad: how the layers inside the network pad their maps: ``"reflect"`` (Johnson et al.'s reflection,
            and replication where a ``fold`` network's layer computes it) or ``"zero"``, which the inference
            form and the exported runtimes take into the convolutions themselves, so no padded copy of a
            map is made (docs/performance.md). The image itself is reflected either way.

    Training uses the unclamped output (so gradients do not vanish at the range's edges); in eval
    mode the output is clamped to [0, 1].
    """

    def __init__(
        self,
        norm: str = "instance",
        upsample: str = "resize",
        width: float = 1.0,
        input_skip: bool = False,
        residual_blocks: int = 5,
        styles: int = 1,
        shuffle: int = 1,
        fold: bool = False,
        ranks: dict | None = None,
        pad: str = "reflect",
    ):
        super().__init__()
        if pad not in ("reflect", "zero"):
            raise ValueError(f"pad must be 'reflect' or 'zero', not {pad!r}")
        if styles < 1:
            raise ValueError(f"styles must be at least 1, not {styles}")
        if shuffle not in (1, 2):
            raise ValueError(f"shuffle must be 1 or 2, not {shuffle!r}")
        if pad == "zero" and not fold:
            raise ValueError("zero padding is for fold networks")
        if fold and (shuffle != 1 or upsample != "resize"):
            raise ValueError("fold computes the network of shuffle 1 and resize upsampling")
        if ranks and (not fold or set(ranks) - set(FACTORED_LAYERS)):
            raise ValueError(f"ranks takes fold and the layers {', '.join(FACTORED_LAYERS)}, not {ranks!r}")
        for name, pair in (ranks or {}).items():
            if len(pair) != 2 or not all(r is None or (isinstance(r, int) and r > 0) for r in pair):
                raise ValueError(
                    f"the ranks of {name} must be two positive whole numbers or null, not {pair!r}"
                )
        if ranks and ranks.get("into", [None])[0] is not None:
            # the inference form keeps the image exact through the first convolution only (TwoTermInputConv)
            raise ValueError("the first layer's input side stays whole: into takes [null, r_out]")
        c1, c2, c3 = (max(1, round(c * width)) for c in (32, 64, 128))
        self.config = {
            "norm": norm,
            "upsample": upsample,
            "width": width,
            "input_skip": input_skip,
            "residual_blocks": residual_blocks,
        }
        if styles > 1:
            self.config["styles"] = styles
        if shuffle > 1:
            self.config["shuffle"] = shuffle
        if fold:
            self.config["fold"] = True
        if ranks:
            self.config["ranks"] = {k: list(v) for k, v in ranks.items()}
        if pad != "reflect":
            self.config["pad"] = pad
        self.styles = styles
        self.style_names: list[str] | None = None  # set by load_model from the model file
        self.input_skip = input_skip
        # the full-resolution ends: Johnson et al.'s 9x9 convolutions and last upsampling, or (shuffle 2)
        # each 2x2 block of pixels folded into 12 channels at the input and unfolded at the output
        up = [UpsampleLayer(c3, c2, upsample)]
        if fold:
            # the folded maps of the full-resolution layers: 4 channels (pixel phases) for each
            into = [
                FoldedInputLayer(c1),
                FoldedNorm(_norm(norm, c1, styles)),
                nn.ReLU(inplace=True),
                nn.ReplicationPad2d(
                    (1, 0, 1, 0)
                ),  # the stride-2 3x3 layer reads row -1 (= row 1) of block -1
                nn.Conv2d(4 * c1, c2, 2),
            ]
            up = [nn.ReplicationPad2d(1), nn.Conv2d(c3, 4 * c2, 3), nn.PixelShuffle(2)]
            out = [
                nn.ReplicationPad2d(1),
                nn.Conv2d(c2, 4 * c1, 3),  # nearest x2 and a 3x3 layer: each output phase its own channels
                FoldedNorm(_norm(norm, c1, styles)),
                nn.ReLU(inplace=True),
                FoldedReflect(2),
                nn.Conv2d(4 * c1, 12, 5),
                nn.PixelShuffle(2),
            ]
        elif shuffle == 1:
            into = [
                ConvLayer(3, c1, 9),
                _norm(norm, c1, styles),
                nn.ReLU(inplace=True),
                ConvLayer(c1, c2, 3, stride=2),
            ]
            out = [
                UpsampleLayer(c2, c1, upsample),
                _norm(norm, c1, styles),
                nn.ReLU(inplace=True),
                ConvLayer(c1, 3, 9),
            ]
        else:
            into = [nn.PixelUnshuffle(2), ConvLayer(12, c2, 3)]
            out = [ConvLayer(c2, 12, 3), nn.PixelShuffle(2)]
        self.encoder = nn.Sequential(
            *into,
            _norm(norm, c2, styles),
            nn.ReLU(inplace=True),
            ConvLayer(c2, c3, 3, stride=2),
            _norm(norm, c3, styles),
            nn.ReLU(inplace=True),
        )
        self.residuals = nn.Sequential(*(ResidualBlock(c3, norm, styles) for _ in range(residual_blocks)))
        self.decoder = nn.Sequential(*up, _norm(norm, c2, styles), nn.ReLU(inplace=True), *out)
        if pad == "zero":
            self._zero_pads()
        for name, (r_in, r_out) in (ranks or {}).items():
            for parent, index in self.factored_slots(name):
                parent[index] = factored(parent[index], r_in, r_out)
        if input_skip:
            # start near the identity; a small (not zero) last layer lets gradients reach every layer
            # from the first iteration
            last = self.last_conv()
            with torch.no_grad():
                last.weight.mul_(SKIP_INIT_SCALE)
            nn.init.zeros_(last.bias)

    def _zero_pads(self) -> None:
        """Every padding after the first layer's (which reads the image) made a zero padding of the same
        widths; a :class:`FoldedReflect` of k blocks pads the folded map by k (the full map by 2k)."""
        first = set(map(id, self.encoder[0].modules()))
        for parent in list(self.modules()):
            for name, child in parent.named_children():
                if id(child) in first:
                    continue
                if isinstance(child, (nn.ReflectionPad2d, nn.ReplicationPad2d)):
                    setattr(parent, name, nn.ZeroPad2d(child.padding))
                elif isinstance(child, FoldedReflect):
                    setattr(parent, name, nn.ZeroPad2d(child.blocks))

    def factored_slots(self, name: str) -> list[tuple[nn.Sequential, int]]:
        """Where the convolution(s) ``name`` of :data:`FACTORED_LAYERS` sit in a ``fold`` network: (parent,
        index) pairs."""
        if name == "residual":
            return [(block.body[i], 1) for block in self.residuals for i in (0, 3)]
        return [
            {
                "into": (self.encoder[0], 1),
                "down": (self.encoder, 4),
                "down2": (self.encoder[7], 1),
                "up1": (self.decoder, 1),
                "up2": (self.decoder, 6),
                "out": (self.decoder, 10),
            }[name]
        ]

    def last_conv(self) -> nn.Conv2d:
        """The convolution that writes the output's colours."""
        return [m for m in self.decoder.modules() if isinstance(m, nn.Conv2d)][-1]

    def conditional_norms(self) -> list[ConditionalInstanceNorm2d]:
        return [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm2d)]

    def style_mix(self, style) -> torch.Tensor:
        """The (batch or 1, styles) weights of ``style``: an index, a batch of indices, or weights
        over the styles ((styles,) or (batch, styles); used as given, so they may sum to anything)."""
        device = next(self.parameters()).device
        if isinstance(style, int) or (
            isinstance(style, torch.Tensor) and style.dtype in (torch.int64, torch.int32)
        ):
            index = torch.as_tensor(style, device=device).reshape(-1)
            if ((index < 0) | (index >= self.styles)).any():
                raise ValueError(f"style index out of range: the network holds {self.styles} styles")
            return F.one_hot(index, self.styles).float()
        mix = torch.as_tensor(style, dtype=torch.float32, device=device)
        mix = mix.reshape(1, -1) if mix.dim() == 1 else mix
        if mix.shape[-1] != self.styles:
            raise ValueError(f"a mix needs {self.styles} weights, got {mix.shape[-1]}")
        return mix

    def forward(self, x: torch.Tensor, style=None, clamp: bool | None = None) -> torch.Tensor:
        """The stylized batch; ``clamp`` (default: in eval mode) clamps it to [0, 1]."""
        if self.styles > 1:
            if style is None:
                raise ValueError(f"this network holds {self.styles} styles: call it as net(x, style)")
            mix = self.style_mix(style)
            for norm in self.conditional_norms():
                norm.mix = mix
        elif style is not None and not (isinstance(style, int) and style == 0):
            raise ValueError("this network holds one style")
        h, w = x.shape[-2:]
        if torch.onnx.is_in_onnx_export():
            # traced: padding must stay arithmetic on the (symbolic) size, not a constant
            ph, pw = (_MULTIPLE - h % _MULTIPLE) % _MULTIPLE, (_MULTIPLE - w % _MULTIPLE) % _MULTIPLE
            padded = F.pad(x, (0, pw, 0, ph), mode="replicate")
        else:
            ph = max(_MIN_SIZE, -(-h // _MULTIPLE) * _MULTIPLE) - h
            pw = max(_MIN_SIZE, -(-w // _MULTIPLE) * _MULTIPLE) - w
            padded = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        y = self.decoder(self.residuals(self.encoder(padded)))[..., :h, :w]
        if self.input_skip:
            y = y + x
        return y.clamp(0, 1) if (not self.training if clamp is None else clamp) else y


def single_style(model: TransformerNet, style) -> TransformerNet:
    """The one-style network of ``style`` (an index or a mix) of a multi-style ``model``: the same
    weights, with each conditional norm's scale and shift replaced by the style's (or the mix's
    weighted sums). It computes what ``model(x, style)`` computes, and everything built for one
    style (the inference form, reduced precision, compiling, tiles) applies to it unchanged."""
    if model.styles == 1:
        return model
    mix = model.style_mix(style).detach()
    if mix.shape[0] != 1:
        raise ValueError("single_style takes one style or one mix, not a batch")
    options = {k: v for k, v in model.config.items() if k != "styles"}
    one = TransformerNet(**options).to(next(model.parameters()).device)
    state = {}
    for key, value in model.state_dict().items():
        module = model.get_submodule(key.rsplit(".", 1)[0])
        state[key] = (mix @ value)[0] if isinstance(module, ConditionalInstanceNorm2d) else value
    one.load_state_dict(state)
    return one.train(model.training)


def replace_modules(model: nn.Module, select, make) -> nn.Module:
    """Replace, in place, every submodule ``m`` of ``model`` for which ``select(m)`` holds by ``make(m)``;
    returns ``model``. The inference form, tiles and video swap the network's norms through it."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if select(child):
                setattr(module, name, make(child))
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
