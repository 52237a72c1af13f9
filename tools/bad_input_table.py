"""Try every bad input on the command line; print a markdown table of exit status and message.

python tools/bad_input_table.py [--data data]
"""

import argparse
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastst import TransformerNet

ROOT = Path(__file__).resolve().parent.parent


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _bad_images(tmp: Path) -> dict[str, Path]:
    """Bad image files, unusual but valid ones, and folders of them; {name: path}."""
    good = tmp / "good.jpg"
    Image.new("RGB", (64, 48), (120, 80, 40)).save(good)
    Image.new("RGB", (64, 48), (120, 80, 40)).save(tmp / "good.png")
    (tmp / "zero.jpg").write_bytes(b"")
    (tmp / "text.jpg").write_text("not an image\n")
    (tmp / "trunc.jpg").write_bytes(good.read_bytes()[:300])
    (tmp / "trunc.png").write_bytes((tmp / "good.png").read_bytes()[:60])
    (tmp / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + _png_chunk(b"IEND", b"")
    )
    odd = tmp / "odd"
    odd.mkdir()
    Image.new("CMYK", (40, 30), (0, 100, 200, 10)).save(odd / "cmyk.jpg")
    Image.fromarray(np.full((20, 30), 40000, dtype="uint16")).save(odd / "deep16.png")
    Image.new("L", (20, 30), 100).save(odd / "gray.png")
    p = Image.new("P", (20, 30))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.save(odd / "palette_alpha.png", transparency=0)
    Image.new("RGBA", (20, 30), (10, 20, 30, 128)).save(odd / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (30, 20)).save(odd / "exif_rotated.jpg", exif=exif)
    Image.new("RGB", (1, 1)).save(odd / "one.png")
    Image.new("RGB", (3, 7)).save(odd / "three_by_seven.png")
    Image.new("RGB", (4097, 3)).save(odd / "wide.png")
    folders = {
        "mixed": ("a.jpg", "zero.jpg", "text.jpg", "trunc.jpg", "trunc.png"),
        "allbad": ("zero.jpg", "text.jpg"),
    }
    for folder, names in folders.items():
        (tmp / folder).mkdir()
        for name in names:
            shutil.copy(good if name == "a.jpg" else tmp / name, tmp / folder / name)
    (tmp / "empty").mkdir()
    (tmp / "exists.png").write_bytes(b"keep me")
    return {"good": good, "odd": odd, **{name: tmp / name for name in ("mixed", "allbad", "empty")}}


def _bad_models(tmp: Path) -> None:
    """model.pth, and model files that are text, truncated, of another width, or a pickle that runs code."""
    net = TransformerNet(width=0.25)
    torch.save({"model": net.state_dict(), "net": net.config}, tmp / "model.pth")
    (tmp / "notmodel.pth").write_text("hello")
    (tmp / "trunc.pth").write_bytes((tmp / "model.pth").read_bytes()[:4000])
    torch.save({"model": net.state_dict(), "net": dict(net.config, width=0.5)}, tmp / "otherwidth.pth")

    class Evil:
        def __reduce__(self):
            return (eval, ("print('owned')",))

    torch.save({"model": Evil()}, tmp / "evil.pth", pickle_module=pickle)


def make_cases(tmp: Path, data: Path) -> dict:
    """{case: the command line's arguments}."""
    files = _bad_images(tmp)
    _bad_models(tmp)
    good = files["good"]
    style = data / "styles" / "starry_night.jpg"
    photos = data / "train" / "bsds500_trainval"
    train = ["train", "--preset", "smoke", "--device", "cpu", "--quiet", "--iterations", "2"]
    stylize = ["stylize", "--model", tmp / "model.pth"]

    def one(name):
        return stylize + ["--input", tmp / name, "--output", tmp / "o.png"]

    def with_model(name):
        return ["stylize", "--model", tmp / name, "--input", good, "--output", tmp / "o.png"]

    def training(style_, data_, out, *more):
        return train + ["--style", style_, "--data", data_, "--out", out, *more]

    return {
        "stylize: missing input": one("nope.jpg"),
        "stylize: zero-byte file": one("zero.jpg"),
        "stylize: text file named .jpg": one("text.jpg"),
        "stylize: truncated JPEG": one("trunc.jpg"),
        "stylize: truncated PNG": one("trunc.png"),
        "stylize: 100000x100000 header": one("bomb.png"),
        "stylize: unusual but valid images (CMYK, 16-bit, L, P+alpha, RGBA, EXIF, 1x1, 3x7, 4097x3)": stylize
        + ["--input", files["odd"], "--output", tmp / "odd_out"],
        "stylize: folder of mostly bad files": stylize
        + ["--input", files["mixed"], "--output", tmp / "mixed_out"],
        "stylize: output file exists": stylize + ["--input", good, "--output", tmp / "exists.png"],
        "stylize: output folder not writable": stylize + ["--input", files["mixed"], "--output", "/proc/x"],
        "stylize: model is a text file": with_model("notmodel.pth"),
        "stylize: truncated model": with_model("trunc.pth"),
        "stylize: model of another width": with_model("otherwidth.pth"),
        "stylize: pickle that runs code": with_model("evil.pth"),
        "stylize: model is a folder": ["stylize", "--model", tmp, "--input", good, "--output", tmp / "o.png"],
        "train: --data missing": training(style, tmp / "absent", tmp / "r1"),
        "train: --data is a file": training(style, good, tmp / "r2"),
        "train: --data empty": training(style, files["empty"], tmp / "r3"),
        "train: --data with no usable images": training(style, files["allbad"], tmp / "r4"),
        "train: --style missing": training(tmp / "nope.jpg", photos, tmp / "r5"),
        "train: --style a folder": training(tmp, photos, tmp / "r6"),
        "train: --style a text file": training(tmp / "text.jpg", photos, tmp / "r7"),
        "train: --out not writable": training(style, photos, "/proc/run"),
        "train: negative --lr": training(style, photos, tmp / "r8", "--lr", "-1"),
        "data fetch: mirror missing": ["data", "fetch", "--mirror", tmp / "nomirror", "--dest", tmp / "d"],
        "data fetch: mirror with wrong files": [
            "data",
            "fetch",
            "--mirror",
            files["mixed"],
            "--dest",
            tmp / "d2",
        ],
        "export: model is a text file": ["export", "--model", tmp / "notmodel.pth", "--onnx", tmp / "m.onnx"],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT / "data"))
    args = parser.parse_args()
    rows, tracebacks = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in make_cases(Path(tmp), Path(args.data)).items():
            r = subprocess.run(
                [sys.executable, "-m", "fastst", *map(str, argv)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=600,
            )
            lines = [l for l in (r.stderr + r.stdout).splitlines() if l.strip()]
            tracebacks += "Traceback" in r.stderr
            shown = " / ".join(l.replace(tmp, "$TMP") for l in lines[-3:])
            rows.append(f"| {name} | {r.returncode} | {shown.replace('|', '/')} |")
    print("| case | exit | message |\n|---|---|---|")
    print("\n".join(rows))
    print(f"\n{len(rows)} cases, {tracebacks} with a traceback")


if __name__ == "__main__":
    main()
