"""Whether OpenVINO's pass of a clip's graph corrupts the process's memory: whole processes, each compiling a
small clip graph (``fastst.temporal.ClipNetwork``) and running one pass on an image of odd sides, under
glibc's heap checks (``libc_malloc_debug``: a process whose heap is found corrupt is aborted), with the
clip's norms an input of the graph or made constants of it before it is compiled (as the quick path does;
or as it first did, the edited graph then validated from Python), in a process that has loaded PyTorch
first or one that has not. Writes results/openvino_folding.json.

    python tools/openvino_folding.py [--processes 40]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from quick_path import write_and_print
from tqdm.auto import tqdm

from fastst import TransformerNet, temporal
from fastst.export import export_network

CHECKS = Path("/lib/x86_64-linux-gnu/libc_malloc_debug.so.0")
CHILD = """
import sys
import numpy as np
if sys.argv[2] == "with PyTorch":
    import torch
from fastst.quick import _folded_session, _openvino_config, open_session, with_constants
folder, norms = sys.argv[1], np.load(sys.argv[1] + "/norms.npy")
photo = np.random.default_rng(0).random((1, 3, 37, 53), dtype=np.float32)
if sys.argv[3] == "folded, the graph validated from Python":
    import openvino as ov
    core = ov.Core()
    graph = with_constants(core, folder + "/clip.onnx", {"norms": norms})
    graph.validate_nodes_and_infer_types()
    core.compile_model(graph, "CPU", _openvino_config(sys.argv[4], 2))([photo])
elif sys.argv[3] == "folded":
    run = _folded_session(folder + "/clip.onnx", sys.argv[4], 2, {"norms": norms})[0]
    run(photo)
else:
    run = open_session("openvino", folder + "/clip.onnx", sys.argv[4], 2)[0]
    run(photo, norms)
"""


def clip_graph(folder: Path) -> None:
    """A small random one-style network's clip graph and a clip's norms for it, into ``folder``."""
    torch.manual_seed(3)
    net = TransformerNet(width=0.25).eval()
    for p in net.parameters():  # a network that changes images, unlike the identity it starts as
        p.data.add_(0.05 * torch.randn_like(p))
    frames = torch.rand(2, 3, 40, 44, generator=torch.Generator().manual_seed(4)) * 0.5
    with torch.no_grad():
        norms = temporal.ClipStatistics(net)(frames)
    export_network(temporal.ClipNetwork(net), folder / "clip.onnx")
    np.save(folder / "norms.npy", norms.numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=40, help="processes of each kind")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--name", default="openvino_folding")
    args = parser.parse_args()
    if not CHECKS.is_file():
        sys.exit(f"error: glibc's heap checks are not here ({CHECKS})")
    env = os.environ | {"LD_PRELOAD": str(CHECKS), "MALLOC_CHECK_": "3", "MALLOC_PERTURB_": "165"}
    folds = ("an input", "folded", "folded, the graph validated from Python")
    kinds = [(t, n) for t in ("with PyTorch", "without PyTorch") for n in folds]
    aborted = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip_graph(Path(tmp))
        for loaded, norms in kinds:
            failed = 0
            for _ in tqdm(range(args.processes), desc=f"{loaded}, norms {norms}", unit="process"):
                command = [sys.executable, "-c", CHILD, tmp, loaded, norms, args.precision]
                failed += subprocess.run(command, env=env, capture_output=True).returncode != 0
            aborted[f"{loaded}, norms {norms}"] = failed
    columns = ["OpenVINO's pass of a clip graph, one a process", "processes", "aborted by the heap checks"]
    rows = [[kind, str(args.processes), str(n)] for kind, n in aborted.items()]
    record = {
        "openvino": importlib.metadata.version("openvino"),
        "precision": args.precision,
        "processes": args.processes,
        "aborted": aborted,
        "tables": {"folding": {"columns": columns, "rows": rows}},
    }
    write_and_print(args.name, record, rows)


if __name__ == "__main__":
    main()
