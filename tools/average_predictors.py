"""One one-pass model whose style-prediction network is the mean of several runs' (a "model soup"): runs
of the predictor alone (`train-anystyle --predictor-only`) from the same model, so that they share its
shared network and its statistics' standardisation. The file is written like a run's model.pth;
``--palette F`` also sets the fraction of the way its networks' colours are moved to the painting's
(`fastst.anystyle.painting_network`).

    python tools/average_predictors.py runs/a/model.pth runs/b/model.pth --out runs/soup/model.pth
"""

import argparse
import sys
from pathlib import Path

from fastst.anystyle import AnyStyleNet, average_predictors, net_options, read_one_pass, set_palette
from fastst.errors import FaststError
from fastst.io import atomic_torch_save, file_digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="one-pass model files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--palette", type=float, default=0.0, help="the palette fraction, 0 to 1")
    args = parser.parse_args()
    try:
        saved = [read_one_pass(path) for path in args.models]
        averaged = average_predictors(saved)
        set_palette(
            AnyStyleNet(**net_options(averaged["anystyle"])), args.palette
        )  # refused here, not at load
    except FaststError as e:
        sys.exit(f"error: {e}")
    averaged["palette"] = args.palette
    averaged["averaged_from"] = [{"path": str(p), "sha256": file_digest(p)} for p in args.models]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(averaged, args.out)
    print(f"wrote {args.out}, the predictor averaged over {len(saved)} models")


if __name__ == "__main__":
    main()
