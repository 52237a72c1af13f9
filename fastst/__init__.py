"""fastst: real-time neural style transfer with perceptual losses (Johnson, Alahi & Fei-Fei, 2016)."""

from fastst.errors import FaststError

__version__ = "0.1.0"
__all__ = ["FaststError", "TransformerNet", "__version__"]


def __getattr__(name: str):
    # the network is imported on first use: the quick path of ``fastst stylize`` runs without PyTorch
    if name == "TransformerNet":
        from fastst.transformer import TransformerNet

        return TransformerNet
    raise AttributeError(f"module 'fastst' has no attribute {name!r}")
