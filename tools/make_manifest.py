"""Regenerate fastst/manifest.tsv (origin URL and sha256 of every data file) from a mirror's MANIFEST.tsv.

python tools/make_manifest.py ../shared/data/MANIFEST.tsv > fastst/manifest.tsv

The paintings' origins (raw files at pinned commits) come from ``paintings/ORIGINS.tsv`` beside the manifest.
"""

import csv
import sys
import urllib.parse
from pathlib import Path

RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
FNS = ("jcjohnson/fast-neural-style", "813c83441953ead2adb3f65f4cc2d5599d735fa7")
BSDS = ("Sisso16/ssn_pytorch", "c4f9ac8c43397cbacbf2e2ba1505efafa769435d")


def origin(path: str) -> tuple[str, str, str]:
    folder, name = path.rsplit("/", 1)
    if path == "styles/starry_night_google.jpg":
        return (
            "jcjohnson/neural-style",
            "07c4b8299f8fbdafec0c514fc820ff1d7ff62e46",
            "examples/inputs/starry_night_google.jpg",
        )
    if path == "styles/shipwreck_of_the_minotaur.jpg":
        return (
            "lengstrom/fast-style-transfer",
            "0d3d981f7ab948253d355585bdbdfa914247b4d0",
            "examples/style/the_shipwreck_of_the_minotaur.jpg",
        )
    if path == "styles/woman_with_a_parasol.jpg":
        return (
            "versat13/VRC_AI_Samples",
            "3d9bfc9460ecf330a385cbdf9559b42f127e3294",
            "images/Claude_Monet_-_Woman_with_a_Parasol_-_Madame_Monet_and_Her_Son_-_Google_Art_Project.jpg",
        )
    if folder == "styles":
        return (*FNS, f"images/styles/{name}")
    if folder == "test/demo":
        return (*FNS, f"images/content/{name}")
    if folder == "train/imagenet_sample":
        return "EliSchwartz/imagenet-sample-images", "bc69043e2862758a1906c6a24a792bb28c6bb2ff", name
    if folder == "train/bsds500_trainval":
        split, ident = name.split("_", 1)
        return (*BSDS, f"BSR/BSDS500/data/images/{split}/{ident}")
    if folder == "test/bsds500_test_subset":
        return (*BSDS, f"BSR/BSDS500/data/images/test/{name}")
    raise SystemExit(f"no origin known for {path}")


def painting_origins(manifest: str) -> dict[str, str]:
    origins = Path(manifest).parent / "paintings" / "ORIGINS.tsv"
    if not origins.is_file():
        return {}
    with open(origins, newline="") as f:
        return {row["path"]: row["origin_url"] for row in csv.DictReader(f, delimiter="\t")}


def main(manifest: str) -> None:
    out = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    out.writerow(["path", "bytes", "sha256", "url"])
    paintings = painting_origins(manifest)
    with open(manifest, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["path"] in paintings:
                url = paintings[row["path"]]
            else:
                repo, commit, src = origin(row["path"])
                url = RAW.format(repo=repo, commit=commit, path=urllib.parse.quote(src))
            out.writerow([row["path"], row["bytes"], row["sha256"], url])


if __name__ == "__main__":
    main(sys.argv[1])
