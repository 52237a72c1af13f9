"""The notebooks run top to bottom on fresh kernels (smoke preset) and write their figures."""

import json

import pytest

from fastst.notebooks import notebook_paths, run

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
}


@pytest.mark.slow
def test_notebooks_execute_and_write_their_figures(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("FASTST_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("FASTST_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("FASTST_DATA", str(data_root))
    seconds = run(preset="smoke", out=tmp_path / "executed", timeout=600)  # a hung cell fails, not blocks
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
