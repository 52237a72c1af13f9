"""Ship a trained network (one style or several) with the package: fastst/pretrained/NAME.pth in half
precision, with what trained it.

    python tools/ship_pretrained.py runs/ttq/starry_night-half_progressive/model.pth starry_night cpu_half
"""

import sys
from pathlib import Path

from fastst.host import PRETRAINED_DIR
from fastst.io import atomic_torch_save, load_checkpoint


def main() -> None:
    source, name = Path(sys.argv[1]), sys.argv[2]
    saved = load_checkpoint(source, "model")
    style = saved["config"]["style"]
    shipped = {
        "model": {k: v.half() for k, v in saved["model"].items()},
        "net": saved["net"],
        "styles": saved.get("styles"),
        "config": {
            **saved["config"],
            "data": "data/train",
            "style": Path(style).name if isinstance(style, str) else [Path(p).name for p in style],
            "out": None,
            "init": saved["config"].get("init") and Path(saved["config"]["init"]).name,
        },
        "style_weight": saved.get("style_weight"),
        "iteration": saved["iteration"],
        "environment": saved.get("environment"),
    }
    if len(sys.argv) > 3:  # the preset's name now, where it was renamed since the run
        shipped["config"]["preset"] = sys.argv[3]
    PRETRAINED_DIR.mkdir(exist_ok=True)
    atomic_torch_save(shipped, PRETRAINED_DIR / f"{name}.pth")
    path = PRETRAINED_DIR / f"{name}.pth"
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
