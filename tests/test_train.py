import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fastst import commands
from fastst.cli import build_parser, main
from fastst.config import option_fields
from fastst.errors import FaststError
from fastst.host import cpu_flags, cpu_model
from fastst.presets import PRESETS
from fastst.train import TrainConfig, load_styles, snapshot_table, train

ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path, data_root, name="run", **kw):
    return TrainConfig.from_preset(
        "smoke",
        style=str(data_root / "styles" / "starry_night.jpg"),
        data=str(data_root / "train" / "bsds500_trainval"),
        snapshots=str(data_root / "test" / "bsds500_test_subset"),
        out=str(tmp_path / name),
        device="cpu",
        precision="fp32",
        **kw,
    )


def _fastst(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "fastst", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        **kw,
    )


def test_smoke_run_leaves_config_losses_snapshots_and_model(tmp_path, data_root):
    config = _config(tmp_path, data_root)
    result = train(config, progress=False)
    run = result.run
    assert {p.name for p in run.iterdir()} >= {
        "config.json",
        "losses.csv",
        "checkpoint.pth",
        "model.pth",
        "snapshots",
    }
    losses = pd.read_csv(run / "losses.csv")
    assert list(losses.columns) == [
        "iteration",
        "style_name",
        "content",
        "style",
        "tv",
        "total",
        "lr",
        "images_per_s",
        "elapsed_s",
    ]
    assert set(losses["style_name"]) == {"starry_night"}
    assert losses["iteration"].tolist() == list(range(1, config.iterations + 1))
    assert (
        (losses["content"] + losses["style"] + losses["tv"] - losses["total"]).abs() < 1e-3 * losses["total"]
    ).all()
    table = snapshot_table(run)
    assert sorted(table) == config.schedule() == [0, 6]
    assert all(len(photos) == 2 for photos in table.values())
    model = torch.load(run / "model.pth", weights_only=True)
    assert model["iteration"] == 6 and model["net"]["width"] == 0.25
    import json

    meta = json.loads((run / "config.json").read_text())
    assert meta["config"]["style_weight"] == config.style_weight and meta["environment"]["device"] == "cpu"
    # the machine it ran on: the CPU by name and the vector extensions that set its speed
    assert meta["environment"]["cpu"] == cpu_model() and meta["environment"]["cpu_flags"] == cpu_flags()
    assert TrainConfig.from_saved(meta["config"]) == config  # what a tool reads back is what ran


def test_resuming_gives_the_same_weights_as_one_go(tmp_path, data_root):
    whole = train(_config(tmp_path, data_root, "whole", iterations=8, checkpoint_every=4), progress=False)
    half = _config(tmp_path, data_root, "split", iterations=4, checkpoint_every=4)
    train(half, progress=False)
    train(
        _config(tmp_path, data_root, "split", iterations=8, checkpoint_every=4), resume=True, progress=False
    )
    a = torch.load(whole.run / "model.pth", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "model.pth", weights_only=True)["model"]
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) <= 1e-6
    rows = [int(r["iteration"]) for r in csv.DictReader(open(tmp_path / "split" / "losses.csv"))]
    assert rows == list(range(1, 9))


def test_the_weight_average_follows_the_trained_weights_and_survives_a_resume(tmp_path, data_root):
    raw = train(_config(tmp_path, data_root, "raw", keep_weights_every=1), progress=False).run
    trajectory = [torch.load(raw / "weights" / f"{i:06d}.pth", weights_only=True)["model"] for i in range(7)]
    expected = trajectory[0]
    for step in range(1, 7):  # by hand: a decay rising as (1 + step) / (10 + step), capped at 0.3
        decay = min(0.3, (1 + step) / (10 + step))
        expected = {k: decay * expected[k] + (1 - decay) * trajectory[step][k] for k in expected}
    train(_config(tmp_path, data_root, "avg", average=0.3, iterations=3, checkpoint_every=3), progress=False)
    avg = train(_config(tmp_path, data_root, "avg", average=0.3), resume=True, progress=False).run
    saved = torch.load(avg / "model.pth", weights_only=True)["model"]
    trained = torch.load(avg / "checkpoint.pth", weights_only=True)["model"]
    assert max((saved[k].float() - expected[k]).abs().max().item() for k in saved) <= 1e-5
    assert max((trained[k] - trajectory[6][k]).abs().max().item() for k in trained) <= 1e-6
    assert max((saved[k].float() - trained[k]).abs().max().item() for k in saved) > 1e-4


def test_a_finished_run_is_reused_and_a_changed_one_refused(tmp_path, data_root):
    config = _config(tmp_path, data_root)
    train(config, progress=False)
    stamp = (tmp_path / "run" / "model.pth").stat().st_mtime_ns
    assert train(config, resume=True, progress=False).iterations == 6
    assert (tmp_path / "run" / "model.pth").stat().st_mtime_ns == stamp
    from fastst.errors import FaststError

    with pytest.raises(FaststError, match="already holds a run"):
        train(config, progress=False)
    with pytest.raises(FaststError, match="style_weight"):
        train(_config(tmp_path, data_root, style_weight=1.0), resume=True, progress=False)


@pytest.mark.parametrize("case", ["missing", "empty", "no images", "bad style", "style is a folder"])
def test_bad_data_or_style_is_one_line_and_nonzero(tmp_path, data_root, case):
    style, data = data_root / "styles" / "starry_night.jpg", data_root / "train" / "bsds500_trainval"
    if case == "missing":
        data = tmp_path / "absent"
    elif case == "empty":
        data = tmp_path / "empty"
        data.mkdir()
    elif case == "no images":
        data = tmp_path / "texts"
        data.mkdir()
        (data / "a.txt").write_text("x")
        (data / "b.jpg").write_text("not a jpeg")
    elif case == "bad style":
        style = tmp_path / "style.jpg"
        style.write_text("not a jpeg")
    else:
        style = tmp_path
    r = _fastst(
        "train",
        "--preset",
        "smoke",
        "--style",
        style,
        "--data",
        data,
        "--out",
        tmp_path / "run",
        "--device",
        "cpu",
        "--quiet",
    )
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("fastst: error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path, data_root):
    common = [
        "--preset",
        "smoke",
        "--style",
        data_root / "styles" / "starry_night.jpg",
        "--data",
        data_root / "train" / "bsds500_trainval",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--iterations",
        "4",
        "--batch-size",
        "4",
        "--num-workers",
        "0",
        "--quiet",
        "--style-weight",
        "2",
        "--snapshots",
        data_root / "test" / "bsds500_test_subset",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = _fastst("train", *common, "--out", tmp_path / "one", env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "fastst",
            "train",
            *map(str, common),
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=env,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    # Instance norm makes many parameters irrelevant to the output (a conv bias before a norm, a
    # constant shift of the residual stream): their gradients are rounding noise that Adam scales
    # up to +-lr steps. So compare what the weights compute, and the logged global-batch losses.
    from fastst.stylize import load_model

    # Gloo's reduction order varies from run to run, and on some CPUs that rounding grows to about 1e-3 of
    # the image range within 4 steps; so the two runs must agree far better than training moved the output.
    from fastst.transformer import TransformerNet

    photo = torch.rand(1, 3, 40, 56)
    torch.manual_seed(0)  # train() seeds with the config's seed (0) before building the network
    start = TransformerNet(width=0.25, input_skip=True).eval()
    with torch.no_grad():
        a, b = (
            load_model(tmp_path / "one" / "model.pth")(photo),
            load_model(tmp_path / "two" / "model.pth")(photo),
        )
        moved = (a - start(photo)).abs().max().item()
    assert (a - b).abs().max().item() <= 0.05 * moved
    # The global-batch losses: the first two iterations (from the same start, and after one update) agree to
    # rounding; from there the same growth of rounding through Adam's steps applies as to the weights (with
    # channels-last kernels one process's loss moved by about 1e-3 within 4 steps).
    la, lb = pd.read_csv(tmp_path / "one" / "losses.csv"), pd.read_csv(tmp_path / "two" / "losses.csv")
    for column in ("content", "style", "tv", "total"):
        scale = la[column].abs().max()
        assert (la[column] - lb[column])[:2].abs().max() <= 1e-5 * scale
        assert (la[column] - lb[column]).abs().max() <= 1e-2 * scale
    import json

    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_sigterm_on_one_of_two_gloo_processes_stops_both_with_one_checkpoint_and_resumes(tmp_path, data_root):
    import signal
    import time

    import psutil

    common = [
        "--preset",
        "smoke",
        "--style",
        data_root / "styles" / "starry_night.jpg",
        "--data",
        data_root / "train" / "bsds500_trainval",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--iterations",
        "400",
        "--batch-size",
        "4",
        "--num-workers",
        "0",
        "--quiet",
        "--style-weight",
        "2",
        "--checkpoint-every",
        "1000",
        "--log-every",
        "1",
        "--snapshots",
        tmp_path / "no_snapshots",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "fastst",
        "train",
        *map(str, common),
        "--out",
        str(tmp_path / "run"),
    ]
    agent = subprocess.Popen(
        torchrun, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        losses = tmp_path / "run" / "losses.csv"
        deadline = time.monotonic() + 120
        while not (losses.exists() and len(losses.read_text().splitlines()) > 3):
            assert agent.poll() is None and time.monotonic() < deadline, agent.stderr.read()[-2000:]
            time.sleep(0.2)
        workers = [
            p for p in psutil.Process(agent.pid).children(recursive=True) if "fastst" in " ".join(p.cmdline())
        ]
        assert len(workers) == 2
        workers[1].send_signal(signal.SIGTERM)  # one rank only
        t0 = time.monotonic()
        _, stderr = agent.communicate(timeout=60)  # a hang fails here instead of blocking
        assert time.monotonic() - t0 < 30, "the ranks took too long to stop together"
    finally:
        if agent.poll() is None:
            for p in psutil.Process(agent.pid).children(recursive=True):
                p.kill()
            agent.kill()
    assert all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in workers)
    saved = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=False)
    stopped = saved["iteration"]
    assert 3 <= stopped < 400 and stderr.count("continue with --resume") >= 1
    assert not (tmp_path / "run" / "model.pth").exists()
    # resume to a short end (the constant schedule allows it) and compare with one uninterrupted run
    end = stopped + 3
    shorter = [str(a) if a != "400" else str(end) for a in map(str, common)]
    resumed = subprocess.run(
        [*torchrun[:5], "-m", "fastst", "train", *shorter, "--out", str(tmp_path / "run"), "--resume"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = subprocess.run(
        [*torchrun[:5], "-m", "fastst", "train", *shorter, "--out", str(tmp_path / "whole")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=env,
    )
    assert whole.returncode == 0, whole.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "run" / "losses.csv")
    assert rows["iteration"].tolist() == list(range(1, end + 1))
    reference = pd.read_csv(tmp_path / "whole" / "losses.csv")
    # gloo's reduction order varies between runs: the same losses to rounding, not bit for bit
    assert ((rows["total"] - reference["total"]).abs() <= 1e-3 * reference["total"].abs()).all()


def test_run_folders_are_named_by_the_settings_that_change_the_weights(tmp_path, monkeypatch):
    from fastst.train import config_digest, style_configs

    monkeypatch.setenv("FASTST_RUNS", str(tmp_path))
    a, b = style_configs("smoke")["starry_night"], style_configs("smoke", style_weight=3.0)["starry_night"]
    c = style_configs("smoke", iterations=99, device="cpu")["starry_night"]
    assert a.out.startswith(str(tmp_path / "smoke" / "starry_night-"))
    assert config_digest(a) != config_digest(b)  # a new run, not a clash with the old one
    assert config_digest(a) == config_digest(c)  # more iterations continue the same run
    assert set(style_configs("smoke")) == {"starry_night", "woman_with_a_parasol"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_reused_memory_stops_page_faults_and_is_released_on_request():
    # each setting in a fresh process, since it is process-wide: four passes of the network at
    # 768 px, whose 32-channel maps (75 MB) are above glibc's mmap threshold
    code = """
import resource, sys
import psutil, torch
from fastst import TransformerNet
from fastst.runtime import release_freed_memory, reuse_freed_memory
if sys.argv[1] == "reuse":
    assert reuse_freed_memory()
torch.manual_seed(0)
net, x = TransformerNet().eval(), torch.rand(1, 3, 768, 768)
faults = []
with torch.inference_mode():
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        net(x)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
kept = psutil.Process().memory_info().rss
release_freed_memory(keep_mb=100_000)  # less free memory than that: kept
still = psutil.Process().memory_info().rss
release_freed_memory(keep_mb=0)
print(faults[2] + faults[3], (kept - still) // 2**20, (still - psutil.Process().memory_info().rss) // 2**20)
"""

    def run(mode):
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True)
        return [int(v) for v in out.stdout.split()]

    default_faults, _, _ = run("default")
    reuse_faults, kept_released_mb, released_mb = run("reuse")
    assert default_faults > 100_000  # by default every pass maps its large blocks afresh and faults them in
    assert reuse_faults < 0.05 * default_faults  # kept blocks are served again, already in memory
    assert kept_released_mb < 50  # below the amount it may keep, release keeps it
    assert released_mb > 100  # above, the kept memory goes back to the system


def test_a_stop_at_the_last_iteration_still_writes_the_model(tmp_path, data_root, monkeypatch):
    """A signal during the last iteration finishes the run instead of leaving a finished checkpoint
    without model.pth; a finished checkpoint without model.pth (a SIGKILL between the two) is completed
    by --resume."""
    import signal

    import fastst.step as step_module

    config = _config(tmp_path, data_root)
    real = step_module.train_step

    def step_then_signal(*args, **kw):  # the signal arrives while the last step runs
        terms = real(*args, **kw)
        signal.raise_signal(signal.SIGTERM)
        return terms

    monkeypatch.setattr(step_module, "train_step", step_then_signal)
    config.iterations = 1
    result = train(config, progress=False)
    assert (result.run / "model.pth").exists() and result.iterations == 1
    monkeypatch.setattr(step_module, "train_step", real)
    (result.run / "model.pth").unlink()
    again = train(config, resume=True, progress=False)
    saved = torch.load(again.run / "model.pth", weights_only=True)
    assert saved["iteration"] == 1 and set(saved["model"]) == set(TrainNet().state_dict())


def TrainNet():
    from fastst.transformer import TransformerNet

    return TransformerNet(width=0.25, input_skip=True)


def test_schedules_laid_over_the_run_refuse_a_changed_length(tmp_path, data_root):
    from fastst.errors import FaststError

    config = _config(tmp_path, data_root, lr_schedule="onecycle", warmup=0.2)
    train(config, progress=False)
    longer = _config(
        tmp_path, data_root, lr_schedule="onecycle", warmup=0.2, iterations=config.iterations + 4
    )
    with pytest.raises(FaststError, match="schedule"):
        train(longer, resume=True, progress=False)
    constant = _config(tmp_path, data_root, name="constant")
    train(constant, progress=False)
    train(
        _config(tmp_path, data_root, name="constant", iterations=constant.iterations + 2),
        resume=True,
        progress=False,
    )


def test_style_size_none_trains_on_the_style_images_own_pixels(data_root):
    """With no style size (None survives the preset's defaults) the style target is the image file's
    pixels as they are; the preset's size shrinks its longer side."""
    path = data_root / "styles" / "starry_night.jpg"
    with Image.open(path) as im:
        pixels = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1).float() / 255
    (as_is,) = load_styles(TrainConfig.from_preset("smoke", style=str(path), data="d", style_size=None))
    torch.testing.assert_close(as_is, pixels, atol=1e-6, rtol=0)
    (shrunk,) = load_styles(TrainConfig.from_preset("smoke", style=str(path), data="d"))
    assert max(shrunk.shape[-2:]) == 64 < max(pixels.shape[-2:])


def test_clip_cuts_the_gradients_norm_to_the_limit_and_leaves_smaller_ones():
    from fastst.losses import PerceptualLoss
    from fastst.step import build_model, train_step
    from fastst.vgg import VGG16Features

    torch.manual_seed(0)
    criterion = PerceptualLoss(VGG16Features(weights="random"), torch.rand(3, 32, 32), 1.0, 1.0, 1e-4)
    batch = torch.rand(2, 3, 32, 32)

    def gradient_norm(clip: float) -> float:
        torch.manual_seed(1)
        net = build_model(TrainConfig.from_preset("smoke", style="s.jpg", data="d"))
        optimizer = torch.optim.Adam(net.parameters(), lr=0.0)  # the weights stay; the gradients are kept
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        train_step(net, criterion, batch, optimizer, scaler, torch.device("cpu"), "fp32", clip=clip)
        return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()])).item()

    free = gradient_norm(0.0)
    assert free > 1e-3
    assert gradient_norm(free / 4) == pytest.approx(free / 4, rel=1e-4)
    assert gradient_norm(free * 4) == pytest.approx(free, rel=1e-5)


def test_norm_lr_moves_the_norms_at_their_own_rate_and_the_rest_at_the_runs():
    from fastst.losses import PerceptualLoss
    from fastst.step import build_model, parameter_groups, train_step
    from fastst.vgg import VGG16Features

    torch.manual_seed(0)
    criterion = PerceptualLoss(VGG16Features(weights="random"), torch.rand(3, 32, 32), 1.0, 1.0, 1e-4)
    config = TrainConfig.from_preset("smoke", style="s.jpg", data="d", lr=1e-3, norm_lr=1e-2)
    net = build_model(config)
    norms = {
        name
        for name, m in net.named_modules()
        if isinstance(m, torch.nn.InstanceNorm2d) and m.affine
        for name in (f"{name}.weight", f"{name}.bias")
    }
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    optimizer = torch.optim.Adam(parameter_groups(net, config))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    train_step(net, criterion, torch.rand(2, 3, 32, 32), optimizer, scaler, torch.device("cpu"), "fp32")
    # Adam's first step moves a weight by its rate where the gradient is far from zero, and never more
    moved = {k: (v.detach() - before[k]).abs().max().item() for k, v in net.named_parameters()}
    assert norms and norms < set(moved)
    for group, rate in ((norms, 1e-2), (set(moved) - norms, 1e-3)):
        assert max(moved[k] for k in group) == pytest.approx(rate, rel=1e-3)
        assert all(moved[k] <= rate * (1 + 1e-3) for k in group)
    plain = parameter_groups(net, TrainConfig.from_preset("smoke", style="s.jpg", data="d", lr=1e-3))
    assert len(plain) == 1 and len(plain[0]["params"]) == len(moved)


def test_a_run_resumed_from_an_unfused_optimiser_state_trains_with_the_fused_adam():
    """A checkpoint written before training's Adam was fused resumes fused, from the same moments."""
    from fastst.step import load_optimizer, make_optimizer, parameter_groups
    from fastst.transformer import TransformerNet

    config = TrainConfig.from_preset("smoke", style="s.jpg", data="d")
    net = TransformerNet(width=0.25)
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    before = torch.optim.Adam(parameter_groups(net, config))  # the default implementation
    before.step()
    resumed = make_optimizer(net, config)
    load_optimizer(resumed, before.state_dict())
    assert all(group["fused"] for group in resumed.param_groups)
    first = next(iter(net.parameters()))
    assert torch.equal(resumed.state[first]["exp_avg"], before.state[first]["exp_avg"])
    resumed.step()
    assert float(resumed.state[first]["step"]) == 2


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"clip": -1.0}, "clip must be"),
        ({"clip": float("inf")}, "clip must be"),
        ({"average": 1.0}, "average"),
        ({"norm_lr": -1e-3}, "norm-lr"),
    ],
)
def test_a_bad_clip_average_or_norm_rate_is_refused_before_training(setting, message):
    from fastst.errors import FaststError

    with pytest.raises(FaststError, match=message):
        TrainConfig.from_preset("smoke", style="s.jpg", data="d", **setting).validate()


def test_the_options_of_train_are_the_configs_fields_and_reach_it(monkeypatch):
    required = ["train", "--style", "a.jpg", "--data", "d", "--out", "o"]
    args = build_parser().parse_args(required)
    assert {f.name for f in option_fields(TrainConfig)} <= set(vars(args))
    trained = []

    def stop(config, **kw):
        trained.append(config)
        raise FaststError("stopped before training")

    monkeypatch.setattr(commands, "train", stop)
    given = [
        "--style",
        "b.jpg",
        "--preset",
        "smoke",
        "--iterations",
        "7",
        "--no-input-skip",
        "--from",
        "m.pth",
    ]
    assert main([*required, *given, "--crop-schedule", "0:32,0.5:48", "--content-layer", "relu2_2"]) == 1
    config = trained[0]
    assert config.style == ("a.jpg", "b.jpg") and (config.data, config.out) == ("d", "o")
    assert (config.preset, config.iterations, config.input_skip, config.init) == ("smoke", 7, False, "m.pth")
    assert config.crop_schedule == ((0.0, 32), (0.5, 48)) and config.content_layer == "relu2_2"
    assert config.batch_size == PRESETS["smoke"]["batch_size"]  # not given: the preset's
    assert config.style_strength == 1.0  # no raw --style-weight: the calibrated weight
