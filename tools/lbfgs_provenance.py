"""Where the cached L-BFGS curves of results/lbfgs/ come from, and whether another machine redraws them.

Curves cached before the cache recorded its machine carry no machine record. This script marks each of
them with the commit that first added it (from git) and ``"machine": null``, and, with ``--recheck N``,
computes N of the cached curves again on this machine and writes how far the new curves are from the
cached ones (results/lbfgs_recheck.json): whether a score read from the cache depends on the machine
that drew it.

    python tools/lbfgs_provenance.py               # mark the entries that lack a machine record
    python tools/lbfgs_provenance.py --recheck 4   # then recompute 4 of them here
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from fastst.data import data_dir
from fastst.io import atomic_path, file_digest
from fastst.quality import Protocol, cache_dir, lbfgs_curve
from fastst.report import measured_on
from fastst.results import write_result

ROOT = Path(__file__).resolve().parent.parent


def first_commit(path: Path) -> dict:
    """The commit that added ``path`` to the repository, and its date."""
    out = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H %cI", "--", str(path.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {"commit": out[-2], "date": out[-1]} if out else {"commit": None, "date": None}


def mark(entries: list[Path]) -> list[Path]:
    """Add ``machine: null`` and the first commit to every entry without a machine record."""
    marked = []
    for path in entries:
        saved = json.loads(path.read_text())
        if "machine" in saved:
            continue
        saved["machine"] = None
        saved["provenance"] = {"first_committed": first_commit(path), "note": "cached before machine records"}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(saved) + "\n")
        marked.append(path)
    return marked


def find_image(name: str, sha256: str) -> Path:
    """The image of the data folder with that name and content."""
    for path in data_dir().rglob(name):
        if file_digest(path) == sha256:
            return path
    raise SystemExit(f"error: {name} (sha256 {sha256[:12]}) is not in {data_dir()}; fetch the data first")


def recheck(entry: Path) -> dict:
    """The cached curve against the same curve computed on this machine."""
    saved = json.loads(entry.read_text())
    protocol = Protocol(
        style=str(find_image(saved["style"], saved["style_sha256"])),
        style_weight=saved["style_weight"],
        content_weight=saved["content_weight"],
        tv_weight=saved["tv_weight"],
        content_layer=saved["content_layer"],
        style_layers=tuple(saved["style_layers"]),
        style_size=saved["style_size"],
        photo_size=saved["photo_size"],
    )
    photo = find_image(saved["photo"], saved["photo_sha256"])
    with tempfile.TemporaryDirectory() as fresh:  # an empty cache: the curve is computed here, not read
        new = lbfgs_curve(protocol, photo, saved["init"], saved["iterations"], Path(fresh), progress=False)
    old = saved["objective"]
    steps = min(len(old), len(new))
    return {
        "entry": entry.name,
        "cached_machine": saved.get("machine"),
        "iterations": steps - 1,
        "cached_final": old[steps - 1],
        "recomputed_final": new[steps - 1],
        "final_relative_difference": abs(new[steps - 1] - old[steps - 1]) / old[steps - 1],
        "largest_relative_difference": max(abs(a - b) / a for a, b in zip(old[:steps], new[:steps])),
    }


def table(result: dict) -> dict:
    """Each rechecked curve: its final objective cached and recomputed here."""
    return {
        "columns": ["curve", "iterations", "cached", "recomputed here", "at the end", "largest on the way"],
        "rows": [
            [
                f"`{row['entry']}`",
                row["iterations"],
                f"{row['cached_final']:.3f}",
                f"{row['recomputed_final']:.3f}",
                f"{row['final_relative_difference']:.2%}",
                f"{row['largest_relative_difference']:.2%}",
            ]
            for row in result["rows"]
        ],
        "note": f"Relative differences; recomputed on {measured_on(result)} (`results/lbfgs_recheck.json`).",
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recheck", type=int, default=0, help="recompute this many unrecorded curves here")
    parser.add_argument("--seed", type=int, default=0, help="which curves --recheck draws")
    args = parser.parse_args(argv)
    entries = sorted(cache_dir().glob("*.json"))
    unrecorded = [p for p in entries if json.loads(p.read_text()).get("machine") is None]
    marked = mark(entries)
    print(f"{len(marked)} of {len(entries)} cached curves marked as cached before machine records")
    if not args.recheck:
        return
    chosen = sorted(random.Random(args.seed).sample(unrecorded, min(args.recheck, len(unrecorded))))
    rows = [recheck(p) for p in tqdm(chosen, desc="L-BFGS again", unit="curve")]
    path = write_result("lbfgs_recheck", {"rows": rows})
    for row in rows:
        print(f"{row['entry']}: {row['cached_final']:.4f} cached, {row['recomputed_final']:.4f} here")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
