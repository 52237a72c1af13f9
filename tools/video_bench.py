"""Video: frames per second and flicker, in one run on this machine. Writes results/video.json.

- Speed: a camera pan (fastst.video.make_pan_clip) over a held-out photo at 360p, 720p and 1080p,
  stylized frame by frame in eager fp32 (the network as trained, one frame a pass: what a plain loop
  does) against ``fastst stylize`` on a clip (inference form, batches, the default precision and
  temporal mode), decoding and encoding included.
- Flicker (fastst.temporal.flicker, the pan's motion known): every temporal mode with and without the
  grid anchor, against frame by frame.

    python tools/video_bench.py [MODEL] [--frames N]
"""

import argparse
import tempfile
import time
from pathlib import Path

import av
import torch

from fastst.data import data_dir
from fastst.results import write_result
from fastst.stylize import load_model, stylize
from fastst.temporal import DEFAULT_TEMPORAL, PAN_STEP, TEMPORAL_MODES, flicker
from fastst.video import make_pan_clip, read_frames, stylize_video

parser = argparse.ArgumentParser()
parser.add_argument("model", nargs="?", default="starry_night")
parser.add_argument("--frames", type=int, default=12, help="frames of each speed clip")
args = parser.parse_args()

model = load_model(args.model)
photo = data_dir() / "test" / "demo" / "chicago.jpg"
work = Path(tempfile.mkdtemp(prefix="fastst-video-"))


def plain(clip: Path, out: Path) -> float:
    """Frame by frame, eager fp32, decode and encode included; returns seconds."""
    start = time.perf_counter()
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        stream = src.streams.video[0]
        enc = dst.add_stream("libx264", rate=stream.average_rate)
        enc.width, enc.height = stream.codec_context.width, stream.codec_context.height
        enc.pix_fmt = "yuv420p"
        for frame in src.decode(stream):
            image = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).float() / 255
            styled = stylize(model, image, precision="fp32")
            rgb = (styled * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
            dst.mux(enc.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        dst.mux(enc.encode())
    return time.perf_counter() - start


speed = []
for label, size in {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}.items():
    clip = make_pan_clip(photo, work / f"{label}.mp4", frames=args.frames, size=size, audio=False)
    seconds = {}
    for round_ in range(2):  # interleaved, the first round as warm-up for both
        seconds["plain"] = plain(clip, work / "plain.mp4")
        seconds["fastst"] = stylize_video(model, clip, work / "fast.mp4", progress=False).seconds
    row = {
        "size": label,
        "width": size[0],
        "height": size[1],
        "frames": args.frames,
        "plain_fps": args.frames / seconds["plain"],
        "fastst_fps": args.frames / seconds["fastst"],
    }
    row["speedup"] = row["fastst_fps"] / row["plain_fps"]
    speed.append(row)
    print(row)

clip = make_pan_clip(photo, work / "pan.mp4", frames=48)
source = read_frames(clip)
stability = []
for temporal in TEMPORAL_MODES:
    for anchor in (False, True):
        out = work / f"{temporal}-{anchor}.mp4"
        stylize_video(model, clip, out, temporal=temporal, anchor=anchor, progress=False)
        row = {
            "temporal": temporal,
            "anchor": anchor,
            "flicker": flicker(read_frames(out), source, PAN_STEP),
        }
        stability.append(row)
        print(row)
reference = next(r["flicker"] for r in stability if r["temporal"] == "frame" and not r["anchor"])
for row in stability:
    row["relative"] = row["flicker"] / reference
write_result(
    "video",
    {
        "model": args.model,
        "photo": photo.name,
        "pan_step": list(PAN_STEP),
        "default": {"temporal": DEFAULT_TEMPORAL, "anchor": True},
        "speed": speed,
        "flicker": stability,
        "flicker_clip": {"frames": 48, "width": 320, "height": 240},
    },
)
