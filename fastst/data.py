"""The project's images: a manifest with origin URLs and checksums, fetching, and training sets.

Longer than most modules: the manifest, downloads that resume and verify, the mirror, MS-COCO, the
extra paintings and the training crops all belong to the one question of where images come from.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from fastst.errors import FaststError
from fastst.io import (
    IMAGE_SUFFIXES,
    atomic_path,
    file_digest,
    list_images,
    load_image,
    pil_to_tensor,
    project_folder,
    to_rgb,
)

MIRROR_ENV = "FASTST_DATA_MIRROR"
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


# Paintings beyond the mirror, for trying the method on a style it was never tuned on. They come
# inside a package of the Python package index, fetched with pip by name and version, then checked.
EXTRA_STYLES = {
    "great_wave": {  # Hokusai, The Great Wave off Kanagawa (c. 1831), public domain
        "package": "oumi==0.9",
        "member": "oumi-0.9/tests/testdata/images/the_great_wave_off_kanagawa.jpg",
        "sha256": "b135badbf60ec9d0ad36faa139de6b18a86ec9c81648103c6b5caa999abc02b6",
    },
}
EXTRA_DIR = "styles_extra"

# MS-COCO 2014 train, what Johnson et al. trained on (82,783 images, 13.5 GB).
COCO_TRAIN2014 = {
    "url": "http://images.cocodataset.org/zips/train2014.zip",
    "md5": "0da8c0bd3d6becc4dcb32757491aca88",
}


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


def download(
    url: str,
    dest: str | os.PathLike,
    checksum: str | None = None,
    algorithm: str = "sha256",
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30,
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part``, verifying ``checksum``.

    The file appears at ``dest`` only once complete and verified; a wrong checksum removes the
    partial file. Errors name the URL.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "fastst"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if have and response.status != 206:  # server ignored the range: start again
                have = 0
            length = response.headers.get("Content-Length")
            total = (have + int(length)) if length is not None else size
            with (
                open(part, "ab" if have else "wb") as f,
                tqdm(
                    total=total,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dest.name,
                    disable=not progress,
                    leave=False,
                ) as bar,
            ):
                while block := response.read(1 << 20):
                    f.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # already complete
            pass
        else:
            part.unlink(missing_ok=True)
            raise FaststError(f"download failed: {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        # keep the partial file: the next call resumes it
        reason = getattr(e, "reason", None) or e
        raise FaststError(f"download interrupted: {url}: {reason} (run again to resume)") from None
    if size is not None and part.stat().st_size != size:
        got = part.stat().st_size
        if got > size:
            part.unlink()
        raise FaststError(f"download incomplete: {url}: {got} of {size} bytes (run again to resume)")
    if checksum is not None:
        actual = file_digest(part, algorithm)
        if actual != checksum:
            part.unlink()
            raise FaststError(f"checksum mismatch for {url}: {algorithm} {actual}, expected {checksum}")
    os.replace(part, dest)
    return dest


def fetch(
    dest: str | os.PathLike | None = None,
    mirror: str | os.PathLike | None = None,
    prefixes: tuple[str, ...] = ("styles", "train", "test"),
    progress: bool = True,
) -> dict[str, int]:
    """Put the manifest's files under ``dest`` (default ``data_dir()``), verified by sha256.

    Files already present and verified are kept. With ``mirror`` (or ``$FASTST_DATA_MIRROR``) they
    are copied from that folder instead of downloaded. Returns counts of kept, copied and
    downloaded files.
    """
    dest = Path(dest) if dest is not None else data_dir()
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    if mirror is not None:
        mirror = Path(mirror)
        if not mirror.is_dir():
            raise FaststError(f"mirror folder not found: {mirror}")
    entries = [e for e in manifest() if e.path.startswith(prefixes)]
    counts = {"kept": 0, "copied": 0, "downloaded": 0}
    for entry in tqdm(entries, desc="data", unit="file", disable=not progress):
        target = dest / entry.path
        if target.exists() and target.stat().st_size == entry.bytes and file_digest(target) == entry.sha256:
            counts["kept"] += 1
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FaststError(f"cannot create {target.parent}: {e.strerror}") from None
        if mirror is not None:
            source = mirror / entry.path
            if not source.is_file():
                raise FaststError(f"mirror {mirror} lacks {entry.path}")
            if file_digest(source) != entry.sha256:
                raise FaststError(f"mirror copy of {entry.path} does not match its sha256")
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
            counts["copied"] += 1
        else:
            download(entry.url, target, entry.sha256, size=entry.bytes, progress=False)
            counts["downloaded"] += 1
    return counts


def fetch_archive(
    url: str,
    dest: str | os.PathLike,
    checksum: str,
    algorithm: str = "sha256",
    size: int | None = None,
    progress: bool = True,
) -> Path:
    """Download a zip archive (resumable, verified) and extract it into ``dest`` with progress.

    Extraction goes to a temporary folder renamed into place, so an interrupted run leaves no
    half-extracted set. Returns the folder holding the extracted files.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    name = url.rstrip("/").rsplit("/", 1)[-1]
    archive = dest / name
    if not archive.exists():
        download(url, archive, checksum, algorithm, size=size, progress=progress)
    done = dest / Path(name).stem
    if done.exists():
        return done
    tmp = dest / f".{done.name}.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as z:
            for member in tqdm(z.infolist(), desc=f"extract {name}", unit="file", disable=not progress):
                z.extract(member, tmp)
    except zipfile.BadZipFile as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FaststError(f"cannot extract {archive}: {e}") from None
    inner = [p for p in tmp.iterdir()]
    # an archive holding a single top-level folder of the same name is unwrapped
    source = inner[0] if len(inner) == 1 and inner[0].is_dir() and inner[0].name == done.name else tmp
    os.replace(source, done)
    shutil.rmtree(tmp, ignore_errors=True)
    return done


def fetch_extra_styles(dest: str | os.PathLike | None = None) -> list[Path]:
    """The paintings of ``EXTRA_STYLES`` into ``data/styles_extra/``: each package's source archive
    is fetched with pip (no dependencies), the image taken out of it and its sha256 checked."""
    dest = Path(dest) if dest is not None else data_dir() / EXTRA_DIR
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, entry in EXTRA_STYLES.items():
        target = dest / f"{name}.jpg"
        if target.exists() and file_digest(target) == entry["sha256"]:
            written.append(target)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "-d",
                    tmp,
                    entry["package"],
                ],
                capture_output=True,
                text=True,
            )
            archives = list(Path(tmp).glob("*.tar.gz"))
            if r.returncode or not archives:
                raise FaststError(
                    f"could not fetch {entry['package']} with pip: {(r.stderr or r.stdout).strip()[-300:]}"
                )
            with tarfile.open(archives[0]) as tar:
                data = tar.extractfile(entry["member"]).read()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise FaststError(f"{name}: the image in {entry['package']} does not match its sha256")
        with atomic_path(target) as tmp_path:
            tmp_path.write_bytes(data)
        written.append(target)
    return written


def fetch_coco(dest: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """MS-COCO 2014 train into ``dest/coco`` (13.5 GB download, md5-verified, resumable)."""
    dest = Path(dest) if dest is not None else data_dir() / "coco"
    return fetch_archive(COCO_TRAIN2014["url"], dest, COCO_TRAIN2014["md5"], "md5", progress=progress)


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
