"""What computing the Gram matrices in fp32 costs a training step under bf16 autocast.

fastst computes Gram matrices and the style loss in fp32 even when the rest of the step runs in bf16
(fastst.losses.gram_matrix), because a Gram is a sum over every pixel of a feature map. This times the
``cpu`` preset's training step (128 px, batch 4) as it is, against the same step with the Gram matrices
left to autocast (bf16 matrix products), in interleaved rounds in one process, and compares the two
objectives on the same batch. Meaningful where bf16 is native (it is the default precision there).
Writes results/gram_precision.json.

    python tools/gram_precision.py [--rounds N]
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
from fastst.train import build_model, train_step
from fastst.vgg import loss_network

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=7)
args = parser.parse_args()

device = torch.device("cpu")
precision = resolve_precision("auto", device)
config = TrainConfig.from_preset("cpu", style=str(data_dir() / STYLES["starry_night"]))
fp32_gram = losses.gram_matrix


def autocast_gram(f: torch.Tensor) -> torch.Tensor:
    """The Gram matrix as autocast would compute it: the product in the autocast precision."""
    b, c, h, w = f.shape
    flat = f.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


vgg = loss_network(device=device)
style = load_image(config.style_paths()[0], config.style_size)
criterion = PerceptualLoss(
    vgg,
    style,
    config.content_weight,
    config.style_weight,
    config.tv_weight,
    config.content_layer,
    config.style_layers,
)
torch.manual_seed(0)
model = build_model(config).train()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
scaler = torch.amp.GradScaler("cpu", enabled=False)
batch = torch.rand(config.batch_size, 3, config.image_size, config.image_size)


def step_with(gram):
    def run():
        losses.gram_matrix = gram
        try:
            train_step(model, criterion, batch, optimizer, scaler, device, precision)
        finally:
            losses.gram_matrix = fp32_gram

    return run


times = interleaved_medians(
    {"fp32": step_with(fp32_gram), "autocast": step_with(autocast_gram)}, args.rounds, device
)
with torch.no_grad(), autocast(device, precision):
    out = model(batch)
    objectives = {}
    for label, gram in (("fp32", fp32_gram), ("autocast", autocast_gram)):
        losses.gram_matrix = gram
        objectives[label] = float(criterion(out, batch).total)
    losses.gram_matrix = fp32_gram
result = {
    "precision": precision,
    "preset": "cpu",
    "image_size": config.image_size,
    "batch_size": config.batch_size,
    "step_seconds_fp32_gram": times["fp32"],
    "step_seconds_autocast_gram": times["autocast"],
    "cost_of_fp32_gram": times["fp32"] / times["autocast"] - 1,
    "objective_fp32_gram": objectives["fp32"],
    "objective_autocast_gram": objectives["autocast"],
    "objective_relative_difference": abs(objectives["autocast"] / objectives["fp32"] - 1),
}
print(result)
write_result("gram_precision", result)
