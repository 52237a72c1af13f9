"""What zero padding inside a network saves: two networks of the same shape, one padding its maps by
reflection (and replication, where a fold network's layer computes it) and one with zeros (TransformerNet's
``pad``, which the runtimes take into the convolutions), each on every installed runtime in fp32 and in
bf16 where the CPU has it, at 256, 512 and 1024 px, with the peer's built-in style in the same interleaved
rounds. Writes results/padding_speed.json.

    pip install -e ".[export,openvino,peers]"
    python tools/padding_speed.py runs/distill_base_lite/model.pth runs/distill_base_zero3/model.pth
"""

from __future__ import annotations

import argparse

from fast_networks import _peer
from peers_speed import square_photo

from fastst.bench import CPU
from fastst.io import pil_to_tensor, tensor_to_pil
from fastst.measure import interleaved_medians
from fastst.report import measured_on
from fastst.results import write_result
from fastst.runtime import cpu_has_bf16, process_settings
from fastst.runtimes import installed, start_runtime
from fastst.stylize import load_model

SIZES = (256, 512, 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reflect", help="a fold network padding by reflection (a model file or shipped name)")
    parser.add_argument("zero", help="the same shape padding with zeros")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    nets = {"reflect": load_model(args.reflect, style=0), "zero": load_model(args.zero, style=0)}
    if nets["reflect"].config.get("pad", "reflect") != "reflect" or nets["zero"].config.get("pad") != "zero":
        raise SystemExit("give a network padding by reflection, then one padding with zeros")
    shape = {k: v for k, v in nets["zero"].config.items() if k != "pad"}
    if shape != nets["reflect"].config:
        raise SystemExit("the two networks differ in more than their padding")
    precisions = ["fp32", "bf16"] if cpu_has_bf16() else ["fp32"]
    runs = {
        (kind, runtime, precision): start_runtime(runtime, net, precision)
        for kind, net in nets.items()
        for runtime in installed()
        for precision in precisions
    }
    # a runtime without bf16 (onnxruntime) runs in fp32 whatever is asked: timed once
    runs = {key: run for key, run in runs.items() if run.precision == key[2]}
    pairs = sorted({key[1:] for key in runs}, key=lambda p: (installed().index(p[0]), p[1]))
    peer = _peer()
    fns = {}
    for size in SIZES:
        pil = square_photo(size)
        fns[f"peer built-in {size}"] = lambda pil=pil: peer.stylize(pil, 0)
        for (kind, runtime, precision), run in runs.items():
            fns[f"{kind} {runtime} {precision} {size}"] = lambda pil=pil, run=run: tensor_to_pil(
                run(pil_to_tensor(pil)[None])[0]
            )
    with process_settings(CPU):  # as `fastst stylize` runs
        seconds = interleaved_medians(fns, args.rounds, CPU)
    rows = [
        {
            "runtime": runtime,
            "precision": precision,
            "size": size,
            "reflect_s": round(seconds[f"reflect {runtime} {precision} {size}"], 4),
            "zero_s": round(seconds[f"zero {runtime} {precision} {size}"], 4),
            "peer_builtin_s": round(seconds[f"peer built-in {size}"], 4),
        }
        for runtime, precision in pairs
        for size in SIZES
    ]
    for row in rows:
        print(row, flush=True)
    result = {"networks": {"reflect": args.reflect, "zero": args.zero}, "rows": rows}
    print(write_result("padding_speed", result))


def table(result: dict) -> dict:
    return {
        "columns": [
            "runtime, precision",
            "size",
            "padding by reflection",
            "zero padding",
            "speed-up",
            "peer's seconds / zero padding's",
        ],
        "rows": [
            [
                f"{row['runtime']}, {row['precision']}",
                f"{row['size']} px",
                f"{row['reflect_s'] * 1e3:,.0f} ms",
                f"{row['zero_s'] * 1e3:,.0f} ms",
                f"{row['reflect_s'] / row['zero_s']:.2f}x",
                f"{row['peer_builtin_s'] / row['zero_s']:.2f}",
            ]
            for row in result["rows"]
        ],
        "note": "Seconds a photo (median of interleaved rounds, the peer's built-in style in the same "
        f"rounds); {result['networks']['reflect']} against {result['networks']['zero']}; "
        f"{measured_on(result)} (`results/{result['name']}.json`).",
    }


if __name__ == "__main__":
    main()
