import hashlib
import http.server
import threading
import zipfile

import pytest
import torch

from fastst.data import PhotoDataset, ResumableBatchSampler, manifest, painting_split, usable_images
from fastst.download import download, fetch, fetch_archive
from fastst.errors import FaststError


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    drop_after: dict = {}  # path -> bytes sent before the connection drops (once)

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = self.drop_after.pop(self.path, None)
        if cut is not None:
            self.wfile.write(body[start:cut])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server():
    _Handler.files, _Handler.drop_after = {}, {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_manifest_describes_every_file_by_url_and_checksum():
    entries = manifest()
    assert len(entries) == 1954
    paths = {e.path for e in entries}
    assert {"styles/starry_night.jpg", "styles/woman_with_a_parasol.jpg"} <= paths
    assert all(e.url.startswith("https://") and len(e.sha256) == 64 and e.bytes > 0 for e in entries)
    assert sum(e.path.startswith("test/") for e in entries) == 11
    assert sum(e.path.startswith("paintings/") for e in entries) == 753


def test_held_out_paintings_are_apart_from_training_and_from_the_shipped_styles():
    train, held_out = painting_split("/data")
    assert len(train) + len(held_out) == 753 and not set(train) & set(held_out)
    assert 30 <= len(held_out) <= 60
    assert any("AdaIN-style__mondrian" in p.name for p in held_out)  # another project's demo style
    by_path = {e.path: e.sha256 for e in manifest()}
    shipped = {sha for path, sha in by_path.items() if path.startswith("styles/")}
    assert not shipped & {by_path[str(p.relative_to("/data"))] for p in train}


def test_download_verifies_and_leaves_no_partial_file(server, tmp_path):
    base, handler = server
    body = bytes(range(256)) * 100
    handler.files["/a.bin"] = body
    out = download(f"{base}/a.bin", tmp_path / "a.bin", _sha(body), progress=False)
    assert out.read_bytes() == body
    with pytest.raises(FaststError, match=r"checksum mismatch for http://127\.0\.0\.1"):
        download(f"{base}/a.bin", tmp_path / "b.bin", "0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "a.bin"]


def test_download_404_names_the_url(server, tmp_path):
    base, _ = server
    with pytest.raises(FaststError, match="HTTP 404") as info:
        download(f"{base}/missing.jpg", tmp_path / "m.jpg", progress=False)
    assert f"{base}/missing.jpg" in str(info.value)
    assert not any(tmp_path.iterdir())


def test_a_dropped_connection_resumes(server, tmp_path):
    base, handler = server
    body = bytes(range(256)) * 4000
    handler.files["/big.bin"] = body
    handler.drop_after["/big.bin"] = 300_000
    with pytest.raises(FaststError, match="run again to resume"):
        download(f"{base}/big.bin", tmp_path / "big.bin", _sha(body), size=len(body), progress=False)
    assert not (tmp_path / "big.bin").exists()
    assert (tmp_path / "big.bin.part").stat().st_size == 300_000
    download(f"{base}/big.bin", tmp_path / "big.bin", _sha(body), size=len(body), progress=False)
    assert (tmp_path / "big.bin").read_bytes() == body
    assert not (tmp_path / "big.bin.part").exists()


def test_archive_is_downloaded_and_extracted(server, tmp_path):
    base, handler = server
    zpath = tmp_path / "src.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("train2014/a.jpg", b"x" * 10)
        z.writestr("train2014/b.jpg", b"y" * 10)
    handler.files["/zips/train2014.zip"] = zpath.read_bytes()
    folder = fetch_archive(
        f"{base}/zips/train2014.zip", tmp_path / "coco", _sha(zpath.read_bytes()), progress=False
    )
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg", "b.jpg"]
    assert folder == tmp_path / "coco" / "train2014"


def test_fetch_from_a_mirror_copies_and_verifies(tmp_path, data_root):
    counts = fetch(tmp_path, mirror=data_root, prefixes=("styles",), progress=False)
    assert counts == {"kept": 0, "copied": 7, "downloaded": 0}
    assert fetch(tmp_path, mirror=data_root, prefixes=("styles",), progress=False)["kept"] == 7
    with pytest.raises(FaststError, match="mirror folder not found"):
        fetch(tmp_path, mirror=tmp_path / "nowhere", progress=False)


def test_usable_images_skips_and_names_bad_files(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp_path / "ok.jpg")
    (tmp_path / "bad.jpg").write_text("text")
    with pytest.warns(UserWarning) as caught:
        assert usable_images(tmp_path) == [tmp_path / "ok.jpg"]
    messages = [str(w.message) for w in caught]
    assert any("bad.jpg" in m for m in messages) and any("1 of 2 images" in m for m in messages)
    (tmp_path / "ok.jpg").unlink()
    with pytest.raises(FaststError, match="no usable training images"), pytest.warns(UserWarning):
        usable_images(tmp_path)
    with pytest.raises(FaststError, match="no such folder"):
        usable_images(tmp_path / "absent")


def test_sampler_order_is_a_function_of_seed_and_iteration():
    full = list(ResumableBatchSampler(10, 4, seed=3, start=0, stop=6))
    tail = list(ResumableBatchSampler(10, 4, seed=3, start=2, stop=6))
    assert full[2:] == tail
    first_epoch = [i for batch in full for i, _ in batch][:10]
    assert sorted(first_epoch) == list(range(10))  # each epoch is a permutation
    assert full != list(ResumableBatchSampler(10, 4, seed=4, start=0, stop=6))


def test_ranks_split_each_global_batch():
    one = list(ResumableBatchSampler(10, 4, seed=0, start=0, stop=3))
    r0 = list(ResumableBatchSampler(10, 4, seed=0, start=0, stop=3, rank=0, world_size=2))
    r1 = list(ResumableBatchSampler(10, 4, seed=0, start=0, stop=3, rank=1, world_size=2))
    assert [a + b for a, b in zip(r0, r1)] == one
    with pytest.raises(FaststError):
        ResumableBatchSampler(10, 3, seed=0, start=0, stop=1, world_size=2)


def test_crops_are_deterministic_square_and_in_range(tmp_path):
    from PIL import Image

    Image.effect_noise((90, 60), 50).convert("RGB").save(tmp_path / "n.png")
    ds = PhotoDataset([tmp_path / "n.png"], 32, seed=1)
    a, b, c = ds[(0, 5)], ds[(0, 5)], ds[(0, 6)]
    assert a.shape == (3, 32, 32) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
