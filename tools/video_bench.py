"""Video: frames per second and flicker, in one run on this machine. Writes results/video.json.

- Speed: a camera pan (fastst.clips.make_pan_clip) at 360p, 720p and 1080p, stylized frame by frame
  in eager fp32 (the network as trained: what a plain loop does) against ``fastst stylize`` (the
  inference form in the device's default precision) in one pass (per-frame statistics, the grid
  anchored) and in its default mode (statistics from a sample of the clip: a first pass over up to
  CLIP_SAMPLE frames, which a short clip pays in full); decoding and encoding included.
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

from fastst.clips import PAN_STEP, make_pan_clip
from fastst.data import data_dir
from fastst.report import measured_on
from fastst.results import write_result
from fastst.stylize import Stylizer, load_model, stylize
from fastst.temporal import DEFAULT_TEMPORAL, TEMPORAL_MODES, flicker
from fastst.video import CLIP_SAMPLE, read_frames, stylize_video


def plain(model, clip: Path, out: Path) -> float:
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


def table(result: dict) -> list[dict]:
    """The tables of docs/video_and_app.md made of this study's result: speed, then flicker."""
    speed = {
        "columns": [
            "clip",
            "frames",
            "frame by frame, eager fp32",
            "`fastst stylize`, one pass",
            "`fastst stylize`, default",
        ],
        "rows": [
            [
                f"{row['size']} ({row['width']} x {row['height']})",
                row["frames"],
                f"{row['plain_fps']:.2f} frames/s",
                f"{row['fastst_one_pass_fps']:.2f} frames/s ({row['speedup_one_pass']:.2f}x)",
                f"{row['fastst_default_fps']:.2f} frames/s ({row['speedup_default']:.2f}x)",
            ]
            for row in result["speed"]
        ],
    }
    default, clip = result["default"], result["flicker_clip"]
    rows = []
    for row in result["flicker"]:
        chosen = row["temporal"] == default["temporal"] and row["anchor"] == default["anchor"]
        rows.append(
            [
                f"{row['temporal']}{' (default)' if chosen else ''}",
                "yes" if row["anchor"] else "no",
                f"{row['flicker']:.2f}",
                f"{row['relative']:.2f}",
            ]
        )
    stability = {
        "columns": [
            "instance-norm statistics",
            "grid anchored to the scene",
            "flicker",
            "against frame by frame",
        ],
        "rows": rows,
        "note": f"Model `{result['model']}` in {result['precision']} (`fastst stylize`); the default's first "
        f"pass reads up to {result['clip_sample']} frames. Flicker on a {clip['frames']}-frame "
        f"{clip['width']} x {clip['height']} pan over {result['photo']} moving {result['pan_step'][0]} and "
        f"{result['pan_step'][1]} px a frame; {measured_on(result)} (`results/video.json`).",
    }
    return [speed, stability]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="starry_night")
    parser.add_argument("--frames", type=int, default=24, help="frames of the 360p and 720p speed clips")
    args = parser.parse_args()

    model = load_model(args.model)
    photo = data_dir() / "test" / "demo" / "chicago.jpg"
    work = Path(tempfile.mkdtemp(prefix="fastst-video-"))

    speed = []
    frames_of = {"360p": args.frames, "720p": args.frames, "1080p": max(8, args.frames * 2 // 3)}
    for label, size in {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}.items():
        frames = frames_of[label]
        clip = make_pan_clip(photo, work / f"{label}.mp4", frames=frames, size=size, audio=False)
        runs = {
            "plain": lambda: plain(model, clip, work / "plain.mp4"),
            # one pass: the network's own per-frame statistics, the grid anchored
            "fastst_one_pass": lambda: (
                stylize_video(model, clip, work / "one.mp4", temporal="frame", progress=False).seconds
            ),
            # the default: statistics from a sample of the clip (a first pass over up to CLIP_SAMPLE frames)
            "fastst_default": lambda: (
                stylize_video(model, clip, work / "default.mp4", progress=False).seconds
            ),
        }
        seconds = {}
        for round_ in range(2):  # interleaved, the first round as warm-up for all
            for key, run in runs.items():
                seconds[key] = run()
        row = {"size": label, "width": size[0], "height": size[1], "frames": frames}
        row.update({f"{key}_fps": frames / value for key, value in seconds.items()})
        row["speedup_one_pass"] = row["fastst_one_pass_fps"] / row["plain_fps"]
        row["speedup_default"] = row["fastst_default_fps"] / row["plain_fps"]
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
            "clip_sample": CLIP_SAMPLE,
            "precision": Stylizer(model).precision,
            "speed": speed,
            "flicker": stability,
            "flicker_clip": {"frames": 48, "width": 320, "height": 240},
        },
    )


if __name__ == "__main__":
    main()
