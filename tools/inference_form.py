"""The network's inference form (fastst/inference.py) against the form of an earlier revision, on the path
`fastst stylize` runs on this CPU (its precision and memory layout, eager, its process settings): each
shipped network at the sizes of ``SIZES``, both forms timed in one run of interleaved rounds, and each
form's PSNR against the network's plain fp32 pass on held-out photos. Writes results/inference_form.json.

    python tools/inference_form.py --against REVISION [--rounds 7]
    python tools/inference_form.py --against REVISION --precision fp32 --layouts contiguous channels-last \
        --name inference_form_fp32

``--precision fp32`` times the path of a CPU without native bf16 on this one; ``--layouts contiguous
channels-last`` times each form in both memory layouts.

The earlier form is that revision's fastst/inference.py, loaded beside the current one from ``git show``,
with that revision's folded layers (fastst/transformer.py's ``FoldedNorm`` and ``FoldedReflect``, which a
folded network such as ``base_fast`` runs at half resolution) in place of today's.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from tqdm.auto import tqdm

from fastst.data import test_photos
from fastst.inference import for_inference
from fastst.measure import interleaved_medians, psnr
from fastst.report import measured_on
from fastst.results import write_result
from fastst.runtime import autocast, process_settings
from fastst.runtimes import fast_path
from fastst.scale import resize
from fastst.stylize import load_model, model_styles
from fastst.transformer import FoldedNorm, FoldedReflect

ROOT = Path(__file__).resolve().parent.parent
SIZES = (256, 512, 1024)
PHOTOS = 3  # held-out photos for the PSNR
NETWORKS = {
    "starry_night": "starry_night",
    "base (its first style)": "base",
    "base_fast (its first style)": "base_fast",
}
FOLDED_LAYERS = (FoldedNorm, FoldedReflect)


def module_at(revision: str, name: str):
    """fastst/``name``.py as it was at ``revision``, loaded beside the current package."""
    try:
        source = subprocess.run(
            ["git", "show", f"{revision}:fastst/{name}.py"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except subprocess.CalledProcessError:
        sys.exit(f"error: no fastst/{name}.py at revision {revision!r}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}_at_{revision}.py"
        path.write_bytes(source)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def form_at(revision: str):
    """``for_inference`` as fastst/inference.py defined it at ``revision``, its folded layers computed as
    fastst/transformer.py computed them then (where it had them)."""
    make, earlier = module_at(revision, "inference").for_inference, module_at(revision, "transformer")

    def form(model):
        net = make(model)
        for m in net.modules():
            for layer in FOLDED_LAYERS:
                if type(m) is layer and hasattr(earlier, layer.__name__):
                    m.__class__ = getattr(earlier, layer.__name__)
        return net

    return form


LAYOUTS = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="the git revision whose inference form to time")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    parser.add_argument(
        "--layouts", nargs="+", choices=list(LAYOUTS), help="memory layouts to time (default: the path's)"
    )
    parser.add_argument("--name", default="inference_form")
    args = parser.parse_args()

    device = torch.device("cpu")
    precision, channels_last = fast_path(args.precision, device)
    layouts = args.layouts or ["channels-last" if channels_last else "contiguous"]
    forms = {"earlier": form_at(args.against), "current": for_inference}
    photos = list(test_photos(limit=PHOTOS).values())
    fns, quality = {}, {}
    for label, name in tqdm(NETWORKS.items(), desc="networks"):
        model = load_model(name, style=0 if len(model_styles(name)) > 1 else None).eval()
        for layout in layouts:
            built = {form: make(model).to(memory_format=LAYOUTS[layout]) for form, make in forms.items()}
            for size in SIZES:
                batch = torch.cat([resize(p[None], (size, size)) for p in photos])
                batch = batch.to(memory_format=LAYOUTS[layout])
                with torch.no_grad():
                    plain = model(batch)
                for form, net in built.items():

                    def run(net=net, x=batch[:1]):
                        with torch.no_grad(), autocast(device, precision):
                            return net(x)

                    fns[label, size, f"{form} {layout}"] = run
                    with torch.no_grad(), autocast(device, precision):
                        out = net(batch).float()
                    quality[label, size, f"{form} {layout}"] = min(psnr(o, p) for o, p in zip(out, plain))
    with process_settings(device):  # as `fastst stylize` runs
        seconds = interleaved_medians(fns, args.rounds, device)
    variants = [f"{form} {layout}" for form in forms for layout in layouts]
    rows = [
        {
            "network": label,
            "size": size,
            "seconds": {v: round(seconds[label, size, v], 4) for v in variants},
            "psnr_db": {v: round(quality[label, size, v], 1) for v in variants},
        }
        for label in NETWORKS
        for size in SIZES
    ]
    for row in rows:
        print(row)
    path = write_result(
        args.name,
        {
            "against": args.against,
            "precision": precision,
            "variants": variants,
            "photos": PHOTOS,
            "rows": rows,
        },
    )
    print(f"wrote {path}")


def table(result: dict) -> dict:
    first, *others = result["variants"]

    def named(variant: str) -> str:
        form, layout = variant.split(" ", 1)
        return f"{'at `' + result['against'] + '`' if form == 'earlier' else 'now'}, {layout}"

    def cell(row: dict, variant: str) -> str:
        return f"{row['seconds'][variant] * 1e3:,.0f} ms, {row['psnr_db'][variant]:.0f} dB"

    return {
        "columns": ["network", "size", *(named(v) for v in result["variants"])],
        "rows": [
            [row["network"], f"{row['size']} px", cell(row, first)]
            + [f"{cell(row, v)}, {row['seconds'][first] / row['seconds'][v]:.2f}x" for v in others]
            for row in result["rows"]
        ],
        "note": f"One photo a pass, the median of interleaved rounds, in {result['precision']}, eager; after "
        "each time the lowest PSNR against the network's plain fp32 pass over "
        f"{result.get('photos', PHOTOS)} held-out photos, and the speed-up over the first column; "
        f"{measured_on(result)} (`results/{result['name']}.json`).",
    }


if __name__ == "__main__":
    main()
