"""The work of each network a photo goes through: multiply-adds a pixel (PyTorch's FLOP counter on one pass at
512 px, halved) and parameters, for the shipped networks and the smaller shapes tried or considered in place
of the base, each beside the base's work. Counting needs no timing, so it holds on every CPU; the seconds
it stands for are tools/peers_speed.py's. Writes results/network_cost.json. With --time, it times the base,
*Starry Night* and the smaller shapes instead (untrained: the seconds do not depend on the weights) on
`fastst stylize`'s default path beside the peer's built-in style, in interleaved rounds, and writes
results/network_speed<suffix>.json.

    python tools/network_cost.py [--time [--rounds 5] [--suffix _avx512_bf16]]
"""

from __future__ import annotations

import argparse

import torch
from fast_networks import SIZES, seconds

from fastst.anystyle import load_anystyle
from fastst.bench import inference_flops
from fastst.report import measured_on
from fastst.results import write_result
from fastst.stylize import load_model
from fastst.transformer import TransformerNet, count_parameters

SIZE = 512
# smaller shapes for the base's styles (TransformerNet's options), the widest first
SHAPES = [
    {"width": 1.0, "input_skip": True, "residual_blocks": 3, "shuffle": 2},
    {"width": 0.75, "input_skip": True, "residual_blocks": 5, "shuffle": 2},
    {"width": 0.75, "input_skip": True, "residual_blocks": 3, "shuffle": 2},
    {"width": 0.5, "input_skip": True, "residual_blocks": 5, "shuffle": 2},
]


def multiply_adds_a_pixel(net: torch.nn.Module, size: int = SIZE) -> float:
    return inference_flops(net.eval(), size) / 2 / size**2


def networks() -> dict[str, torch.nn.Module]:
    return {
        "shipped base (any of its styles)": load_model("base", style=0),
        "shipped starry_night": load_model("starry_night"),
        "shipped base_lite (the base's styles, fewer ranks)": load_model("base_lite", style=0),
        "shipped base_fast (the base's styles, folded and factored)": load_model("base_fast", style=0),
        **{
            f"one-pass {name}'s network": TransformerNet(**load_anystyle(name).net_config)
            for name in ("anystyle", "anystyle_base", "anystyle_fast")
        },
        **{", ".join(f"{k} {v}" for k, v in shape.items()): TransformerNet(**shape) for shape in SHAPES},
    }


def timed(rounds: int, suffix: str) -> None:
    """The seconds of :func:`networks` (less the one-pass models, which tools/peers_speed.py times) on the
    default path, and the peer's, as ratios: the peer's seconds over each network's."""
    nets = {n: net for n, net in networks().items() if not n.startswith("one-pass")}
    work = {n: multiply_adds_a_pixel(net) for n, net in nets.items()}
    measured = seconds({n: net.eval() for n, net in nets.items()}, rounds)
    base = next(iter(work.values()))
    rows = [
        [name, f"{work[name] / base:.2f}"]
        + [f"{measured[f'peer built-in {size}'] / measured[f'{name} {size}']:.2f}" for size in SIZES]
        for name in nets
    ]
    rows.append(
        ["peer built-in: its seconds", ""] + [f"{measured[f'peer built-in {s}']:.3f} s" for s in SIZES]
    )
    columns = ["network (peer's seconds / its own; above 1: faster than the peer)", "of the base's work"]
    table = {"columns": columns + [f"{size} px" for size in SIZES], "rows": rows}
    path = write_result(
        f"network_speed{suffix}", {"rounds": rounds, "seconds": measured, "tables": {"speed": table}}
    )
    for row in rows:
        print(" | ".join(row))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", action="store_true", help="time the networks beside the peer instead")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--suffix", default="", help="appended to the result's name (the CPU's kind)")
    args = parser.parse_args()
    if args.time:
        timed(args.rounds, args.suffix)
        return
    rows = [
        {
            "network": name,
            "parameters": count_parameters(net),
            "multiply_adds_a_pixel": multiply_adds_a_pixel(net),
        }
        for name, net in networks().items()
    ]
    path = write_result("network_cost", {"size": SIZE, "rows": rows})
    print(f"wrote {path}")


def table(result: dict) -> dict:
    base = result["rows"][0]["multiply_adds_a_pixel"]
    return {
        "columns": ["network", "parameters", "multiply-adds a pixel", "of the base's"],
        "rows": [
            [
                row["network"],
                f"{row['parameters'] / 1e3:,.0f} k",
                f"{row['multiply_adds_a_pixel'] / 1e3:,.1f} k",
                f"{row['multiply_adds_a_pixel'] / base:.2f}",
            ]
            for row in result["rows"]
        ],
        "note": f"One pass at {result['size']} px, PyTorch's FLOP counter halved; {measured_on(result)}.",
    }


if __name__ == "__main__":
    main()
