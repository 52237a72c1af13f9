"""The quick path of ``fastst stylize``: once ``--runtime auto`` has chosen an exported runtime for a
network, the same command runs without importing PyTorch and writes the same pictures; anything it does
not cover goes down the full path."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastst import TransformerNet, quick
from fastst.cli import main as cli_main
from fastst.files import PREPARED_SIZES, stylize_paths
from fastst.io import load_image, save_image
from fastst.measure import psnr
from fastst.runtimes import start_runtime
from fastst.stylize import load_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason='needs onnxruntime: pip install "fastst[export]"'
)
ROOT = Path(__file__).resolve().parent.parent
# Runs the command line's entry point, then says whether PyTorch was imported.
ENTRY = (
    "import sys; from fastst.quick import main; code = main(sys.argv[1:]); "
    "print('torch' in sys.modules); sys.exit(code)"
)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A model file, a folder of two photos of one size and one of another, and a cache of its own."""
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    net = TransformerNet(width=0.25).eval()
    for p in net.parameters():  # a network that changes images, unlike the identity it starts as
        p.data.add_(0.05 * torch.randn_like(p))
    torch.save({"model": net.state_dict(), "net": net.config}, tmp_path / "model.pth")
    (tmp_path / "in").mkdir()
    for name, size in (("a.png", (3, 40, 56)), ("b.png", (3, 40, 56)), ("c.png", (3, 31, 21))):
        save_image(torch.rand(*size), tmp_path / "in" / name)
    return tmp_path


def _chosen(monkeypatch, name: str, torch_s: float = 1.5) -> None:
    """As if timing had given ``name`` a second a pass at every size, PyTorch ``torch_s``, the other
    runtime two seconds."""
    seconds = {"torch": torch_s, "onnxruntime": 2.0, "openvino": 2.0, name: 1.0}
    monkeypatch.setattr("fastst.stylize.choose", lambda *args, **kwargs: min(seconds, key=seconds.get))
    monkeypatch.setattr("fastst.stylize.timings", lambda *args, **kwargs: seconds)


def _command(tmp_path, *options, output="quick"):
    command = [sys.executable, "-c", ENTRY, "stylize", "--model", str(tmp_path / "model.pth")]
    command += ["--input", str(tmp_path / "in"), "--output", str(tmp_path / output), *options]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_after_an_exported_runtime_is_chosen_the_command_runs_without_torch_and_writes_the_same_pictures(
    folder, monkeypatch
):
    _chosen(monkeypatch, "onnxruntime")
    written, failures, _ = stylize_paths(str(folder / "model.pth"), str(folder / "in"), str(folder / "full"))
    assert (written, failures) == (3, [])
    r = _command(folder)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-2:] == [f"stylized 3 images into {folder / 'quick'}", "False"]
    model = load_model(folder / "model.pth")
    for name in ("a.png", "b.png", "c.png"):
        quick_out, full_out = load_image(folder / "quick" / name), load_image(folder / "full" / name)
        assert (quick_out - full_out).abs().max() <= 1 / 255 + 1e-6  # at most one level of rounding
        with torch.no_grad():  # and both are the network's picture
            reference = model(load_image(folder / "in" / name)[None])[0].clamp(0, 1)
        assert (quick_out - reference).abs().mean() < 2 / 255


def test_without_a_choice_or_with_options_it_does_not_cover_the_full_path_runs(folder, monkeypatch):
    r = _command(folder, "--runtime", "onnxruntime")  # nothing chosen yet: the full path exports and runs
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "True"
    _chosen(monkeypatch, "onnxruntime")
    stylize_paths(str(folder / "model.pth"), str(folder / "in"), str(folder / "full"))
    for options in (
        ["--strength", "0.5"],
        ["--preserve-color"],
        ["--precision", "fp32"],
        ["--device", "cuda"],
    ):
        assert quick._parse(["stylize", "--model", "m", "--input", "i", "--output", "o", *options]) is None
    r = _command(folder, "--runtime", "torch", output="torch")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "True"
    assert _command(folder, output="again").stdout.splitlines()[-1] == "False"


def test_a_changed_model_file_or_a_size_never_chosen_goes_down_the_full_path(folder, monkeypatch):
    _chosen(monkeypatch, "onnxruntime")
    stylize_paths(str(folder / "model.pth"), str(folder / "in"), str(folder / "full"))
    index = json.loads(quick.index_file().read_text())
    (entry,) = index.values()
    assert entry["sizes"] == {"64": {"runtime": "onnxruntime", "extra_s": 0.0}}  # both sizes: the smallest
    save_image(torch.rand(3, 300, 200), folder / "in" / "d.png")  # the 256 px bucket: never chosen
    assert _command(folder, output="bigger").stdout.splitlines()[-1] == "True"
    (folder / "in" / "d.png").unlink()
    # the same bucket, but a quarter-resolution map whose pixels are not in fours (9 x 6): timed apart
    save_image(torch.rand(3, 33, 21), folder / "in" / "e.png")
    assert _command(folder, output="odd").stdout.splitlines()[-1] == "True"
    (folder / "in" / "e.png").unlink()
    saved = torch.load(folder / "model.pth")
    saved["model"]["out.weight" if "out.weight" in saved["model"] else next(iter(saved["model"]))] *= 2
    torch.save(saved, folder / "model.pth")
    r = _command(folder, output="changed")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "True"


def test_a_bad_image_in_the_folder_is_reported_in_one_line_and_the_others_written(folder, monkeypatch):
    _chosen(monkeypatch, "onnxruntime")
    stylize_paths(str(folder / "model.pth"), str(folder / "in"), str(folder / "full"))
    (folder / "in" / "broken.png").write_bytes(b"not an image")
    r = _command(folder)
    assert r.returncode == 1
    assert r.stdout.splitlines()[-2:] == [f"stylized 3 images into {folder / 'quick'}; 1 failed", "False"]
    assert r.stderr.count("fastst: warning: cannot read image") == 1 and "Traceback" not in r.stderr
    assert not (folder / "quick" / "broken.png").exists()


def test_where_pytorch_runs_faster_the_quick_path_runs_only_if_the_start_up_saved_outweighs_it(
    folder, monkeypatch
):
    _chosen(monkeypatch, "onnxruntime", torch_s=0.5)  # half a second a pass faster than onnxruntime
    start_runtime("onnxruntime", load_model(folder / "model.pth"))  # the export, as choosing makes it
    stylize_paths(str(folder / "model.pth"), str(folder / "in"), str(folder / "full"))
    (entry,) = json.loads(quick.index_file().read_text()).values()
    assert entry["sizes"]["64"] == {"runtime": "onnxruntime", "extra_s": 0.5}
    assert entry["startup_s"] is None  # in-process: no start-up was measured, so nothing is saved
    assert _command(folder, output="one").stdout.splitlines()[-1] == "True"
    # run from the command line, the full path measures its start-up: below the 3 images' 0.5 s x (pixels
    # over the bucket's) or above it, the quick path's choice follows
    for startup, quick_path in ((0.01, False), (60.0, True)):
        entry["startup_s"] = startup
        quick.index_file().write_text(
            json.dumps({k: entry for k in json.loads(quick.index_file().read_text())})
        )
        r = _command(folder, "--overwrite", output=f"startup_{startup}")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[-1] == str(not quick_path)


def test_the_command_line_measures_its_start_up_for_the_quick_path(folder):
    r = _command(folder, output="first")  # the first run times the runtimes, exporting the network
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "True"
    (entry,) = json.loads(quick.index_file().read_text()).values()
    assert 0 < entry["startup_s"] < 120 and set(entry["sizes"]) == {"64"}
    assert (
        entry["sizes"]["64"]["runtime"] in ("onnxruntime", "openvino")
        and entry["sizes"]["64"]["extra_s"] >= 0
    )


def test_an_export_that_no_runtime_can_load_sends_the_command_down_the_full_path(folder, monkeypatch):
    _chosen(monkeypatch, "onnxruntime")
    stylize_paths(str(folder / "model.pth"), str(folder / "in"), str(folder / "full"))
    (entry,) = json.loads(quick.index_file().read_text()).values()
    args = quick._parse(
        ["stylize", "--model", str(folder / "model.pth"), "--input", str(folder / "in")]
        + ["--output", str(folder / "quick")]
    )
    assert quick._entry(args) is not None
    Path(entry["onnx"]).write_bytes(b"not a graph")
    assert (
        quick.stylize_quickly(
            [
                "stylize",
                "--model",
                str(folder / "model.pth"),
                "--input",
                str(folder / "in"),
                "--output",
                str(folder / "quick"),
            ]
        )
        is None
    )
    assert not (folder / "quick").exists() or not any((folder / "quick").iterdir())  # nothing half-written


def test_a_style_goes_to_the_file_named_after_it_though_another_shipped_file_holds_it_too(
    folder, monkeypatch
):
    # `--model base --style starry_night` leaves a note for the base with that style; `--style starry_night`
    # alone still means the file named after the style, as on the full path
    shipped = folder / "pretrained"
    shipped.mkdir()
    for name in ("base.pth", "starry_night.pth"):
        (shipped / name).write_bytes((folder / "model.pth").read_bytes() + name.encode())
    monkeypatch.setattr(quick, "PRETRAINED_DIR", shipped)
    export = folder / "net.onnx"
    export.write_bytes(b"an export")
    sizes = {"64": {"runtime": "onnxruntime", "extra_s": 0.0}}
    network = {"min_size": 16, "max_pixels": 1 << 22}
    for name in ("base.pth", "starry_night.pth"):
        quick.remember("starry_night", shipped / name, export, sizes, "fp32", 1, network)
    listing = ["base.pth"]  # what is shipped once starry_night.pth is gone
    argv = [
        "stylize",
        "--style",
        "starry_night",
        "--input",
        str(folder / "in"),
        "--output",
        str(folder / "o"),
    ]
    entry = quick._entry(quick._parse(argv))
    assert entry is not None and entry["model"] == str(shipped / "starry_night.pth")
    # without it, a note the full path left when it took base.pth for the style by name among these files
    (shipped / "starry_night.pth").unlink()
    assert quick._entry(quick._parse(argv)) is None  # noted with `--model base`: not the style's own choice
    taken = {**network, "by_style": True, "shipped": listing}
    quick.remember("starry_night", shipped / "base.pth", export, sizes, "fp32", 1, taken)
    assert quick._entry(quick._parse(argv))["model"] == str(shipped / "base.pth")
    # another file shipped since (which may hold the style with fewer parameters): no guess, the full path
    (shipped / "other.pth").write_bytes(b"another")
    assert quick._entry(quick._parse(argv)) is None
    quick.remember(
        "starry_night",
        shipped / "other.pth",
        export,
        sizes,
        "fp32",
        1,
        {**network, "by_style": True, "shipped": ["base.pth", "other.pth"]},
    )
    assert quick._entry(quick._parse(argv))["model"] == str(shipped / "other.pth")


def test_after_a_painting_any_painting_runs_without_torch_at_its_working_size(
    tmp_path, monkeypatch, imagenet_vgg
):
    """After the full path stylized with one painting through a one-pass model, the same command with that
    painting or a new one shrinks, stylizes and brings back each photo without PyTorch, the new painting's
    inputs computed through the model's exported painting side, as the full path computes them."""
    from fastst.anystyle import AnyStyleNet, model_file
    from fastst.files import StylizeOptions
    from fastst.io import atomic_torch_save

    monkeypatch.setenv("FASTST_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = AnyStyleNet(width=0.25, residual_blocks=1, input_skip=False)
    for p in model.parameters():  # norms that differ from painting to painting
        p.data.add_(0.05 * torch.randn_like(p))
    atomic_torch_save({**model_file(model, half=False), "palette": 0.5}, tmp_path / "anystyle.pth")
    save_image(torch.rand(3, 48, 40), tmp_path / "first.png")
    save_image(
        0.5 * torch.rand(3, 300, 260) + torch.tensor([0.5, 0.2, 0.0])[:, None, None], tmp_path / "new.png"
    )
    (tmp_path / "in").mkdir()
    save_image(torch.rand(3, 300, 500), tmp_path / "in" / "large.png")  # above the working size: shrunk
    save_image(torch.rand(3, 40, 56), tmp_path / "in" / "small.png")  # stylized at its own size
    _chosen(monkeypatch, "onnxruntime")

    def full(painting, output):
        options = StylizeOptions(painting=str(tmp_path / painting))
        assert stylize_paths(
            str(tmp_path / "anystyle.pth"), str(tmp_path / "in"), str(tmp_path / output), options
        )[:2] == (2, [])

    def quick_command(painting, output, torch_imported=False):
        command = [sys.executable, "-c", ENTRY, "stylize", "--style-image", str(tmp_path / painting)]
        command += ["--model", str(tmp_path / "anystyle.pth"), "--input", str(tmp_path / "in")]
        r = subprocess.run(
            command + ["--output", str(tmp_path / output)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[-2:] == [
            f"stylized 2 images into {tmp_path / output}",
            str(torch_imported),
        ]

    full("first.png", "full")
    quick_command("first.png", "quick")
    quick_command("new.png", "quick_new")  # a painting no command has seen
    full("new.png", "full_new")
    for quick_out, full_out in (("quick", "full"), ("quick_new", "full_new")):
        for name in ("large.png", "small.png"):
            a, b = load_image(tmp_path / quick_out / name), load_image(tmp_path / full_out / name)
            assert (a - b).abs().mean() < 0.5 / 255, (quick_out, name)  # Pillow's resizes against PyTorch's
            assert (a - b).abs().max() <= 4 / 255, (quick_out, name)
    first, new = (
        load_image(tmp_path / "quick" / "small.png"),
        load_image(tmp_path / "quick_new" / "small.png"),
    )
    assert (first - new).abs().mean() > 4 / 255  # each painting its own picture
    with torch.no_grad():  # the model changed in place: a painting's kept inputs are the old model's
        model.predictor.out.bias.add_(0.3 * torch.randn_like(model.predictor.out.bias))
    atomic_torch_save({**model_file(model, half=False), "palette": 0.5}, tmp_path / "anystyle.pth")
    full("new.png", "full_changed")  # the note now names the changed model
    quick_command("first.png", "quick_changed")
    full("first.png", "full_first_changed")
    a = load_image(tmp_path / "quick_changed" / "small.png")
    b = load_image(tmp_path / "full_first_changed" / "small.png")
    assert (a - b).abs().mean() < 0.5 / 255 and (a - first).abs().mean() > 4 / 255
    # a note of another working size than this CPU's for the network (as an older fastst wrote it) is not
    # used: the full path stylizes, at this CPU's working size, and notes it again
    index = json.loads(quick.index_file().read_text())
    (key,) = [k for k, e in index.items() if "working_size" in e]
    index[key]["working_size"] += 64
    quick.index_file().write_text(json.dumps(index))
    quick_command("first.png", "old_note", torch_imported=True)
    quick_command("first.png", "noted_again")


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason='needs "fastst[openvino]"')
def test_openvino_is_imported_without_its_conversion_tools_which_stay_importable(tmp_path):
    """The quick path's OpenVINO runs an ONNX file without the conversion tools and their telemetry client
    loaded; a later import of the tools, by anyone, still works."""
    import onnx
    from onnx import TensorProto, helper

    relu = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    onnx.save(helper.make_model(relu, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "relu.onnx")
    code = (
        "import sys; import numpy as np; from fastst.quick import open_session; "
        f"run, _ = open_session('openvino', {str(tmp_path / 'relu.onnx')!r}, 'fp32', 1); "
        "print('openvino.tools.ovc' in sys.modules, 'openvino_telemetry' in sys.modules); "
        "print(run(np.array([-1.0, 2.0], np.float32)).tolist()); "
        "import openvino.tools.ovc; print(callable(openvino.tools.ovc.convert_model))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["False False", "[0.0, 2.0]", "True"]


def test_a_runtime_reinstalled_or_upgraded_is_another_key(tmp_path, monkeypatch):
    """The quick path's note is keyed by each installed runtime's entry file and its time of writing, read
    without importing the package: a reinstall gives another key, and a missing package none."""
    (tmp_path / "some_runtime").mkdir()
    entry = tmp_path / "some_runtime" / "__init__.py"
    entry.write_text("raise RuntimeError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = quick.install_stamp("some_runtime")
    assert before is not None and str(entry) in before
    os.utime(entry, ns=(entry.stat().st_atime_ns, entry.stat().st_mtime_ns + 10**9))
    assert quick.install_stamp("some_runtime") not in (None, before)
    assert "some_runtime" not in sys.modules
    assert quick.install_stamp("no_such_runtime_here") is None


def test_after_fastst_prepare_a_shipped_style_and_a_new_painting_start_without_torch(tmp_path, imagenet_vgg):
    """``fastst prepare`` does what a first command would (the export, the timing, the quick path's note),
    so the first command after it, on a photo of either size it prepares, with a painting never seen or on
    a clip, runs without PyTorch; a style that is not shipped is refused in one line."""
    env = {**os.environ, "FASTST_CACHE": str(tmp_path / "cache")}

    def run(*args):
        command = [sys.executable, "-c", ENTRY, *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)

    # a style with a file of its own, and one that two shipped files hold (the full path takes the smaller)
    r = run("prepare", "--style", "starry_night", "the_scream")
    assert r.returncode == 0, r.stderr
    assert "starry_night, the_scream, any painting (" in r.stdout.splitlines()[-2]
    (tmp_path / "in").mkdir()
    for w, h in PREPARED_SIZES:  # not the sizes it stylized, but of the same kinds in the same buckets
        assert quick.in_fours((h - 8, w - 8)) == quick.in_fours((h, w))
        save_image(torch.rand(3, h - 8, w - 8), tmp_path / "in" / f"{w}.png")
    save_image(torch.rand(3, 120, 90), tmp_path / "painting.png")
    styles = (
        ["--style", "starry_night"],
        ["--style", "the_scream"],
        ["--style-image", str(tmp_path / "painting.png")],
    )
    for i, style in enumerate(styles):
        out = tmp_path / f"out{i}"
        r = run("stylize", *style, "--input", str(tmp_path / "in"), "--output", str(out))
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[-1] == "False", style  # PyTorch never imported
        assert len(list(out.iterdir())) == len(PREPARED_SIZES)
    if (
        importlib.util.find_spec("av") is not None
    ):  # and a clip of a size it did not stylize, in a bucket it did
        from fastst.clips import make_pan_clip

        clip = make_pan_clip(tmp_path / "in" / "512.png", tmp_path / "clip.mp4", frames=6, size=(600, 340))
        r = run("stylize", "--style", "the_scream", "--input", str(clip), "--output", str(tmp_path / "c.mp4"))
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[-2:] == [f"stylized 1 clip into {tmp_path / 'c.mp4'}", "False"]
    r = run("prepare", "--style", "no_such_style", "--no-one-pass")
    assert r.returncode == 1
    (line,) = r.stderr.splitlines()  # one line, no traceback
    assert line.startswith("fastst: error: no shipped style 'no_such_style'; shipped: ")


def test_fastst_prepare_with_no_runtime_to_choose_between_says_so_and_times_nothing(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("fastst.commands.resolve_device", lambda name: torch.device("cpu"))
    monkeypatch.setattr("fastst.commands.installed", lambda: ["torch"])
    assert cli_main(["prepare"]) == 0
    assert capsys.readouterr().out.startswith("nothing to prepare: PyTorch is the only runtime installed")
    assert not (tmp_path / "cache").exists()


def test_a_network_of_a_layout_timed_before_is_not_timed_but_noted_for_the_quick_path(folder):
    """Another network of the same layout (another style of a multi-style model) reuses the timing, and its
    first command still leaves its own export and note, so the next one runs without PyTorch."""
    net = load_model(folder / "model.pth")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.save({"model": net.state_dict(), "net": net.config}, folder / "other.pth")

    def command(model, output):
        args = ["stylize", "--model", str(folder / model), "--input", str(folder / "in"), "--output"]
        run = [sys.executable, "-c", ENTRY, *args, str(folder / output)]
        r = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()[-1]

    assert command("model.pth", "first") == "True"  # timed, exported, noted
    timed = json.loads((quick.index_file().parent / "runtimes.json").read_text())
    assert command("other.pth", "other_full") == "True"
    assert json.loads((quick.index_file().parent / "runtimes.json").read_text()) == timed  # not timed again
    assert len(json.loads(quick.index_file().read_text())) == 2  # but noted
    assert command("other.pth", "other_quick") == "False"
    for name in ("a.png", "b.png", "c.png"):
        a, b = load_image(folder / "other_quick" / name), load_image(folder / "other_full" / name)
        # the full path's runtime may have been PyTorch's, in bf16 on a CPU with it: the bench's bf16 bound
        assert psnr(a, b) >= 25
        assert (a - load_image(folder / "first" / name)).abs().mean() > 4 / 255  # its own picture


def _clip_command(tmp_path, clip, output, *options):
    command = [sys.executable, "-c", ENTRY, "stylize", "--model", str(tmp_path / "model.pth")]
    command += ["--input", str(clip), "--output", str(output), *options]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_after_a_clip_a_style_s_next_clip_runs_without_torch_with_the_same_frames_and_sound(
    folder, monkeypatch
):
    """The full path notes a clip's graphs; the next clip (another one: its own statistics) then runs
    without PyTorch, with its frames, timestamps and audio, and pictures the full path's within the runtime's
    precision; an option this path does not cover, or a painting, goes the full path."""
    pytest.importorskip("av")
    from fastst.clips import ClipReader, make_pan_clip
    from fastst.files import StylizeOptions, stylize_video_paths
    from fastst.video import read_frames

    _chosen(monkeypatch, "onnxruntime")
    first, second = (
        make_pan_clip(folder / "in" / "a.png", folder / f"{name}.mp4", frames=6, size=(72, 40), seed=seed)
        for name, seed in (("first", 0), ("second", 1))
    )
    options = StylizeOptions(device="cpu")
    assert stylize_video_paths(str(folder / "model.pth"), str(first), str(folder / "first-out.mp4"), options)[
        :2
    ] == (1, [])
    full = folder / "second-full.mp4"
    # the full path in fp32 (an option it does not cover), as onnxruntime runs: a reference
    r = _clip_command(folder, second, full, "--precision", "fp32")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "True", r.stderr
    out = folder / "second-quick.mp4"
    r = _clip_command(folder, second, out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-2:] == [f"stylized 1 clip into {out}", "False"]
    quick_info, full_info = ClipReader(out, None).info, ClipReader(full, None).info
    assert (quick_info.frames, quick_info.width, quick_info.height) == (6, 72, 40)
    assert quick_info.audio and quick_info.rate == full_info.rate
    assert psnr(read_frames(out), read_frames(full)) > 40
    assert psnr(read_frames(out), read_frames(second)) < 25  # stylized, not copied
    for options in (["--strength", "0.5"], ["--temporal", "ema"], ["--no-anchor"]):
        r = _clip_command(folder, second, folder / "other.mp4", "--overwrite", *options)
        assert r.returncode == 0 and r.stdout.splitlines()[-1] == "True", (options, r.stderr)
