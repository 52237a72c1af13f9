"""What precision costs a training step, on a CPU with native bf16 (where "auto" trains in bf16).

The ``cpu_batch4`` preset's training step (128 px, batch 4) timed in interleaved rounds in one process in
three forms: as fastst trains here (bf16 autocast, the Gram matrices and style loss in fp32, because a Gram
is a sum over every pixel of a feature map), with the Gram matrices left to autocast (bf16 products),
and all in fp32 (what a CPU without native bf16 runs); and the objectives of the first two on the same
batch. Writes results/step_precision.json.

    python tools/step_precision.py [--rounds N]
"""

import argparse

import torch

from fastst import losses
from fastst.config import TrainConfig
from fastst.data import STYLES, data_dir
from fastst.io import load_image
from fastst.losses import PerceptualLoss
from fastst.measure import interleaved_medians
from fastst.results import write_result
from fastst.runtime import autocast, resolve_precision
from fastst.train import TRAINING_LAYOUT, build_model, train_step
from fastst.vgg import loss_network

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=7)
args = parser.parse_args()

device = torch.device("cpu")
precision = resolve_precision("auto", device)
config = TrainConfig.from_preset("cpu_batch4", style=str(data_dir() / STYLES["starry_night"]))
fp32_gram = losses.gram_matrix


def autocast_gram(f: torch.Tensor) -> torch.Tensor:
    """The Gram matrix as autocast would compute it: the product in the autocast precision."""
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


vgg = loss_network(device=device, memory_format=TRAINING_LAYOUT)
style = load_image(config.style_paths()[0], config.style_size)
criterion = PerceptualLoss.for_config(vgg, style, config)
torch.manual_seed(0)
model = build_model(config).train().to(memory_format=TRAINING_LAYOUT)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
scaler = torch.amp.GradScaler("cpu", enabled=False)
batch = torch.rand(config.batch_size, 3, config.image_size, config.image_size).contiguous(
    memory_format=TRAINING_LAYOUT
)


def step_with(gram):
    def run():
        losses.gram_matrix = gram
        try:
            train_step(model, criterion, batch, optimizer, scaler, device, precision)
        finally:
            losses.gram_matrix = fp32_gram

    return run


def fp32_step():
    train_step(model, criterion, batch, optimizer, scaler, device, "fp32")


runners = {"fp32": step_with(fp32_gram), "autocast": step_with(autocast_gram), "all_fp32": fp32_step}
times = interleaved_medians(runners, args.rounds, device)
with torch.no_grad(), autocast(device, precision):
    out = model(batch)
    objectives = {}
    for label, gram in (("fp32", fp32_gram), ("autocast", autocast_gram)):
        losses.gram_matrix = gram
        objectives[label] = float(criterion(out, batch).total)
    losses.gram_matrix = fp32_gram
result = {
    "precision": precision,
    "preset": "cpu_batch4",
    "image_size": config.image_size,
    "batch_size": config.batch_size,
    "step_seconds_fp32_gram": times["fp32"],
    "step_seconds_autocast_gram": times["autocast"],
    "cost_of_fp32_gram": times["fp32"] / times["autocast"] - 1,
    "objective_fp32_gram": objectives["fp32"],
    "objective_autocast_gram": objectives["autocast"],
    "objective_relative_difference": abs(objectives["autocast"] / objectives["fp32"] - 1),
    "step_seconds_all_fp32": times["all_fp32"],
    "fp32_step_over_bf16_step": times["all_fp32"] / times["fp32"],
}
print(result)
write_result("step_precision", result)
