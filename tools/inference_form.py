"""The network's inference form (fastst/inference.py) against the form of an earlier revision, on the path
`fastst stylize` runs on this CPU (its precision, channels-last memory, eager): each shipped network at
256, 512 and 1024 px, both forms timed in one run of interleaved rounds, and each form's PSNR against the
network's plain fp32 pass on held-out photos. Writes results/inference_form.json.

    python tools/inference_form.py --against REVISION [--rounds 7]
    python tools/inference_form.py --against REVISION --precision fp32 --name inference_form_fp32

``--precision fp32`` times the path of a CPU without native bf16 (fp32, contiguous memory) on this one.

The earlier form is that revision's fastst/inference.py, loaded beside the current one from ``git show``.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from fastst.data import test_photos
from fastst.inference import for_inference
from fastst.measure import interleaved_medians, psnr
from fastst.report import measured_on
from fastst.results import write_result
from fastst.runtime import autocast
from fastst.runtimes import fast_path
from fastst.stylize import load_model

ROOT = Path(__file__).resolve().parent.parent
SIZES = (256, 512, 1024)
NETWORKS = {"starry_night": "starry_night", "base (its first style)": "base"}


def form_at(revision: str):
    """``for_inference`` as fastst/inference.py defined it at ``revision``."""
    try:
        source = subprocess.run(
            ["git", "show", f"{revision}:fastst/inference.py"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except subprocess.CalledProcessError:
        sys.exit(f"error: no fastst/inference.py at revision {revision!r}")
    path = Path(tempfile.mkdtemp()) / f"inference_at_{revision}.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.for_inference


def square(photo: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(photo[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="the git revision whose inference form to time")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument("--name", default="inference_form")
    args = parser.parse_args()

    device = torch.device("cpu")
    precision, channels_last = fast_path(args.precision, device)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    forms = {"earlier": form_at(args.against), "current": for_inference}
    photos = list(test_photos(limit=3).values())
    fns, quality = {}, {}
    for label, name in tqdm(NETWORKS.items(), desc="networks"):
        model = load_model(name, style=0 if name == "base" else None).eval()
        built = {form: make(model).to(memory_format=layout) for form, make in forms.items()}
        for size in SIZES:
            batch = torch.cat([square(p, size) for p in photos]).to(memory_format=layout)
            with torch.no_grad():
                plain = model(batch)
            for form, net in built.items():

                def run(net=net, x=batch[:1]):
                    with torch.no_grad(), autocast(device, precision):
                        return net(x)

                fns[f"{label} {form} {size}"] = run
                with torch.no_grad(), autocast(device, precision):
                    out = net(batch).float()
                quality[f"{label} {form} {size}"] = min(psnr(o, p) for o, p in zip(out, plain))
    seconds = interleaved_medians(fns, args.rounds, device)
    rows = [
        {
            "network": label,
            "size": size,
            **{f"{form}_s": round(seconds[f"{label} {form} {size}"], 4) for form in forms},
            **{f"{form}_psnr_db": round(quality[f"{label} {form} {size}"], 1) for form in forms},
        }
        for label in NETWORKS
        for size in SIZES
    ]
    for row in rows:
        print(row)
    path = write_result(
        args.name,
        {"against": args.against, "precision": precision, "channels_last": channels_last, "rows": rows},
    )
    print(f"wrote {path}")


def table(result: dict) -> dict:
    return {
        "columns": ["network", "size", f"inference form at `{result['against']}`", "now", "speed-up"],
        "rows": [
            [
                row["network"],
                f"{row['size']} px",
                f"{row['earlier_s'] * 1e3:,.0f} ms, {row['earlier_psnr_db']:.0f} dB",
                f"{row['current_s'] * 1e3:,.0f} ms, {row['current_psnr_db']:.0f} dB",
                f"{row['earlier_s'] / row['current_s']:.2f}x",
            ]
            for row in result["rows"]
        ],
        "note": "One photo a pass, the median of interleaved rounds, in "
        f"{result['precision']}{', channels-last' if result['channels_last'] else ''}, eager; each form's "
        "lowest PSNR against the network's plain fp32 pass over 3 held-out photos; "
        f"{measured_on(result)} (`results/{result['name']}.json`).",
    }


if __name__ == "__main__":
    main()
