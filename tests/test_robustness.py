"""Interruptions and faults: nothing crashes with a traceback, nothing is lost or half-written."""

import csv
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastst.errors import FaststError
from fastst.io import atomic_torch_save
from fastst.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent


def _train_cmd(data_root, out, iterations, every):
    return [
        sys.executable,
        "-m",
        "fastst",
        "train",
        "--preset",
        "smoke",
        "--device",
        "cpu",
        "--quiet",
        "--style",
        str(data_root / "styles" / "starry_night.jpg"),
        "--data",
        str(data_root / "train" / "bsds500_trainval"),
        "--snapshots",
        str(data_root / "test" / "bsds500_test_subset"),
        "--iterations",
        str(iterations),
        "--checkpoint-every",
        str(every),
        "--out",
        str(out),
    ]


def _iterations(out):
    with open(out / "losses.csv", newline="") as f:
        return [int(r["iteration"]) for r in csv.DictReader(f)]


def _wait_for_rows(out, rows, proc, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline:
        if (
            (out / "checkpoint.pth").exists()
            and (out / "losses.csv").exists()
            and len(_iterations(out)) >= rows
        ):
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    raise AssertionError("training did not get going")


def test_sigkill_then_resume_keeps_losses_continuous(tmp_path, data_root):
    out = tmp_path / "run"
    cmd = _train_cmd(data_root, out, 60, 5)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_rows(out, 12, proc)
    proc.kill()
    proc.wait()
    saved = torch.load(out / "checkpoint.pth", weights_only=True)["iteration"]
    logged = max(_iterations(out))
    assert saved % 5 == 0 and logged - saved < 5 + 1, "at most one checkpoint interval lost"
    r = subprocess.run(cmd + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert _iterations(out) == list(range(1, 61))
    assert torch.load(out / "model.pth", weights_only=True)["iteration"] == 60


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_checkpoint_and_exits_cleanly(tmp_path, data_root, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd(data_root, out, 500, 1000),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not ((out / "losses.csv").exists() and len(_iterations(out)) >= 3):  # no checkpoint yet
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "continue with --resume" in stderr
    state = torch.load(out / "checkpoint.pth", weights_only=True)
    assert state["iteration"] == max(_iterations(out))


def test_a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, data_root, monkeypatch):
    import fastst.losses

    config = TrainConfig.from_preset(
        "smoke",
        style=str(data_root / "styles" / "starry_night.jpg"),
        data=str(data_root / "train" / "bsds500_trainval"),
        out=str(tmp_path / "run"),
        snapshots=str(data_root / "test" / "bsds500_test_subset"),
        iterations=10,
        checkpoint_every=3,
        device="cpu",
    )
    real, calls = fastst.losses.tv_loss, []

    def poisoned(img):
        calls.append(1)
        return real(img) * (float("nan") if len(calls) == 5 else 1.0)

    monkeypatch.setattr(fastst.losses, "tv_loss", poisoned)
    with pytest.raises(FaststError, match="nan at iteration 5") as info:
        train(config, progress=False)
    assert "\n" not in str(info.value)
    state = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    assert state["iteration"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pth"
    atomic_torch_save({"iteration": 1}, path)

    def full(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError):
        atomic_torch_save({"iteration": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"iteration": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]


def test_an_unwritable_output_folder_is_one_line(tmp_path, data_root):
    if os.geteuid() == 0:
        target = Path("/proc/fastst-run")  # not writable even for root
    else:
        target = tmp_path / "ro" / "run"
        (tmp_path / "ro").mkdir(mode=0o500)
    r = subprocess.run(
        _train_cmd(data_root, target, 2, 1), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 1 and r.stderr.strip().startswith("fastst: error: cannot create run folder"), (
        r.stderr
    )
    assert r.stderr.count("\n") == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_stylizing_leaves_the_processes_allocator_as_it_found_it(tmp_path):
    # a kernel that stylized once must not keep every large block it frees afterwards
    code = f"""
import psutil, torch
from PIL import Image
from fastst.files import StylizeOptions, stylize_paths
from fastst.transformer import TransformerNet
net = TransformerNet(width=0.25, input_skip=True)
torch.save({{"model": net.state_dict(), "net": net.config}}, r"{tmp_path}/m.pth")
Image.new("RGB", (64, 48)).save(r"{tmp_path}/in.png")
options = StylizeOptions(device="cpu")
stylize_paths(r"{tmp_path}/m.pth", r"{tmp_path}/in.png", r"{tmp_path}/out.png", options, progress=False)
before = psutil.Process().memory_info().rss
x = torch.ones(300 * 2**20 // 4)
del x
print((psutil.Process().memory_info().rss - before) / 2**20)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.strip()) < 50  # MB kept of the 300 MB freed


def test_the_loss_network_is_one_instance_per_device_that_nobody_moves():
    from fastst.vgg import loss_network

    cpu = loss_network()
    meta = loss_network(device="meta")
    assert meta is not cpu and loss_network(device="meta") is meta
    assert next(cpu.parameters()).device.type == "cpu" and next(meta.parameters()).device.type == "meta"
    assert loss_network(device="cpu") is cpu


def test_output_cut_short_by_its_reader_is_no_traceback():
    # `fastst styles | head -0`: the reader has gone before the first line is written
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastst", "styles"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdout.close()  # long before the interpreter has imported fastst
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
