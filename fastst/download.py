"""Getting the project's images: the manifest's files copied from a mirror or downloaded (resumable,
each checked by its sha256), zip archives (MS-COCO), and the extra paintings fetched with pip."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from fastst.data import EXTRA_DIR, data_dir, manifest
from fastst.errors import FaststError
from fastst.io import atomic_path, file_digest

MIRROR_ENV = "FASTST_DATA_MIRROR"

# Paintings beyond the mirror, for trying the method on a style it was never tuned on. They come
# inside a package of the Python package index, fetched with pip by name and version, then checked.
EXTRA_STYLES = {
    "great_wave": {  # Hokusai, The Great Wave off Kanagawa (c. 1831), public domain
        "package": "oumi==0.9",
        "member": "oumi-0.9/tests/testdata/images/the_great_wave_off_kanagawa.jpg",
        "sha256": "b135badbf60ec9d0ad36faa139de6b18a86ec9c81648103c6b5caa999abc02b6",
    },
}

# MS-COCO 2014 train, what Johnson et al. trained on (82,783 images, 13.5 GB).
COCO_TRAIN2014 = {
    "url": "http://images.cocodataset.org/zips/train2014.zip",
    "md5": "0da8c0bd3d6becc4dcb32757491aca88",
}


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
