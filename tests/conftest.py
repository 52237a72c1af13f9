import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
# the image mirror, only through the variable that `make` and CI set (never a path guessed here)
SHARED_DATA = Path(os.environ["FASTST_DATA_MIRROR"]) if os.environ.get("FASTST_DATA_MIRROR") else None
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session", autouse=True)
def runtime_cache(tmp_path_factory) -> Path:
    """The runtimes chosen for the tests' networks, and their exports, are kept in a folder of the session
    (``$FASTST_CACHE``, which the command line's subprocesses inherit), never in the user's cache."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FASTST_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The project's fetched data (``python -m fastst data fetch``), else the mirror itself."""
    from fastst.data import data_dir

    for candidate in (data_dir(), SHARED_DATA):
        if candidate and (candidate / "styles" / "starry_night.jpg").exists():
            return candidate
    pytest.skip("no image data: run 'python -m fastst data fetch'")


@pytest.fixture(scope="session")
def imagenet_vgg():
    from fastst.vgg import loss_network

    return loss_network("imagenet")
