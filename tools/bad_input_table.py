"""Try every bad input on the command line; print a markdown table of exit status and message.

python tools/bad_input_table.py [--data data]
"""

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def make_cases(tmp: Path, data: Path) -> dict:
    good = tmp / "good.jpg"
    Image.new("RGB", (64, 48), (120, 80, 40)).save(good)
    Image.new("RGB", (64, 48), (120, 80, 40)).save(tmp / "good.png")
    (tmp / "zero.jpg").write_bytes(b"")
    (tmp / "text.jpg").write_text("not an image\n")
    (tmp / "trunc.jpg").write_bytes(good.read_bytes()[:300])
    (tmp / "trunc.png").write_bytes((tmp / "good.png").read_bytes()[:60])

    def chunk(kind, payload):
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    (tmp / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + chunk(b"IEND", b"")
    )
    odd = tmp / "odd"
    odd.mkdir()
    Image.new("CMYK", (40, 30), (0, 100, 200, 10)).save(odd / "cmyk.jpg")
    Image.fromarray(__import__("numpy").full((20, 30), 40000, dtype="uint16")).save(odd / "deep16.png")
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
    mixed = tmp / "mixed"
    mixed.mkdir()
    shutil.copy(good, mixed / "a.jpg")
    for name in ("zero.jpg", "text.jpg", "trunc.jpg", "trunc.png"):
        shutil.copy(tmp / name, mixed / name)
    empty = tmp / "empty"
    empty.mkdir()
    allbad = tmp / "allbad"
    allbad.mkdir()
    for name in ("zero.jpg", "text.jpg"):
        shutil.copy(tmp / name, allbad / name)
    # models
    import torch

    from fastst import TransformerNet

    net = TransformerNet(width=0.25)
    torch.save({"model": net.state_dict(), "net": net.config}, tmp / "model.pth")
    (tmp / "notmodel.pth").write_text("hello")
    (tmp / "trunc.pth").write_bytes((tmp / "model.pth").read_bytes()[:4000])
    other = dict(net.config, width=0.5)
    torch.save({"model": net.state_dict(), "net": other}, tmp / "otherwidth.pth")
    import pickle

    class Evil:
        def __reduce__(self):
            return (eval, ("print('owned')",))

    torch.save({"model": Evil()}, tmp / "evil.pth", pickle_module=pickle)
    (tmp / "exists.png").write_bytes(b"keep me")
    style = data / "styles" / "starry_night.jpg"
    photos = data / "train" / "bsds500_trainval"
    train = ["train", "--preset", "smoke", "--device", "cpu", "--quiet", "--iterations", "2"]
    stylize = ["stylize", "--model", tmp / "model.pth"]
    cases = {
        "stylize: missing input": stylize + ["--input", tmp / "nope.jpg", "--output", tmp / "o.png"],
        "stylize: zero-byte file": stylize + ["--input", tmp / "zero.jpg", "--output", tmp / "o.png"],
        "stylize: text file named .jpg": stylize + ["--input", tmp / "text.jpg", "--output", tmp / "o.png"],
        "stylize: truncated JPEG": stylize + ["--input", tmp / "trunc.jpg", "--output", tmp / "o.png"],
        "stylize: truncated PNG": stylize + ["--input", tmp / "trunc.png", "--output", tmp / "o.png"],
        "stylize: 100000x100000 header": stylize + ["--input", tmp / "bomb.png", "--output", tmp / "o.png"],
        "stylize: unusual but valid images (CMYK, 16-bit, L, P+alpha, RGBA, EXIF, 1x1, 3x7, 4097x3)": stylize
        + ["--input", odd, "--output", tmp / "odd_out"],
        "stylize: folder of mostly bad files": stylize
        + ["--input", tmp / "mixed", "--output", tmp / "mixed_out"],
        "stylize: output file exists": stylize
        + ["--input", tmp / "good.jpg", "--output", tmp / "exists.png"],
        "stylize: output folder not writable": stylize + ["--input", tmp / "mixed", "--output", "/proc/x"],
        "stylize: model is a text file": [
            "stylize",
            "--model",
            tmp / "notmodel.pth",
            "--input",
            good,
            "--output",
            tmp / "o.png",
        ],
        "stylize: truncated model": [
            "stylize",
            "--model",
            tmp / "trunc.pth",
            "--input",
            good,
            "--output",
            tmp / "o.png",
        ],
        "stylize: model of another width": [
            "stylize",
            "--model",
            tmp / "otherwidth.pth",
            "--input",
            good,
            "--output",
            tmp / "o.png",
        ],
        "stylize: pickle that runs code": [
            "stylize",
            "--model",
            tmp / "evil.pth",
            "--input",
            good,
            "--output",
            tmp / "o.png",
        ],
        "stylize: model is a folder": ["stylize", "--model", tmp, "--input", good, "--output", tmp / "o.png"],
        "train: --data missing": train + ["--style", style, "--data", tmp / "absent", "--out", tmp / "r1"],
        "train: --data is a file": train + ["--style", style, "--data", good, "--out", tmp / "r2"],
        "train: --data empty": train + ["--style", style, "--data", empty, "--out", tmp / "r3"],
        "train: --data with no usable images": train
        + ["--style", style, "--data", allbad, "--out", tmp / "r4"],
        "train: --style missing": train
        + ["--style", tmp / "nope.jpg", "--data", photos, "--out", tmp / "r5"],
        "train: --style a folder": train + ["--style", tmp, "--data", photos, "--out", tmp / "r6"],
        "train: --style a text file": train
        + ["--style", tmp / "text.jpg", "--data", photos, "--out", tmp / "r7"],
        "train: --out not writable": train + ["--style", style, "--data", photos, "--out", "/proc/run"],
        "train: negative --lr": train
        + ["--style", style, "--data", photos, "--out", tmp / "r8", "--lr", "-1"],
        "data fetch: mirror missing": ["data", "fetch", "--mirror", tmp / "nomirror", "--dest", tmp / "d"],
        "data fetch: mirror with wrong files": [
            "data",
            "fetch",
            "--mirror",
            tmp / "mixed",
            "--dest",
            tmp / "d2",
        ],
        "export: model is a text file": ["export", "--model", tmp / "notmodel.pth", "--onnx", tmp / "m.onnx"],
    }
    return cases


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
