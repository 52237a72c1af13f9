"""The measuring instruments themselves (no timing is asserted here)."""

import dataclasses
import importlib.util
import inspect
import math

import pytest
import torch

from fastst import TransformerNet
from fastst.bench import inference_flops
from fastst.evaluate import time_inference
from fastst.inference import TwoTermInputConv
from fastst.measure import psnr
from fastst.step_timing import bench_recipes
from fastst.stylize import Stylizer
from fastst.train import TrainConfig
from fastst.transformer import ConvLayer


def _conv_flops(layers) -> int:
    """2 x C_in x C_out x k^2 x H_out x W_out summed over square convolutions (C_in, C_out, k, H_out)."""
    return sum(2 * c_in * c_out * k * k * s * s for c_in, c_out, k, s in layers)


def _hand_count(size: int) -> int:
    """The forward FLOPs of each convolution of Johnson et al.'s layout."""
    return _conv_flops(
        [
            (3, 32, 9, size),
            (32, 64, 3, size // 2),
            (64, 128, 3, size // 4),
            *[(128, 128, 3, size // 4)] * 10,  # five residual blocks, two convolutions each
            (128, 64, 3, size // 2),
            (64, 32, 3, size),  # nearest x2, then a 3x3 convolution
            (32, 3, 9, size),
        ]
    )


def test_flop_count_matches_the_networks_arithmetic():
    net = TransformerNet()
    assert inference_flops(net, 256) == _hand_count(256)
    assert inference_flops(net, 512) / inference_flops(net, 256) == pytest.approx(4.0, rel=1e-3)


def test_psnr_by_hand():
    a = torch.zeros(3, 4, 4)
    assert psnr(a, a) == math.inf
    assert psnr(a, torch.full((3, 4, 4), 0.1)) == pytest.approx(20.0, abs=1e-4)  # mse 0.01 -> 20 dB


def _timed_passes(fast: bool) -> tuple[list[dict], list[tuple]]:
    """time_inference's rows, and what each forward pass of the timed network ran on: the kind of its
    first layer and its input's shape and memory layout (a hook on the network, which the fast path's
    inference copy carries along)."""
    model = TransformerNet(width=0.25)
    seen = []
    model.register_forward_hook(
        lambda net, args, out: seen.append(
            (
                type(net.encoder[0]),
                tuple(args[0].shape),
                args[0].is_contiguous(memory_format=torch.channels_last),
            )
        )
    )
    rows = time_inference(model, sizes=(32, 48), repeats=3, warmup=2, fast=fast, progress=False)
    return rows, seen


def test_timing_runs_the_warmup_and_the_repeats_on_each_size():
    rows, seen = _timed_passes(fast=False)
    assert seen == [(ConvLayer, (1, 3, s, s), False) for s in (32, 48) for _ in range(5)]
    assert [r["size"] for r in rows] == [32, 48]
    assert all(r["min_s"] <= r["median_s"] <= r["max_s"] for r in rows)
    assert {(r["path"], r["precision"]) for r in rows} == {("plain", "fp32")}


def test_fast_timing_times_the_network_the_stylizer_runs():
    """The fast path times what ``fastst stylize`` runs: the inference form, in the stylizer's precision
    and memory layout."""
    rows, seen = _timed_passes(fast=True)
    stylizer = Stylizer(TransformerNet(width=0.25))
    channels_last = stylizer.memory_format == torch.channels_last
    assert seen == [(TwoTermInputConv, (1, 3, s, s), channels_last) for s in (32, 48) for _ in range(5)]
    assert {(r["path"], r["precision"]) for r in rows} == {("fast", stylizer.precision)}


def test_training_bench_steps_minimise_the_same_objective(data_root):
    from fastst.step_timing import bench_training

    row = bench_training(
        "smoke",
        data_root / "styles" / "starry_night.jpg",
        data_root / "train",
        iterations=2,
        loss_iterations=1,
    )
    # the first iteration: the fast step's objective (precomputed Gram targets, a content pass that
    # stops at the content layer, reduced precision) against the plain one, same weights and batch
    assert row["loss_rel_diff"] < 0.01, row
    assert row["plain_s"] > 0 and row["fast_s"] > 0


def test_inference_bench_times_plain_fast_and_the_matmul_limit_in_the_same_rounds():
    from fastst.bench import bench_inference

    torch.manual_seed(0)
    (row,) = bench_inference(TransformerNet(width=0.25), sizes=(32,), repeats=1, matmul_n=64)
    assert row["size"] == 32 and row["psnr_photos"] == 0  # no photos: PSNR on noise
    assert math.isfinite(row["psnr_db"]) and row["psnr_db"] > 20
    assert row["matmul_interleaved_gflops"] > 0
    # the exported model under the runtimes installed, timed in the same rounds, at their own precision
    for runtime in ("onnxruntime", "openvino"):
        if importlib.util.find_spec(runtime):
            assert row[f"{runtime}_s"] > 0
            assert row[f"{runtime}_precision"] in ("fp32", "bf16")
            assert row[f"{runtime}_psnr_db"] > (40 if row[f"{runtime}_precision"] == "fp32" else 25), row


def test_the_recipe_bench_counts_the_training_steps_flops(data_root, imagenet_vgg):
    """One step of the smoke preset, counted by hand: the network forward and backward (no gradient for
    the photos themselves), the loss network's pass over the output (forward and backward, as deep as the
    deepest style layer) and over the photos (forward, as deep as the content layer), and the Gram
    products (forward, and the two of their backward); a larger batch costs proportionally more."""
    style = str(data_root / "styles" / "starry_night.jpg")
    one = TrainConfig.from_preset("smoke", style=style, data="d", batch_size=1)
    two = TrainConfig.from_preset("smoke", style=style, data="d", batch_size=2)
    rows = {r["step"]: r for r in bench_recipes({"one": one, "two": two}, rounds=1)}
    assert one.image_size == 32 and one.content_layer == "relu3_3"
    net = [  # width 0.25: a quarter of Johnson et al.'s channels
        (3, 8, 9, 32),
        (8, 16, 3, 16),
        (16, 32, 3, 8),
        *[(32, 32, 3, 8)] * 10,
        (32, 16, 3, 16),
        (16, 8, 3, 32),
        (8, 3, 9, 32),
    ]
    vgg = [  # VGG-16 to relu4_3; relu3_3 is the seventh convolution
        (3, 64, 3, 32),
        (64, 64, 3, 32),
        (64, 128, 3, 16),
        (128, 128, 3, 16),
        (128, 256, 3, 8),
        (256, 256, 3, 8),
        (256, 256, 3, 8),
        (256, 512, 3, 4),
        (512, 512, 3, 4),
        (512, 512, 3, 4),
    ]
    grams = sum(3 * 2 * c * c * s * s for c, s in [(64, 32), (128, 16), (256, 8), (512, 4)])
    step = 3 * _conv_flops(net) - _conv_flops(net[:1]) + 2 * _conv_flops(vgg) + _conv_flops(vgg[:7]) + grams
    assert rows["one @ 32 px"]["gflop"] == pytest.approx(step / 1e9, rel=1e-9)
    assert rows["two @ 32 px"]["gflop"] == pytest.approx(2 * step / 1e9, rel=1e-9)


def test_recipes_running_the_same_step_share_one_timing(data_root, imagenet_vgg):
    """Recipes that differ only in schedule, seed or start run the same step: one timing for all of them
    (runs of one recipe are not told apart by noise); a different batch, or a cut of the gradient where there
    was none, is timed on its own, and another threshold of the cut is not."""
    from fastst.step_timing import STEP_COST_FREE
    from fastst.train import TrainConfig

    assert STEP_COST_FREE <= {f.name for f in dataclasses.fields(TrainConfig)}
    style = str(data_root / "styles" / "starry_night.jpg")
    smoke = TrainConfig.from_preset("smoke", style=style, data="d", batch_size=1)
    configs = {
        "a": smoke,
        "b": dataclasses.replace(smoke, lr=3e-3, seed=5, iterations=7, out="elsewhere"),
        "c": dataclasses.replace(smoke, batch_size=2),
        "d": dataclasses.replace(smoke, clip=1.0),
        "e": dataclasses.replace(smoke, clip=100.0),
    }
    rows = {r["recipe"]: r for r in bench_recipes(configs, rounds=3)}
    assert rows["a"]["seconds"] == rows["b"]["seconds"]
    assert rows["a"]["gflop"] == rows["b"]["gflop"]
    assert rows["c"]["gflop"] == pytest.approx(2 * rows["a"]["gflop"], rel=0.02)
    assert len({rows[k]["seconds"] for k in "acd"}) == 3
    assert rows["d"]["seconds"] == rows["e"]["seconds"]


def test_the_benchmarks_training_step_is_trainings_own(data_root, monkeypatch):
    """bench_recipes times the step train runs (fastst.step.TrainingStep and its train_step): one function,
    not a copy that could drift."""
    from fastst import step, train
    from fastst.train import TrainConfig

    assert train.TrainingStep is step.TrainingStep
    real, calls = step.train_step, []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(step, "train_step", counted)
    config = TrainConfig.from_preset("smoke", style=str(data_root / "styles" / "starry_night.jpg"), data="d")
    bench_recipes({"smoke": config}, rounds=1)
    assert calls


def test_the_training_step_minimises_the_same_objective_in_either_memory_layout(data_root):
    """Training runs in channels-last memory (fastst.step.TRAINING_LAYOUT), the benchmark's step too; the
    same weights and batch give the same objective in contiguous memory (fp32)."""
    from fastst.step import TRAINING_LAYOUT
    from fastst.step_timing import recipe_steps
    from fastst.train import TrainConfig

    config = TrainConfig.from_preset("smoke", style=str(data_root / "styles" / "starry_night.jpg"), data="d")
    cpu = torch.device("cpu")
    first = {
        layout: recipe_steps(config, cpu, "fp32", layout)[config.image_size]()
        for layout in (torch.contiguous_format, torch.channels_last)
    }
    assert first[torch.channels_last] == pytest.approx(first[torch.contiguous_format], rel=1e-4)
    assert inspect.signature(recipe_steps).parameters["layout"].default == TRAINING_LAYOUT
