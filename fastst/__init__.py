"""fastst: real-time neural style transfer with perceptual losses (Johnson, Alahi & Fei-Fei, 2016)."""

from fastst.errors import FaststError
from fastst.transformer import TransformerNet

__version__ = "0.1.0"
__all__ = ["FaststError", "TransformerNet", "__version__"]
