"""Ship a trained network (one style or several) with the package: fastst/pretrained/NAME.pth in half
precision, with what trained it.

    python tools/ship_pretrained.py runs/ttq/starry_night-half_progressive/model.pth starry_night cpu_half
    python tools/ship_pretrained.py runs/anystyle_made/model.pth anystyle    # a one-pass model
    python tools/ship_pretrained.py runs/anystyle_fast/model.pth anystyle_fast
"""

import sys
from pathlib import Path

from fastst.anystyle import without_shared_convolutions
from fastst.host import PRETRAINED_DIR
from fastst.io import atomic_torch_save, load_checkpoint

# the shipped networks a one-pass model's shared network may be, whose weights it then does not repeat
SHARED_NETWORKS = ("base_fast", "base")


def ship_one_pass(saved: dict, name: str) -> Path:
    """A one-pass model: without its shared network's weights where they are a shipped network's."""
    for network in SHARED_NETWORKS:
        shipped = without_shared_convolutions(saved, network)
        if shipped is not saved:
            break
    config = shipped["config"]
    shipped["config"] = {**config, "out": None, "init": config.get("init") and Path(config["init"]).name}
    path = PRETRAINED_DIR / f"{name}.pth"
    atomic_torch_save(shipped, path)
    return path


def main() -> None:
    source, name = Path(sys.argv[1]), sys.argv[2]
    saved = load_checkpoint(source, "model")
    if "anystyle" in saved:
        path = ship_one_pass(saved, name)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
        return
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
