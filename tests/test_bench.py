"""The measuring instruments themselves (no timing is asserted here)."""
import math

import pytest
import torch

from fastst import TransformerNet
from fastst.bench import inference_flops, psnr, time_inference
from fastst.train import cpu_has_bf16


def test_flop_count_matches_the_networks_arithmetic():
    # 20.2 GFLOP at 256 px and four times that at 512 px (published for this network's layout)
    net = TransformerNet()
    assert inference_flops(net, 256) / 1e9 == pytest.approx(20.16, abs=0.05)
    assert inference_flops(net, 512) / inference_flops(net, 256) == pytest.approx(4.0, rel=1e-3)


def test_psnr_by_hand():
    a = torch.zeros(3, 4, 4)
    assert psnr(a, a) == math.inf
    assert psnr(a, torch.full((3, 4, 4), 0.1)) == pytest.approx(20.0, abs=1e-4)  # mse 0.01 -> 20 dB


def test_timing_rows_have_the_stated_fields():
    rows = time_inference(TransformerNet(width=0.25), sizes=(32,), repeats=2, warmup=1, progress=False)
    assert rows[0]["size"] == 32 and rows[0]["repeats"] == 2
    assert 0 < rows[0]["min_s"] <= rows[0]["median_s"] <= rows[0]["max_s"]


def test_fast_timing_takes_the_stylize_path():
    rows = time_inference(TransformerNet(width=0.25), sizes=(32,), repeats=1, warmup=0, precision="auto",
                          fast=True, progress=False)
    assert rows[0]["path"] == "fast"
    assert rows[0]["precision"] == ("bf16" if cpu_has_bf16() else "fp32")


def test_training_bench_steps_minimise_the_same_objective(data_root):
    from fastst.bench import bench_training
    row = bench_training("smoke", data_root / "styles" / "starry_night.jpg", data_root / "train", iterations=2,
                         loss_iterations=1)
    # the first iteration: the fast step's objective (precomputed Gram targets, a content pass that
    # stops at the content layer, reduced precision) against the plain one, same weights and batch
    assert row["loss_rel_diff"] < 0.01, row
    assert row["plain_s"] > 0 and row["fast_s"] > 0 and row["fast_iterations_per_s"] == 1 / row["fast_s"]


def test_inference_bench_times_plain_fast_and_the_matmul_limit_in_the_same_rounds():
    from fastst.bench import bench_inference
    torch.manual_seed(0)
    (row,) = bench_inference(TransformerNet(width=0.25), sizes=(32,), repeats=1, matmul_n=64)
    assert row["size"] == 32 and row["psnr_photos"] == 0  # no photos: PSNR on noise
    assert math.isfinite(row["psnr_db"]) and row["psnr_db"] > 20
    assert row["fast_speedup"] == pytest.approx(row["plain_s"] / row["fast_s"])
    assert row["matmul_interleaved_gflops"] > 0
