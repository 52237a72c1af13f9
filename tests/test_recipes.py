import json

import pytest

from fastst import quality
from fastst.recipes import at_time, crossing, step_clock, time_to_quality
from fastst.train import TrainConfig


def test_the_clock_sums_each_phase_at_its_own_step_time():
    config = TrainConfig.from_preset(
        "smoke", style="s", data="d", iterations=100, crop_schedule=((0.0, 16), (0.6, 32))
    )
    clock = step_clock(config, {16: 1.0, 32: 3.0})
    assert clock(0) == 0
    assert clock(50) == 50
    assert clock(60) == 60
    assert clock(100) == 60 + 40 * 3
    plain = TrainConfig.from_preset("smoke", style="s", data="d", iterations=10)
    assert step_clock(plain, {plain.image_size: 0.5})(10) == 5


def test_crossing_interpolates_between_kept_weights():
    rows = [
        {"seconds": 0, "optimality_ratio": 5.0},
        {"seconds": 10, "optimality_ratio": 3.0},
        {"seconds": 20, "optimality_ratio": 1.0},
    ]
    assert crossing(rows, 2.0) == pytest.approx(15.0)
    assert crossing(rows, 3.0) == 10
    assert crossing(rows, 0.5) is None
    assert at_time(rows, 12) == 3.0 and at_time(rows, 20) == 1.0


def test_time_to_quality_end_to_end_on_the_smoke_preset(data_root, imagenet_vgg, tmp_path, monkeypatch):
    for env, sub in (
        ("FASTST_RESULTS", "results"),
        ("FASTST_LBFGS_CACHE", "cache"),
        ("FASTST_FIGURES", "figures"),
    ):
        monkeypatch.setenv(env, str(tmp_path / sub))
    monkeypatch.setenv("FASTST_DATA", str(data_root))
    style = data_root / "styles" / "the_scream.jpg"
    recipes = {
        "slow": {"preset": "smoke", "lr": 1e-4, "iterations": 4},
        "fast": {"preset": "smoke", "lr": 3e-3, "iterations": 4},
    }
    result = time_to_quality(
        style,
        recipes,
        tmp_path / "runs",
        "slow",
        photos_count=1,
        protocol_overrides={"photo_size": 48, "style_size": 64, "iterations": 5, "noise_iterations": 5},
        progress=False,
    )
    saved = json.loads((tmp_path / "results" / "time_to_quality_the_scream.json").read_text())
    assert saved["summary"].keys() == {"slow", "fast"} and saved["machine"]["threads"] >= 1
    for label, rows in result["curves"].items():
        assert [r["iteration"] for r in rows][0] == 0
        assert rows[-1]["iteration"] == 4
        assert all(a["seconds"] < b["seconds"] for a, b in zip(rows, rows[1:]))
    # the same protocol scores the final network as fastst.quality does on its own
    ref = quality.reference(
        quality.evaluation_protocol(style, photo_size=48, style_size=64, iterations=5, noise_iterations=5),
        count=1,
        progress=False,
    )
    direct = quality.score_file(tmp_path / "runs" / "the_scream-fast" / "model.pth", ref)
    assert direct["optimality_ratio"] == pytest.approx(
        result["curves"]["fast"][-1]["optimality_ratio"], rel=1e-6
    )
    assert (tmp_path / "runs" / "quality_vs_time_the_scream.png").exists()


def test_every_recipe_named_in_the_curves_figure_is_drawn_apart_from_the_others():
    from fastst.plotting import plot_quality_curves

    rows = [
        {"iteration": i, "elapsed_s": 60.0 * i, "optimality_ratio": 3.0 / i, "lbfgs_equivalent": i}
        for i in (1, 2)
    ]
    curves = {f"recipe{k}": rows for k in range(14)}
    highlight = tuple(curves)[:13]  # more than the colour cycle holds; the last one grey
    fig = plot_quality_curves(curves, highlight=highlight)
    left = fig.axes[0]
    looks = {line.get_label(): (line.get_color(), line.get_linestyle()) for line in left.get_lines()}
    assert len({looks[label] for label in highlight}) == len(highlight)
    grey = [line for line in left.get_lines() if line.get_label() not in highlight]
    assert len(grey) == 1 and grey[0].get_color() == "0.75"
