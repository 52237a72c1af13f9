"""The project's images: where they live, the manifest of every file (origin URL and sha256), the held-out
paintings, the training photos' crops and batches, and the test photos. Fetching them:
:mod:`fastst.download`."""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from PIL import Image, ImageOps

from fastst.errors import FaststError
from fastst.io import (
    IMAGE_SUFFIXES,
    list_images,
    load_image,
    pil_to_tensor,
    project_folder,
    to_rgb,
)

DATA_ENV = "FASTST_DATA"

# The report's two styles, and the photos it trains and tests on.
STYLES = {
    "starry_night": "styles/starry_night.jpg",
    "woman_with_a_parasol": "styles/woman_with_a_parasol.jpg",
}
TRAIN_DIR = "train"
TEST_DIR = "test/bsds500_test_subset"

# Paintings, drawings and prints for the one-pass model (fastst.anystyle), fetched with `data fetch
# --paintings`. Held out of its training, as the project's test paintings: the demo style images of other
# style-transfer projects (chosen by many as a test of any method), and one in 32 of the rest by checksum.
PAINTINGS_DIR = "paintings"
HELD_OUT_SOURCES = (
    "GlebSBrykin__SANET",
    "Yijunmaverick__UniversalStyleTransfer",
    "ehmorris__dmp-art-screen",
    "reiinakano__arbitrary-image-stylization-tfjs",
    "sunshineatnoon__LinearStyleTransfer",
    "titu1994__Neural-Style-Transfer",
    "xunhuang1995__AdaIN-style",
)


def painting_split(root: str | os.PathLike | None = None) -> tuple[list[Path], list[Path]]:
    """(training, held-out) paintings of the manifest, as paths under ``root`` (default ``data_dir()``)."""
    root = Path(root) if root is not None else data_dir()
    train, held_out = [], []
    for entry in manifest():
        if entry.path.startswith(PAINTINGS_DIR + "/"):
            name = Path(entry.path).name
            test = name.startswith(HELD_OUT_SOURCES) or int(entry.sha256[:2], 16) < 8
            (held_out if test else train).append(root / entry.path)
    return train, held_out


# Paintings beyond the mirror (fastst.download.EXTRA_STYLES), for trying the method on a style it was
# never tuned on.
EXTRA_DIR = "styles_extra"


def data_dir() -> Path:
    """``$FASTST_DATA``, else ``data/`` of the project checkout, else ``./data``."""
    return project_folder("data", DATA_ENV)


@dataclass(frozen=True)
class Entry:
    path: str
    bytes: int
    sha256: str
    url: str


def manifest() -> list[Entry]:
    with resources.files("fastst").joinpath("manifest.tsv").open(newline="") as f:
        return [
            Entry(r["path"], int(r["bytes"]), r["sha256"], r["url"])
            for r in csv.DictReader(f, delimiter="\t")
        ]


# ---------------------------------------------------------------- training photos


def usable_images(folder: str | os.PathLike, warn: bool = True) -> list[Path]:
    """Image files under ``folder`` whose headers PIL can read; each unreadable one is warned about.

    Raises FaststError when the folder is missing or holds no usable image.
    """
    folder = Path(folder)
    candidates = list_images(folder)
    good, bad = [], []
    for path in candidates:
        try:
            with Image.open(path) as im:
                im.size  # header only: cheap, catches text files and empty files
            good.append(path)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            bad.append(path)
            if warn:
                warnings.warn(
                    f"skipping unreadable image {path}: "
                    f"{str(e).splitlines()[0] if str(e) else type(e).__name__}",
                    stacklevel=2,
                )
    if not good:
        found = (
            f"{len(bad)} unreadable image files"
            if bad
            else f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
        raise FaststError(f"no usable training images in {folder}: found {found}")
    if bad and warn:
        warnings.warn(f"{len(bad)} of {len(candidates)} images in {folder} were skipped", stacklevel=2)
    return good


def crop_generator(seed: int, position: int) -> torch.Generator:
    """The random generator for one sample, a function of the run's seed and the sample's position
    in the run, so crops do not depend on worker count and resume exactly."""
    return torch.Generator().manual_seed((seed * 1_000_003 + position) % (2**63))


class PhotoDataset(torch.utils.data.Dataset):
    """Random square crops of photos. Items are indexed by ``(image index, position)`` pairs from
    :class:`ResumableBatchSampler`; the position seeds the crop and flip."""

    def __init__(
        self, paths: list[Path], size: int, seed: int = 0, size_steps: tuple = (), batch_size: int = 1
    ):
        self.paths, self.size, self.seed = list(paths), size, seed
        # progressive crops: ((first iteration, size), ...); a sample's iteration is its position
        # in the run divided by the global batch size
        self.size_steps, self.batch_size = tuple(sorted(size_steps)), batch_size

    def size_at(self, iteration: int) -> int:
        size = self.size
        for first, step_size in self.size_steps:
            if iteration >= first:
                size = step_size
        return size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        index, position = item
        g = crop_generator(self.seed, position)
        size = self.size_at(position // self.batch_size)
        for attempt in range(len(self.paths)):
            path = self.paths[(index + attempt) % len(self.paths)]
            try:
                with Image.open(path) as im:
                    im.draft("RGB", (max(size, self.size),) * 2)  # JPEG: decode at reduced scale, much faster
                    im = to_rgb(ImageOps.exif_transpose(im))
                break
            except (OSError, ValueError, SyntaxError, FaststError):
                continue  # a file that broke after the header check: take the next one
        else:
            raise FaststError("no training image could be decoded")
        return random_crop(im, size, g, scale_to=self.size)


def random_crop(im: Image.Image, size: int, g: torch.Generator, scale_to: int | None = None) -> torch.Tensor:
    """Resize the shorter side to ``scale_to`` (default ``size``), take a random ``size`` x ``size``
    crop, random h-flip. Smaller crops at the same scale show the network the same content scale."""
    scale = max(size, scale_to or size) / min(im.size)
    w, h = max(size, round(im.width * scale)), max(size, round(im.height * scale))
    im = im.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    x = int(torch.randint(0, w - size + 1, (1,), generator=g))
    y = int(torch.randint(0, h - size + 1, (1,), generator=g))
    t = pil_to_tensor(im.crop((x, y, x + size, y + size)))
    if torch.rand(1, generator=g).item() < 0.5:
        t = t.flip(-1)
    return t


class ResumableBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(index, position)`` for iterations ``start .. stop-1`` of a run.

    Epoch ``e`` is a permutation drawn from ``seed + e``, so the data order is a pure function of
    the seed and the iteration: resuming at iteration k reproduces the rest of the order. With
    ``world_size`` > 1 each rank takes its slice of every global batch.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0, world_size: int = 1
    ):
        if batch_size % world_size:
            raise FaststError(f"batch size {batch_size} does not split over {world_size} processes")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world_size = start, stop, rank, world_size

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def _index(self, position: int, cache: dict) -> int:
        epoch, offset = divmod(position, self.n)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))
        return int(cache[epoch][offset])

    def __iter__(self):
        cache: dict = {}
        local = self.batch_size // self.world_size
        for iteration in range(self.start, self.stop):
            first = iteration * self.batch_size + self.rank * local
            yield [(self._index(p, cache), p) for p in range(first, first + local)]


def test_photos(
    folder: str | os.PathLike | None = None, limit: int | None = None, max_size: int | None = None
) -> dict[str, torch.Tensor]:
    """Held-out photos by file stem (default: the manifest's test set under ``data_dir()``)."""
    folder = Path(folder) if folder is not None else data_dir() / TEST_DIR
    paths = list_images(folder)[:limit]
    return {p.stem: load_image(p, max_size) for p in paths}
