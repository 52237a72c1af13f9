"""The notebooks run top to bottom on fresh kernels (smoke preset) and write their figures."""

import json
import os
import subprocess
import sys

import pytest

from fastst.notebooks import notebook_paths

EXPECTED = {
    "01_data.ipynb": ["01_styles", "01_training_sample", "01_test_photos"],
    "02_vgg_features.ipynb": ["02_features_photo", "02_gram_painting", "02_reconstructions"],
    "03_training.ipynb": ["fig2_losses", "fig3_starry_night", "fig3_woman_with_a_parasol"],
    "04_evaluation.ipynb": [
        "04_results_starry_night",
        "04_test_set_woman_with_a_parasol",
        "04_inference_time",
    ],
    "05_time_to_quality.ipynb": ["quality_vs_time_starry_night"],
    "06_many_styles.ipynb": ["06_base_styles", "06_style_mixing"],
    "07_any_painting.ipynb": ["07_any_painting", "07_one_pass_vs_lbfgs", "07_style_scale"],
}


@pytest.mark.slow
def test_notebooks_execute_and_write_their_figures(tmp_path, data_root):
    # the main job as a user runs it, in its own process (a notebook client inside the test process, after
    # the browser tests, was seen to wait forever for a cell its idle kernel had finished)
    env = {
        **os.environ,
        "FASTST_FIGURES": str(tmp_path / "figures"),
        "FASTST_RUNS": str(tmp_path / "runs"),
        "FASTST_DATA": str(data_root),
    }
    code = (
        "import json, sys; from fastst.notebooks import run; "
        "print(json.dumps(run(preset='smoke', out=sys.argv[1], timeout=600)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "executed")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(seconds) == [p.name for p in notebook_paths()] == list(EXPECTED)
    import nbformat

    for name, figures in EXPECTED.items():
        nb = nbformat.read(tmp_path / "executed" / name, as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{name}: {errors[0]['ename']}"
        assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), (
            f"{name}: a cell did not run"
        )
        for figure in figures:
            for suffix in (".png", ".pdf", ".json"):
                assert (tmp_path / "figures" / "smoke" / f"{figure}{suffix}").stat().st_size > 0, figure
            meta = json.loads((tmp_path / "figures" / "smoke" / f"{figure}.json").read_text())
            assert meta["preset"] == "smoke"


def test_a_cell_past_the_limit_is_a_one_line_error_and_there_is_no_limit_by_default(tmp_path, monkeypatch):
    """The main job's training cell takes as long as the preset asks, so `notebooks run` sets no limit; a
    limit, where one is asked for, ends in a one-line error naming the notebook."""
    import inspect

    import nbformat

    from fastst.errors import FaststError
    from fastst.notebooks import run

    assert inspect.signature(run).parameters["timeout"].default is None
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(30)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "01_slow.ipynb")
    monkeypatch.setenv("FASTST_NOTEBOOKS", str(folder))
    with pytest.raises(FaststError, match=r"^01_slow\.ipynb: a cell ran past the limit of 2 s$"):
        run(timeout=2, out=tmp_path / "executed")


def test_a_message_a_poll_missed_is_read_within_a_slice_not_at_the_cells_limit():
    import asyncio
    import time
    from queue import Empty

    from fastst.notebooks import poll_in_slices

    class Channel:  # its first poll misses the message and waits out its timeout, as jupyter/nbclient#312
        def __init__(self):
            self.polls = []

        async def get_msg(self, timeout=None):
            self.polls.append(timeout)
            if len(self.polls) == 1:
                await asyncio.sleep(timeout)
                raise Empty
            return {"msg": "reply"}

    channel = Channel()
    poll_in_slices(channel, slice_s=0.2)
    start = time.monotonic()
    assert asyncio.run(channel.get_msg(timeout=30)) == {"msg": "reply"}
    assert time.monotonic() - start < 5 and channel.polls[0] == 0.2

    async def silent(timeout=None):  # nothing ever arrives
        await asyncio.sleep(timeout)
        raise Empty

    never = Channel()
    never.get_msg = silent
    poll_in_slices(never, slice_s=0.05)

    async def nothing():
        with pytest.raises(Empty):  # the caller's own timeout still ends the wait
            await never.get_msg(timeout=0.3)

    start = time.monotonic()
    asyncio.run(nothing())
    assert 0.25 < time.monotonic() - start < 5
