"""One one-pass model whose style-prediction network is the mean of several runs' (a "model soup"): runs
of the predictor alone (`train-anystyle --predictor-only`) from the same model, so that they share its
shared network and its statistics' standardisation. The file is written like a run's model.pth;
``--palette F`` also sets the fraction of the way its networks' colours are moved to the painting's
(`fastst.anystyle.painting_network`; networks without the input skip only).

    python tools/average_predictors.py runs/a/model.pth runs/b/model.pth --out runs/soup/model.pth
"""

import argparse
import sys
from pathlib import Path

from fastst.anystyle import average_predictors
from fastst.errors import FaststError
from fastst.io import atomic_torch_save, file_digest, load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="one-pass model files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--palette", type=float, default=0.0, help="the palette fraction, 0 to 1")
    args = parser.parse_args()
    try:
        saved = [load_checkpoint(path, "one-pass model") for path in args.models]
        for path, one in zip(args.models, saved):
            if not isinstance(one, dict) or "anystyle" not in one or "model" not in one:
                raise FaststError(f"not a fastst one-pass model: {path}")
        averaged = average_predictors(saved)
        if not 0.0 <= args.palette <= 1.0:
            raise FaststError(f"the palette fraction is between 0 and 1, not {args.palette}")
        if args.palette and averaged["anystyle"].get("input_skip"):
            raise FaststError("a palette needs a network without the input skip")
    except FaststError as e:
        sys.exit(f"error: {e}")
    averaged["palette"] = args.palette
    averaged["averaged_from"] = [{"path": str(p), "sha256": file_digest(p)} for p in args.models]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(averaged, args.out)
    print(f"wrote {args.out}, the predictor averaged over {len(saved)} models")


if __name__ == "__main__":
    main()
