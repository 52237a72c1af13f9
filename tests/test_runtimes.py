"""Which runtime runs a network: the choice, its cache, the errors, and every runtime's picture against the
network's own eager fp32 pass."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fastst import TransformerNet, quick, runtimes
from fastst.anystyle import AnyStyleNet, painting_network, set_palette
from fastst.errors import FaststError
from fastst.files import StylizeOptions, stylize_video_paths
from fastst.io import load_image, save_image
from fastst.measure import psnr
from fastst.stylize import Stylizer, load_model

ROOT = Path(__file__).resolve().parent.parent
# The bench's bound on a runtime's PSNR against eager fp32 (tests/test_bench.py): in fp32, and in bf16.
PSNR_FP32_DB, PSNR_BF16_DB = 40, 25
ODD_SIZES = [(5, 7), (37, 53), (61, 34)]


def _network(seed: int = 0, **options) -> TransformerNet:
    torch.manual_seed(seed)
    net = TransformerNet(**{"width": 0.25, **options}).eval()
    for p in net.parameters():  # a network that changes images, unlike the identity it starts as
        p.data.add_(0.05 * torch.randn_like(p))
    return net


def _reference(net: TransformerNet, batch: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(batch).clamp(0, 1)


def _without(monkeypatch, module: str) -> None:
    """As if ``module`` were not installed: its import spec is not found."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else find_spec(name, *a)
    )


def _no_timing(*args):
    raise AssertionError("timed again")


def test_sizes_fall_in_power_of_two_buckets():
    assert quick.size_bucket((37, 53)) == 64  # the smallest bucket
    assert quick.size_bucket(180) == 128 and quick.size_bucket(200) == 256
    assert quick.size_bucket((300, 700)) == 512
    assert quick.size_bucket(5000) == quick.LARGEST_BUCKET


def test_sizes_whose_quarter_resolution_pixels_are_not_in_fours_are_timed_apart():
    """The network pads each side to a multiple of 4 and works at a quarter of it: 684 x 1020 gives a 171 x
    255 map (odd x odd), 680 x 1020 170 x 255 (one factor of 2), 688 x 1020 172 x 255 (a multiple of 4)."""
    net = _network()
    kinds = [((688, 1020), True), ((1020, 688), True), ((680, 1020), False), ((684, 1020), False)]
    for size, in_fours in kinds:
        assert quick.in_fours(size) is in_fours, size
        assert quick.timed_shape(size) == ((1024, 1024) if in_fours else (1028, 1028))
        # the map of the shape timed is of the same kind as the image's
        assert quick.in_fours(quick.timed_shape(size)) is in_fours
        assert net(torch.rand(1, 3, *size)).shape[-2:] == size
    assert quick.in_fours((5, 7)) and quick.timed_shape((5, 7)) == (64, 64)  # padded to 16 x 16: 4 x 4
    # 76 x 175, 75 x 175
    assert quick.size_key((304, 700)) == "512" and quick.size_key((300, 700)) == "516x516"


def test_each_kind_of_size_is_timed_at_its_own_shape_and_remembered_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path))
    timed = []

    def timing(candidates, size):
        timed.append(size)  # as if torch ran the maps in fours fastest, and another runtime the others
        others = size != (512, 512)
        return {name: 1.0 if (name == "torch") != others else 2.0 for name in candidates}

    monkeypatch.setattr(runtimes, "time_runtimes", timing)
    monkeypatch.setattr(runtimes, "installed", lambda: ["torch", "onnxruntime"])
    stylizer = Stylizer(_network(), runtime="auto")
    assert stylizer.runtime_for(384, 512) == "torch"  # 96 x 128
    assert stylizer.runtime_for(380, 508) == "onnxruntime"  # 95 x 127
    assert stylizer.runtime_for(372, 508) == "onnxruntime" and stylizer.runtime_for(512, 300) == "torch"
    assert timed == [(512, 512), (516, 516)]  # one timing each, of its own shape
    assert set(stylizer.chosen()) == {"512", "516x516"}
    assert stylizer.chosen()["516x516"]["seconds"] == {"torch": 2.0, "onnxruntime": 1.0}
    monkeypatch.setattr(runtimes, "time_runtimes", _no_timing)  # a new process reads both back
    again = Stylizer(_network(), runtime="auto")
    assert again.runtime_for(340, 500) == "onnxruntime" and again.runtime_for(344, 504) == "torch"


def test_the_runtime_chosen_is_installed_and_is_remembered_not_timed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path))
    net = _network()
    name = runtimes.choose(net, "cpu", (37, 53))
    assert name in runtimes.installed()
    cache = tmp_path / "runtimes.json"
    (entry,) = runtimes._read(cache).values()
    assert entry["runtime"] == name and set(entry["seconds"]) == set(runtimes.installed())
    assert entry["opening"]["torch"] == 0 and all(s > 0 for n, s in entry["opening"].items() if n != "torch")
    written = cache.stat().st_mtime_ns
    monkeypatch.setattr(runtimes, "time_runtimes", _no_timing)
    assert runtimes.choose(_network(), "cpu", (40, 56)) == name  # same network, same bucket: read back
    # other weights in the same layout (another style of a multi-style model) run as fast: read back too
    assert runtimes.layout_digest(_network(seed=1)) == entry["layout"] != runtimes.network_digest(net)
    assert runtimes.choose(_network(seed=1), "cpu", (37, 53)) == name
    assert cache.stat().st_mtime_ns == written
    with pytest.raises(AssertionError, match="timed again"):  # another layout is timed
        runtimes.choose(TransformerNet(width=0.25, residual_blocks=3).eval(), "cpu", (37, 53))
    # the same network once PyTorch's own path has changed (fastst/inference.py): its seconds are stale
    monkeypatch.setattr(runtimes, "torch_path_version", lambda: "another inference form")
    with pytest.raises(AssertionError, match="timed again"):
        runtimes.choose(_network(), "cpu", (37, 53))


def test_for_a_few_images_a_runtime_must_repay_its_opening(tmp_path, monkeypatch):
    """With the number of images known, the choice counts each runtime's opening against their passes."""
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path))
    exported = next((n for n in runtimes.installed() if n != "torch"), None)
    if exported is None:
        pytest.skip("no runtime besides torch is installed")
    net = _network()
    where, key = runtimes._choice(net, torch.device("cpu"), 512, "auto")
    seconds = {"torch": 0.05, exported: 0.03}  # a faster pass, after 0.2 s to open
    entry = {**where, "runtime": exported, "seconds": seconds, "opening": {"torch": 0.0, exported: 0.2}}
    runtimes._remember(runtimes.cache_file(), key, entry)
    monkeypatch.setattr(runtimes, "time_runtimes", _no_timing)
    assert runtimes.choose(net, "cpu", 512) == exported  # many images: the fastest pass
    assert runtimes.choose(net, "cpu", 512, images=1) == "torch"  # 0.05 s against 0.23 s
    assert runtimes.choose(net, "cpu", (512, 512), images=20) == exported  # 1.0 s against 0.8 s
    assert runtimes.choose(net, "cpu", (384, 300), images=20) == "torch"  # smaller: 0.44 s against 0.46 s
    stylizer = Stylizer(net, runtime="auto")
    stylizer.images = 1
    assert stylizer.runtime_for(512, 512) == "torch"


def test_on_a_gpu_or_without_the_extras_the_choice_is_torch_untimed(monkeypatch):
    monkeypatch.setattr(runtimes, "time_runtimes", _no_timing)
    assert runtimes.choose(_network(), torch.device("cuda"), 512) == "torch"
    _without(monkeypatch, "onnx")
    assert runtimes.installed() == ["torch"]
    assert runtimes.choose(_network(), "cpu", 512) == "torch"


@pytest.mark.parametrize(
    "name, module, extra", [("onnxruntime", "onnxruntime", "export"), ("openvino", "openvino", "openvino")]
)
def test_forcing_a_runtime_not_installed_names_its_extra_in_one_line(monkeypatch, name, module, extra):
    _without(monkeypatch, module)
    with pytest.raises(FaststError) as e:
        Stylizer(_network(), runtime=name)
    assert f'pip install "fastst[{extra}]"' in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(FaststError, match="unknown runtime 'tensorrt'"):
        Stylizer(_network(), runtime="tensorrt")


@pytest.mark.parametrize("name", runtimes.RUNTIMES)
@pytest.mark.parametrize("precision", ["auto", "fp32"])
@pytest.mark.parametrize(
    "options",
    [{}, {"fold": True, "pad": "zero", "ranks": {"residual": [8, 8], "down2": [8, 8]}}],
    ids=["plain", "zero padding"],
)
def test_each_runtime_matches_eager_fp32_within_the_benchs_bound(name, precision, options):
    if name not in runtimes.installed():
        pytest.skip(f"{name} is not installed")
    net = _network(**options)
    run = runtimes.start_runtime(name, net, precision)
    bound = PSNR_FP32_DB if run.precision == "fp32" else PSNR_BF16_DB
    assert precision == "auto" or run.precision == "fp32"
    torch.manual_seed(1)
    for size in ODD_SIZES:
        batch = torch.rand(2, 3, *size)
        out = run(batch)
        assert out.shape == batch.shape and out.device.type == "cpu"
        assert 0 <= out.min() and out.max() <= 1
        assert psnr(out, _reference(net, batch)) > bound, (name, size)


@pytest.mark.parametrize("name", runtimes.RUNTIMES[1:])
def test_a_stylizer_forced_to_a_runtime_keeps_its_options(name):
    """Strength, a style scale and the batch path run through the forced runtime as through torch."""
    if name not in runtimes.installed():
        pytest.skip(f"{name} is not installed")
    net = _network()
    torch.manual_seed(2)
    image = torch.rand(3, 45, 71)
    for scale in (1.0, 2.0):
        forced = Stylizer(net, "fp32", style_scale=scale, runtime=name)
        torch_path = Stylizer(net, "fp32", style_scale=scale, runtime="torch")
        assert forced.runtime_for(45, 71) == name and torch_path.runtime_for(45, 71) == "torch"
        assert psnr(forced(image, strength=0.5), torch_path(image, strength=0.5)) > PSNR_FP32_DB
        assert psnr(forced.batch(image[None]), torch_path.batch(image[None])) > PSNR_FP32_DB


@pytest.mark.parametrize(
    "options, palette",
    [
        ({"input_skip": True}, 0.0),
        ({"input_skip": False}, 0.5),
        ({"input_skip": False, "fold": True, "ranks": {"residual": [8, 8], "out": [8, None]}}, 0.5),
    ],
    ids=["input skip", "palette", "folded and factored"],
)
def test_a_paintings_network_runs_its_one_pass_models_one_export(tmp_path, monkeypatch, options, palette):
    """Every painting of a one-pass model runs one exported graph, its norms and colour map as inputs: each
    painting's picture is its own network's, and no painting exports or times anew."""
    exported = [n for n in runtimes.installed() if n != "torch"]
    if not exported:
        pytest.skip("no runtime besides torch is installed")
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path))
    torch.manual_seed(4)
    model = AnyStyleNet(width=0.25, residual_blocks=1, **options)
    for p in model.parameters():  # norms that differ from painting to painting
        p.data.add_(0.05 * torch.randn_like(p))
    set_palette(model.eval(), palette)
    paintings = [
        torch.rand(3, 40, 48),
        0.5 * torch.rand(3, 36, 30) + torch.tensor([0.5, 0.2, 0.0])[:, None, None],
    ]
    nets = [painting_network(p, model) for p in paintings]
    batch = torch.rand(2, 3, 37, 53)
    references = [_reference(net, batch) for net in nets]
    assert psnr(references[0], references[1]) < PSNR_FP32_DB  # two pictures a shared constant could not give
    for name in exported:
        for net, reference in zip(nets, references):
            out = runtimes.start_runtime(name, net, "fp32")(batch)
            assert psnr(out, reference) > PSNR_FP32_DB, name
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    # what a choice of runtime is remembered by: one timing serves every painting
    assert runtimes.network_digest(nets[0]) == runtimes.network_digest(nets[1])


def test_the_video_mode_that_changes_the_norms_every_frame_refuses_another_runtime():
    name = next((n for n in runtimes.installed() if n != "torch"), None)
    if name is None:
        pytest.skip("no runtime besides torch is installed")
    with pytest.raises(FaststError, match="frame by frame or with the clip's statistics only"):
        stylize_video_paths(
            None, "no-such-clip.mp4", "out.mp4", StylizeOptions(device="cpu", runtime=name), temporal="ema"
        )


@pytest.mark.parametrize("painting", [False, True], ids=["a style", "a painting"])
def test_a_clip_s_fixed_statistics_run_on_every_runtime_as_the_stream_network_computes(
    tmp_path, monkeypatch, painting
):
    """With the clip's statistics recorded, video runs a plain copy of the network with them fixed, on any
    runtime: each gives the stream network's picture, a painting's network included (whose one-pass graph
    would normalise each frame by its own statistics instead)."""
    from fastst import temporal

    monkeypatch.setenv("FASTST_CACHE", str(tmp_path))
    if painting:
        torch.manual_seed(5)
        model = AnyStyleNet(width=0.25, residual_blocks=1, input_skip=False)
        for p in model.parameters():
            p.data.add_(0.05 * torch.randn_like(p))
        net = painting_network(torch.rand(3, 40, 48), model.eval())
    else:
        net = _network(2)
    stream = temporal.stream_network(net, "clip")
    norms = temporal._norms(stream)
    for m in norms:
        m.recording = True
    with torch.no_grad():  # statistics of other pictures than the one stylized below
        stream(0.6 * torch.rand(3, 3, 40, 44) + 0.4)
    for m in norms:
        m.recording = False
    fixed = temporal.fixed_network(net, stream)
    photo = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(1))
    reference = _reference(stream, photo)
    assert psnr(_reference(net, photo), reference) < 35  # the frame's own statistics differ from the clip's
    for name in runtimes.installed():
        out = runtimes.start_runtime(name, fixed, "fp32")(photo)
        assert psnr(out, reference) > PSNR_FP32_DB, name


def _clip_network(net, frames):
    """``net`` with the statistics of ``frames`` fixed, and the stream network that recorded them."""
    from fastst import temporal

    stream = temporal.stream_network(net, "clip")
    norms = temporal._norms(stream)
    for m in norms:
        m.recording = True
    with torch.no_grad():
        stream(frames)
    for m in norms:
        m.recording = False
    return temporal.fixed_network(net, stream), stream


def test_clips_of_one_network_share_one_export_with_their_statistics_as_its_input(tmp_path, monkeypatch):
    """A second clip of the same network is run by the first clip's export and sessions, with its own
    statistics as the graph's input: its picture is its own stream network's, not the first clip's."""
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path))
    names = [n for n in runtimes.installed() if n != "torch"]
    if not names:
        pytest.skip("no runtime besides torch is installed")
    net = _network(3)
    generator = torch.Generator().manual_seed(4)
    dark, bright = (torch.rand(2, 3, 40, 44, generator=generator) * 0.5 + base for base in (0.0, 0.5))
    (first, first_stream), (second, second_stream) = _clip_network(net, dark), _clip_network(net, bright)
    photo = torch.rand(1, 3, 37, 53, generator=generator)
    assert psnr(_reference(first_stream, photo), _reference(second_stream, photo)) < 30
    for name in names:
        for fixed, stream in ((first, first_stream), (second, second_stream)):
            out = runtimes.start_runtime(name, fixed, "fp32")(photo)
            assert psnr(out, _reference(stream, photo)) > PSNR_FP32_DB, name
    assert runtimes.onnx_file(first) == runtimes.onnx_file(second)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1


@pytest.mark.parametrize(
    "options", [{}, {"fold": True, "pad": "zero", "ranks": {"residual": [8, 8]}}], ids=["plain", "folded"]
)
def test_a_clip_s_statistics_graph_gives_the_norms_the_stream_network_records(tmp_path, options):
    """The quick path's pass over a clip's sample (``ClipStatistics``, exported) gives the clip graph the
    same norms as recording the sample through a stream network and fixing them."""
    from fastst import temporal
    from fastst.export import export_network
    from fastst.quick import open_session

    net = _network(6, **options)
    frames = 0.6 * torch.rand(3, 3, 40, 44, generator=torch.Generator().manual_seed(2)) + 0.2
    fixed, _ = _clip_network(net, frames)
    expected = fixed.clip_inputs.norms
    with torch.no_grad():
        assert torch.allclose(temporal.ClipStatistics(net)(frames), expected, rtol=1e-4, atol=1e-5)
    if "onnxruntime" not in runtimes.installed():
        return
    export_network(temporal.ClipStatistics(net), tmp_path / "stats.onnx")
    run, _ = open_session("onnxruntime", tmp_path / "stats.onnx", "fp32", 1)
    assert np.allclose(run(frames.numpy()), expected.numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO is not installed")
def test_openvino_with_a_clip_s_norms_folded_in_gives_the_clip_s_picture_in_a_process_without_torch(tmp_path):
    """The quick path's OpenVINO session of a clip graph with the clip's norms made constants (a process
    without PyTorch) gives the stream network's picture; with PyTorch loaded the norms stay an input."""
    from fastst.export import export_network

    net = _network(3)
    frames = 0.6 * torch.rand(2, 3, 40, 44, generator=torch.Generator().manual_seed(5)) + 0.2
    fixed, stream = _clip_network(net, frames)
    export_network(runtimes._graph(fixed), tmp_path / "clip.onnx")
    photo = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(6))
    np.save(tmp_path / "norms.npy", fixed.clip_inputs.norms.numpy())
    np.save(tmp_path / "photo.npy", photo.numpy())
    script = (
        "import sys, numpy as np\n"
        "from fastst.quick import open_session\n"
        "d = sys.argv[1]\n"
        "fixed = {'norms': np.load(d + '/norms.npy')}\n"
        "run, _ = open_session('openvino', d + '/clip.onnx', 'fp32', 1, fixed=fixed)\n"
        "np.save(d + '/out.npy', run(np.load(d + '/photo.npy')))\n"
        "print('torch' in sys.modules)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, cwd=ROOT
    )
    assert r.returncode == 0 and r.stdout.split() == ["False"], r.stderr
    reference = _reference(stream, photo)
    assert psnr(torch.from_numpy(np.load(tmp_path / "out.npy")), reference) > PSNR_FP32_DB
    run, _ = quick.open_session(
        "openvino", tmp_path / "clip.onnx", "fp32", 1, fixed={"norms": np.load(tmp_path / "norms.npy")}
    )
    assert psnr(torch.from_numpy(run(photo.numpy())), reference) > PSNR_FP32_DB


def test_the_command_line_with_runtime_torch_writes_the_network_s_picture(tmp_path):
    net = _network()
    torch.save({"model": net.state_dict(), "net": net.config}, tmp_path / "model.pth")
    torch.manual_seed(3)
    save_image(torch.rand(3, 29, 41), tmp_path / "in.png")
    photo = load_image(tmp_path / "in.png")
    reference = _reference(load_model(tmp_path / "model.pth"), photo[None])[0]
    for runtime in ("torch", "auto"):
        out = tmp_path / f"{runtime}.png"
        r = subprocess.run(
            [sys.executable, "-m", "fastst", "stylize", "--model", tmp_path / "model.pth", "--input"]
            + [tmp_path / "in.png", "--output", out, "--precision", "fp32", "--runtime", runtime],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        written = load_image(out)
        if runtime == "torch":  # the eager pass, rounded to 8 bits
            assert (written - reference).abs().max() <= 1 / 255 + 1e-6
        else:
            assert psnr(written, reference) > PSNR_FP32_DB


def test_openvino_keeps_its_compiled_graph_in_the_cache_folder(tmp_path, monkeypatch):
    if "openvino" not in runtimes.installed():
        pytest.skip("openvino is not installed")
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path))
    run = runtimes.start_runtime("openvino", _network(seed=2), "fp32")
    batch = torch.rand(1, 3, 37, 53)
    assert psnr(run(batch), _reference(_network(seed=2), batch)) > PSNR_FP32_DB
    assert any((tmp_path / "openvino").iterdir())  # what the next process opens instead of compiling
