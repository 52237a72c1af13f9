"""Does `--runtime auto` pick the fastest runtime for photos of every shape, not only for the squares it
times? For shipped networks on `fastst stylize`'s default path, each installed runtime's seconds a photo
at shapes of the size buckets' kinds (fastst.quick.in_fours: whether the network's quarter-resolution maps
hold their pixels in fours), in interleaved rounds, beside the runtime that `auto` chooses for the shape
(timed afresh in a temporary cache) and the one it would take from its bucket's square alone.
Writes results/runtime_shapes.json.

    pip install -e ".[export,openvino]"
    python tools/runtime_shapes.py [--networks base_fast starry_night] [--rounds 5]
        [--precision fp32 --suffix _fp32]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch

from fastst import quick
from fastst.bench import CPU
from fastst.measure import interleaved_medians
from fastst.report import measured_on
from fastst.results import write_result
from fastst.runtime import reuse_freed_memory
from fastst.runtimes import choose, installed
from fastst.stylize import Stylizer, load_model

# (height, width), pairs a few pixels apart in the buckets of 512 and 1024 px photos: the first of each
# pair's quarter-resolution map in fours, the second's not
SHAPES = (
    *((384, 512), (380, 508), (512, 768), (508, 764)),
    *((688, 1020), (684, 1020), (1024, 1024), (1028, 1028)),
)


def network(name: str):
    """A shipped network by name; for a multi-style file, its first style."""
    net = load_model(name)
    return (load_model(name, style=0) if net.styles > 1 else net).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", default=["base_fast", "starry_night"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", default="auto", help="fastst's precision (auto: the default path's)")
    parser.add_argument("--suffix", default="", help="written to results/runtime_shapes<suffix>.json")
    args = parser.parse_args()
    reuse_freed_memory()
    names = installed()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FASTST_CACHE"] = cache  # every choice timed afresh, as on a new machine
        for name in args.networks:
            net = network(name)
            stylizers = {runtime: Stylizer(net, args.precision, runtime=runtime) for runtime in names}
            fns = {
                (runtime, shape): (lambda s=s, x=torch.rand(1, 3, *shape): s.batch(x))
                for shape in SHAPES
                for runtime, s in stylizers.items()
            }
            seconds = interleaved_medians(fns, args.rounds, CPU)
            precision = stylizers["torch"].precision
            for shape in SHAPES:
                square = quick.size_bucket(shape)
                timed = {runtime: seconds[runtime, shape] for runtime in names}
                row = {
                    "network": name,
                    "shape": list(shape),
                    "in_fours": quick.in_fours(shape),
                    "precision": precision,
                    "seconds": timed,
                    "auto": choose(net, CPU, shape, precision),
                    "square_choice": choose(net, CPU, square, precision),
                }
                rows.append(row)
                print(
                    f"{name} {shape}: "
                    + ", ".join(f"{r} {s:.3f} s" for r, s in timed.items())
                    + f"; auto {row['auto']}, the square's {row['square_choice']}"
                )
    result = {"rounds": args.rounds, "runtimes": names, "rows": rows}
    path = write_result(f"runtime_shapes{args.suffix}", result)
    print(f"wrote {path}")


def table(result: dict) -> dict:
    names = result["runtimes"]
    rows = []
    for row in result["rows"]:
        seconds = row["seconds"]
        fastest = min(seconds.values())
        rows.append(
            [
                row["network"],
                "{} x {}".format(*row["shape"]),
                "yes" if row["in_fours"] else "no",
                *(f"{seconds[name]:.3f} s" for name in names),
                f"{row['auto']} ({seconds[row['auto']] / fastest:.2f})",
                f"{row['square_choice']} ({seconds[row['square_choice']] / fastest:.2f})",
            ]
        )
    return {
        "columns": [
            "network",
            "photo (height x width)",
            "quarter map in fours",
            *names,
            "auto's choice (its seconds / the fastest's)",
            "the bucket's square alone would choose",
        ],
        "rows": rows,
        "note": "Seconds a photo through `fastst stylize`'s runtimes (median of "
        f"{result['rounds']} interleaved rounds, precision {result['rows'][0]['precision']}); "
        f"{measured_on(result)} (`results/{result['name']}.json`).",
    }


if __name__ == "__main__":
    main()
