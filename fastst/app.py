"""``python -m fastst app``: a local web app (Gradio) to stylize a photo or the webcam in the browser.

It runs the command line's path, a :class:`fastst.stylize.Stylizer`: the fastest runtime installed for
the photo's size, in the device's default precision, tiles for very large photos.
Uploads are read by :func:`fastst.io.load_image`, which refuses what is not an image and decompression
bombs; files above ``max_file_size`` are refused by the server before they reach it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastst.anystyle import checked_palette, is_one_pass, load_anystyle, painting_network
from fastst.config import runs_dir
from fastst.errors import FaststError
from fastst.io import file_digest, load_image, pil_to_tensor, resize_longer_side, save_image, tensor_to_pil
from fastst.presets import REFINE_ITERATIONS, REFINE_START
from fastst.refine import refine_painting
from fastst.runtime import resolve_device
from fastst.stylize import (
    DEFAULT_PRECISION,
    Stylizer,
    load_model,
    pretrained_styles,
    resolve_shipped_style,
)

NO_MIX = "none"
# The webcam's frames are shrunk to this on their longer side, to keep up with the stream on a CPU.
LIVE_SIZE = 320
MAX_FILE_SIZE = "25mb"


def _gradio():
    try:
        import gradio as gr
    except ImportError:
        raise FaststError('the app needs Gradio: pip install "fastst[app]"') from None
    return gr


def model_choices(extra: list[str | os.PathLike] = ()) -> dict[str, tuple[str, str | None]]:
    """{label: (model file, style)}: the shipped styles, then the trained models under the runs folder
    (and ``extra`` model files)."""
    choices = {name: (name, name) for name in pretrained_styles()}
    trained = sorted(runs_dir().glob("**/model.pth")) if runs_dir().is_dir() else []
    for path in [*trained, *map(Path, extra)]:
        if path in trained and is_one_pass(path):  # takes a painting, not a style (--style-image)
            continue
        try:
            label = str(path.parent.relative_to(runs_dir()))
        except ValueError:
            label = str(path)
        choices[f"trained: {label}"] = (str(path), None)
    return choices


class Stylist:
    """The models the app has loaded, one per (file, style or mix), in their fast form."""

    def __init__(
        self,
        device: str = "auto",
        precision: str = DEFAULT_PRECISION,
        compile: bool = False,
        one_pass: str | None = None,
    ):
        self.device, self.precision, self.compile = resolve_device(device), precision, compile
        self.one_pass = one_pass  # the one-pass model for uploaded paintings (default: as --style-image's)
        self.choices = model_choices()
        self.refined: dict[str, str] = {}  # a painting's content -> its own network's model file

    @functools.lru_cache(maxsize=8)
    def network(self, label: str, mix_with: str = NO_MIX, mix: float = 0.0):
        if label not in self.choices:
            raise FaststError(f"unknown style or model: {label}")
        path, style = self.choices[label]
        if style is not None and mix_with != NO_MIX and mix > 0:
            style = f"{style}:{1 - mix},{mix_with}:{mix}" if mix < 1 else mix_with
        if style is not None:
            path = resolve_shipped_style(style)
        return Stylizer(load_model(path, self.device, style), self.precision, self.compile)

    @functools.lru_cache(maxsize=8)
    def _painting(self, digest: str, path: str, palette: float | None) -> Stylizer:
        return Stylizer(
            painting_network(path, self.anystyle(), self.device, palette),
            self.precision,
            self.compile,
            "auto",
            "auto",
        )

    @functools.lru_cache(maxsize=1)
    def anystyle(self):
        return load_anystyle(self.one_pass)

    @functools.lru_cache(maxsize=4)
    def _refined(self, path: str) -> Stylizer:
        return Stylizer(load_model(path, self.device), self.precision, self.compile, "auto")

    def chosen(
        self, label: str, mix_with: str, mix: float, painting: str | None, palette: float | None = None
    ) -> Stylizer:
        """The shipped style, mix or trained model chosen, or the uploaded painting's network at the
        palette fraction ``palette`` (default: the one-pass model's; computed once per painting and
        fraction: the webcam's frames reuse it), its own trained network once :meth:`refine` made it."""
        if not painting:
            return self.network(label, mix_with, mix)
        with _upload_named(painting):
            digest = file_digest(painting)
            if digest in self.refined:
                return self._refined(self.refined[digest])
            return self._painting(digest, painting, None if palette is None else float(palette))

    def refine(self, painting: str | None) -> str:
        """Train the uploaded painting's own network (``fastst stylize --refine``'s, from the app's
        one-pass model where one was given, as ``--model`` sets it there), which the photo and the webcam
        then use; a message to show."""
        if not painting:
            raise FaststError("upload a painting first")
        with _upload_named(painting):
            model = refine_painting(painting, REFINE_ITERATIONS, self.one_pass or REFINE_START)
            self.refined[file_digest(painting)] = str(model)
        return (
            f"{Path(painting).name}: its own network is ready; Stylize and the webcam use it "
            "(the colour slider no longer applies: it sets the one pass's colours, and --palette does not "
            "combine with --refine)"
        )

    def photo(self, upload, snap, label, mix_with, mix, strength, keep_color, painting, palette, max_size):
        path = upload or snap
        if path is None:
            raise FaststError("upload a photo or take one with the webcam first")
        with _upload_named(path):
            image = load_image(path, int(max_size) if max_size else None)
        stylizer = self.chosen(label, mix_with, float(mix), painting, palette)
        out = stylizer(image, float(strength), bool(keep_color))
        style = Path(painting).stem if painting else label.split(":")[-1].strip().replace("/", "-")
        name = f"{Path(path).stem}-{style}.png"
        target = Path(tempfile.mkdtemp(prefix="fastst-app-")) / name
        save_image(out, target)
        return str(target)

    def frame(self, frame: np.ndarray, label, mix_with, mix, strength, keep_color, painting, palette):
        stylizer = self.chosen(label, mix_with, float(mix), painting, palette)
        out = stylizer(pil_to_tensor(_shrunk(frame)), float(strength), bool(keep_color))
        return np.asarray(tensor_to_pil(out))


@contextlib.contextmanager
def _upload_named(path: str):
    """Errors about an upload name the file as the user knows it, not by its temporary path."""
    try:
        yield
    except FaststError as e:
        raise FaststError(str(e).replace(str(path), Path(path).name)) from None


def _shrunk(frame: np.ndarray) -> Image.Image:
    im = Image.fromarray(frame).convert("RGB")
    return resize_longer_side(im, LIVE_SIZE) if max(im.size) > LIVE_SIZE else im


class _Rate:
    """Frames per second of the live stream, over its last frames."""

    def __init__(self, window: int = 10):
        self.times: list[float] = []
        self.window = window

    def tick(self) -> str:
        self.times = [*self.times[-self.window :], time.perf_counter()]
        if len(self.times) < 2:
            return "frames per second: measuring"
        return f"frames per second: {(len(self.times) - 1) / (self.times[-1] - self.times[0]):.1f}"


def _painting_row(gr, stylist: Stylist, shown_errors):
    """The painting upload, its palette fraction, and the button that trains the painting's own network;
    the upload box and the fraction's slider."""
    with gr.Row():
        painting = gr.File(
            file_types=["image"],
            type="filepath",
            label="Or any painting as the style (one pass, no training)",
            elem_id="painting",
        )
        with gr.Column():
            value, takes = _model_palette(stylist)
            palette = gr.Slider(
                0,
                1,
                value=value,
                step=0.05,
                label="The painting's colours in one pass (0: the network's own, 1: the painting's)"
                + ("" if takes else "; this one-pass model takes none"),
                interactive=takes,
                elem_id="palette",
            )
            button = gr.Button("Or train this painting's own network first", elem_id="refine")
            refined = gr.Markdown(elem_id="refined")

    def refine(path, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (gradio reads the default)
        return shown_errors(stylist.refine)(path)

    button.click(refine, painting, refined)
    return painting, palette


def _model_palette(stylist: Stylist) -> tuple[float, bool]:
    """The palette fraction of the app's one-pass model, and whether the model takes another (none where
    the model is missing here: a painting then gets its one-line error)."""
    try:
        model = stylist.anystyle()
        checked_palette(model, 1.0)
        return model.palette, True
    except FaststError:
        return 0.0, False


def build_app(
    device: str = "auto",
    precision: str = DEFAULT_PRECISION,
    compile: bool = False,
    one_pass: str | None = None,
):
    """The app's page (a ``gradio.Blocks``)."""
    gr = _gradio()
    stylist = Stylist(device, precision, compile, one_pass)
    labels = list(stylist.choices)
    shipped = [label for label, (_, style) in stylist.choices.items() if style is not None]
    rate = _Rate()

    def shown_errors(fn):
        @functools.wraps(fn)
        def wrapped(*args):
            try:
                return fn(*args)
            except FaststError as e:
                raise gr.Error(str(e), print_exception=False) from None

        return wrapped

    def live(frame, *args):
        if frame is None:
            return None, "frames per second: waiting for the camera"
        out = shown_errors(stylist.frame)(frame, *args)
        return out, rate.tick()

    with gr.Blocks(title="fastst") as page:
        gr.Markdown(
            "# fastst\nFast neural style transfer: pick a style or upload any painting, then a photo "
            "or the webcam."
        )
        with gr.Row():
            style = gr.Radio(
                labels, value=labels[0] if labels else None, label="Style or model", elem_id="style"
            )
        with gr.Row():
            mix_with = gr.Dropdown(
                [NO_MIX, *shipped], value=NO_MIX, label="Mix with (shipped styles)", elem_id="mix-with"
            )
            mix = gr.Slider(0, 1, value=0.5, step=0.05, label="Mix weight", elem_id="mix")
            strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength", elem_id="strength")
            keep_color = gr.Checkbox(label="Preserve colours", elem_id="keep-color")
        painting, palette = _painting_row(gr, stylist, shown_errors)
        controls = [style, mix_with, mix, strength, keep_color, painting, palette]
        with gr.Tab("Photo"):
            with gr.Row():
                with gr.Column():
                    # a file box, not an image box: the upload reaches fastst's own reader, which
                    # explains what is wrong with a file that is not an image
                    upload = gr.File(file_types=["image"], type="filepath", label="Photo", elem_id="upload")
                    snap = gr.Image(
                        sources=["webcam"],
                        type="filepath",
                        label="Or take one with the webcam",
                        elem_id="snap",
                    )
                result = gr.Image(type="filepath", label="Result (full size)", format="png", elem_id="result")
            max_size = gr.Number(
                value=0, precision=0, label="Shrink the longer side to (0: full size)", elem_id="max-size"
            )
            button = gr.Button("Stylize", variant="primary", elem_id="go")
            button.click(shown_errors(stylist.photo), [upload, snap, *controls, max_size], result)
        with gr.Tab("Live webcam"):
            with gr.Row():
                camera = gr.Image(
                    sources=["webcam"], streaming=True, type="numpy", label="Webcam", elem_id="camera"
                )
                styled = gr.Image(label="Stylized", elem_id="live")
            fps = gr.Markdown("frames per second: waiting for the camera", elem_id="fps")
            camera.stream(live, [camera, *controls], [styled, fps], stream_every=0.1, concurrency_limit=1)
    return page


def serve(
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "auto",
    precision: str = DEFAULT_PRECISION,
    compile: bool = False,
    open_browser: bool = False,
    block: bool = True,
    one_pass: str | None = None,
):
    """Start the app on ``host``:``port`` (this machine only, unless told otherwise)."""
    if one_pass is not None:
        load_anystyle(one_pass)  # a missing or foreign file: a one-line error before the page starts
    page = build_app(device, precision, compile, one_pass)
    torch.set_grad_enabled(False)
    page.queue()
    page.launch(
        server_name=host,
        server_port=port,
        inbrowser=open_browser,
        max_file_size=MAX_FILE_SIZE,
        prevent_thread_lock=not block,
        show_error=True,
        quiet=False,
    )
    return page
