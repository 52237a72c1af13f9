import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastst import TransformerNet
from fastst.errors import FaststError
from fastst.io import load_image
from fastst.runtime import cpu_has_bf16
from fastst.stylize import (
    PRETRAINED_DIR,
    fast_path,
    load_model,
    preserve_color,
    pretrained_styles,
    resolve_shipped_style,
    stylize,
    stylize_image,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    net = TransformerNet(width=0.25, input_skip=True)
    for p in net.parameters():  # a network that changes images, unlike the identity it starts as
        p.data.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("model") / "model.pth"
    torch.save({"model": net.state_dict(), "net": net.config}, path)
    return path


def _fastst(*args):
    return subprocess.run(
        [sys.executable, "-m", "fastst", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (33, 65), (101, 57)])
def test_output_size_equals_input_size(model_file, size):
    out = stylize(load_model(model_file), torch.rand(3, *size))
    assert out.shape == (3, *size)


def test_preserve_color_keeps_the_contents_chroma():
    # mid-range colours, so that the mixture needs no clamping
    content, stylized = torch.rand(3, 20, 30) * 0.2 + 0.4, torch.rand(3, 20, 30) * 0.2 + 0.4
    mixed = preserve_color(stylized, content)
    yuv = torch.tensor([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])
    to = lambda t: torch.einsum("ij,jhw->ihw", yuv, t)
    assert torch.allclose(to(mixed)[1:], to(content)[1:], atol=1e-5)  # chroma of the content
    assert torch.allclose(to(mixed)[0], to(stylized)[0], atol=1e-5)  # luminance of the stylization


def test_strength_blends_with_the_content(model_file):
    model, image = load_model(model_file), torch.rand(3, 24, 24)
    assert torch.allclose(stylize_image(model, image, strength=0.0), image)
    full = stylize_image(model, image)
    assert torch.allclose(stylize_image(model, image, strength=0.5), 0.5 * full + 0.5 * image, atol=1e-6)
    with pytest.raises(FaststError):
        stylize_image(model, image, strength=1.5)


def test_cli_stylizes_a_file_and_a_folder_keeping_names_and_sizes(model_file, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (31, 17), (10, 200, 30)).save(src / "a.png")
    Image.new("RGB", (12, 40), (200, 10, 30)).save(src / "b.jpg")
    r = _fastst("stylize", "--model", model_file, "--input", src / "a.png", "--output", tmp_path / "one.webp")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "one.webp").size == (31, 17)
    r = _fastst("stylize", "--model", model_file, "--input", src, "--output", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert {p.name: Image.open(p).size for p in (tmp_path / "out").iterdir()} == {
        "a.png": (31, 17),
        "b.jpg": (12, 40),
    }


def test_a_folder_with_bad_files_processes_the_good_ones_and_fails(model_file, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (16, 16)).save(src / "good.png")
    (src / "bad.jpg").write_text("no")
    (src / "empty.png").write_bytes(b"")
    r = _fastst("stylize", "--model", model_file, "--input", src, "--output", tmp_path / "out")
    assert r.returncode == 1
    assert (tmp_path / "out" / "good.png").exists() and not (tmp_path / "out" / "bad.jpg").exists()
    assert "bad.jpg" in r.stderr and "empty.png" in r.stderr and "2 failed" in r.stdout
    assert "Traceback" not in r.stderr


def test_existing_output_is_kept_unless_overwrite(model_file, tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "in.png")
    (tmp_path / "out.png").write_bytes(b"precious")
    r = _fastst(
        "stylize", "--model", model_file, "--input", tmp_path / "in.png", "--output", tmp_path / "out.png"
    )
    assert r.returncode == 1 and (tmp_path / "out.png").read_bytes() == b"precious"
    r = _fastst(
        "stylize",
        "--model",
        model_file,
        "--input",
        tmp_path / "in.png",
        "--output",
        tmp_path / "out.png",
        "--overwrite",
    )
    assert r.returncode == 0 and Image.open(tmp_path / "out.png").size == (16, 16)


def test_a_folder_run_again_skips_what_exists_and_succeeds(model_file, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (16, 16)).save(src / "a.png")
    Image.new("RGB", (20, 16)).save(src / "b.png")
    assert (
        _fastst("stylize", "--model", model_file, "--input", src, "--output", tmp_path / "out").returncode
        == 0
    )
    r = _fastst("stylize", "--model", model_file, "--input", src, "--output", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "stylized 0 images" in r.stdout and "2 skipped (exist; --overwrite to replace)" in r.stdout


@pytest.mark.parametrize("folder", ["empty", "photo.jpg"])
def test_no_input_images_is_an_error(model_file, tmp_path, folder):
    (tmp_path / folder).mkdir()
    r = _fastst("stylize", "--model", model_file, "--input", tmp_path / folder, "--output", tmp_path / "out")
    assert r.returncode == 1 and "no images in the folder" in r.stderr and "Traceback" not in r.stderr


class _Exploit:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch /tmp/fastst-pwned')",))


@pytest.mark.parametrize("case", ["text", "truncated", "other width", "code", "folder", "missing"])
def test_bad_model_files_are_refused_in_one_line(model_file, tmp_path, case):
    path = tmp_path / "model.pth"
    if case == "text":
        path.write_text("hello")
    elif case == "truncated":
        path.write_bytes(model_file.read_bytes()[:5000])
    elif case == "other width":
        saved = torch.load(model_file, weights_only=True)
        saved["net"]["width"] = 0.5
        torch.save(saved, path)
    elif case == "code":
        import pickle

        torch.save({"model": _Exploit()}, path, pickle_module=pickle)
    elif case == "folder":
        path = tmp_path
    else:
        path = tmp_path / "absent.pth"
    Image.new("RGB", (16, 16)).save(tmp_path / "in.png")
    r = _fastst("stylize", "--model", path, "--input", tmp_path / "in.png", "--output", tmp_path / "o.png")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert not Path("/tmp/fastst-pwned").exists()
    assert not (tmp_path / "o.png").exists()


def test_onnx_export_matches_pytorch_at_two_sizes(model_file, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from fastst.export import export_network

    model = load_model(model_file)
    session = ort.InferenceSession(str(export_network(load_model(model_file), tmp_path / "m.onnx")))
    for size in [(37, 53), (128, 96)]:
        x = torch.rand(1, 3, *size)
        got = session.run(None, {"image": x.numpy()})[0]
        assert got.shape == (1, 3, *size)
        assert np.abs(got - stylize(model, x, precision="fp32").numpy()).max() <= 1e-3


@pytest.mark.parametrize("style", ["the_scream", "composition_vii:0.5,the_scream:0.5"])
def test_the_folded_and_factored_shipped_network_exports_the_same_function_at_two_sizes(style, tmp_path):
    """base_fast's default path is its export: the folded reflection and norms traced for any size."""
    ort = pytest.importorskip("onnxruntime")
    from fastst.export import export_network

    model = load_model("base_fast", style=style)
    assert model.config["fold"] and model.config["ranks"]
    session = ort.InferenceSession(
        str(export_network(load_model("base_fast", style=style), tmp_path / "m.onnx"))
    )
    for size in [(37, 53), (130, 96)]:
        x = torch.rand(1, 3, *size)
        got = session.run(None, {"image": x.numpy()})[0]
        assert got.shape == (1, 3, *size)
        assert np.abs(got - stylize(model, x, precision="fp32").numpy()).max() <= 1e-3


@pytest.mark.slow
def test_tiles_of_a_compiled_network_agree_with_eager_tiles(tmp_path):
    from fastst.stylize import compile_model
    from fastst.tiles import stylize_tiled

    torch.manual_seed(2)
    net = TransformerNet(width=0.25, input_skip=True, residual_blocks=1)  # compiling takes time per layer
    for p in net.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    model_file = tmp_path / "model.pth"
    torch.save({"model": net.state_dict(), "net": net.config}, model_file)
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16), size=(160, 160), mode="bilinear")[
        0
    ]  # 2 x 2 tiles of one shape
    eager = stylize_tiled(load_model(model_file), image, tile=96, overlap=32, precision="fp32")
    compiled = compile_model(load_model(model_file))
    first = stylize_tiled(compiled, image, tile=96, overlap=32, precision="fp32")
    assert (first - eager).abs().max() < 1e-4
    # another image: the statistics are recorded again, not the first image's kept by the compiled graph
    second_image = image.flip(-1) * 0.5
    assert (
        stylize_tiled(compiled, second_image, tile=96, overlap=32, precision="fp32")
        - stylize_tiled(load_model(model_file), second_image, tile=96, overlap=32, precision="fp32")
    ).abs().max() < 1e-4


def test_tiled_and_untiled_outputs_agree(model_file):
    from fastst.tiles import stylize_tiled

    model = load_model(model_file)
    torch.manual_seed(1)
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 30, 40), size=(300, 400), mode="bilinear")[0]
    whole = stylize(model, image)
    tiled = stylize_tiled(model, image, tile=256, overlap=128)  # 2 x 2 tiles
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().mean() < 0.01
    from fastst.measure import psnr

    assert psnr(tiled, whole) > 30


def test_a_folder_is_batched_by_size_without_changing_results(model_file, tmp_path):
    from fastst.files import StylizeOptions, stylize_paths

    src = tmp_path / "in"
    src.mkdir()
    torch.manual_seed(2)
    images = {f"{i}.png": torch.rand(3, 20, 28) if i < 3 else torch.rand(3, 28, 20) for i in range(4)}
    from fastst.io import save_image

    for name, image in images.items():
        save_image(image, src / name)
    options = StylizeOptions(device="cpu", precision="fp32")
    written, failures, _ = stylize_paths(str(model_file), str(src), str(tmp_path / "out"), options, False)
    assert (written, failures) == (4, [])
    model = load_model(model_file)
    from fastst.io import load_image as load

    for name in images:
        expected = stylize(model, load(src / name), precision="fp32")
        assert (load(tmp_path / "out" / name) - expected).abs().max() <= 1 / 255 + 1e-6


def test_tiling_works_with_the_inference_form_and_in_bf16(model_file):
    from fastst.inference import for_inference
    from fastst.measure import psnr
    from fastst.tiles import stylize_tiled

    model = load_model(model_file)
    fast = for_inference(model).to(memory_format=torch.channels_last)
    torch.manual_seed(1)
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 30, 40), size=(300, 400), mode="bilinear")[0]
    reference = stylize_tiled(model, image, tile=256, overlap=128, precision="fp32")
    assert (
        stylize_tiled(fast, image, tile=256, overlap=128, precision="fp32") - reference
    ).abs().max() < 1e-4
    if cpu_has_bf16():  # tiles agree with the whole image as in fp32
        tiled = stylize_tiled(fast, image, tile=256, overlap=128, precision="bf16")
        assert psnr(tiled, stylize(fast, image, precision="bf16")) > 30


def test_shipped_mixes_and_their_errors(tmp_path):
    from fastst.stylize import pretrained_styles

    shipped = pretrained_styles()
    multi = sorted({p for p in shipped.values() if list(shipped.values()).count(p) > 1})
    if not multi:
        pytest.skip("no multi-style model ships")
    a, b = [name for name, p in shipped.items() if p == multi[0]][:2]
    Image.new("RGB", (40, 24), (120, 160, 200)).save(tmp_path / "in.png")
    r = _fastst(
        "stylize",
        "--style",
        f"{a}:0.5,{b}:0.5",
        "--input",
        tmp_path / "in.png",
        "--output",
        tmp_path / "mix.png",
    )
    assert r.returncode == 0, r.stderr
    r = _fastst(
        "stylize",
        "--style",
        f"{a}:0.5,nobody:0.5",
        "--input",
        tmp_path / "in.png",
        "--output",
        tmp_path / "x.png",
    )
    assert r.returncode == 1 and "nobody" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_the_one_pass_model_is_not_listed_as_a_style_and_asking_for_it_as_one_says_so():
    from fastst.anystyle import is_one_pass

    one_pass = [p for p in PRETRAINED_DIR.glob("*.pth") if is_one_pass(p)]
    assert one_pass and not set(pretrained_styles()) & {p.stem for p in one_pass}
    r = _fastst("styles", "--model", one_pass[0])
    assert r.returncode == 0 and "--style-image" in r.stdout
    listing = _fastst("styles")  # the styles on stdout, one a line; how to use any painting on stderr
    assert all("\t" in line for line in listing.stdout.splitlines())
    assert "--style-image" in listing.stderr
    # the shipped one-pass models: the one a painting takes, and the others by --model, with the working
    # size of the "auto" style scale here: the usual one for the default, on the folded and factored base,
    # where it runs in bf16
    from fastst.runtime import cpu_has_bf16

    gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    size = 384 if gpu or cpu_has_bf16() else 256
    here = f"through anystyle_fast on this machine, working size {size} px; or --model anystyle, --model "
    assert here in listing.stderr


def test_a_painting_takes_the_one_pass_model_on_base_fast_s_network(tmp_path, data_root, imagenet_vgg):
    painting = data_root / "styles" / "starry_night.jpg"
    photo = data_root / "train" / "imagenet_sample" / "n02091032_Italian_greyhound.JPEG"
    expected = "anystyle_fast"
    outs = {}
    for model in (None, "anystyle", "anystyle_fast"):
        out = tmp_path / f"{model}.png"
        args = ["stylize", "--style-image", painting, "--input", photo, "--output", out, "--max-size", "512"]
        r = _fastst(*args, *(["--model", model] if model else []))
        assert r.returncode == 0, r.stderr
        outs[model] = np.asarray(Image.open(out), dtype=np.int16)
    gap = lambda a, b: np.abs(outs[a] - outs[b]).mean()  # noqa: E731  (runtimes differ in the last bit)
    assert gap(None, expected) < 1 and gap("anystyle", "anystyle_fast") > 5


def test_palette_takes_the_painting_s_colours_and_is_refused_where_it_means_nothing(
    tmp_path, data_root, imagenet_vgg, monkeypatch
):
    monkeypatch.setenv("FASTST_CACHE", str(tmp_path / "cache"))  # the commands' subprocesses inherit it
    painting = data_root / "styles" / "starry_night.jpg"
    target = np.asarray(Image.open(painting).convert("RGB"), np.float64).reshape(-1, 3).mean(0)
    gaps = {}
    for fraction in ("0", "1"):  # the painting itself as the photo, at the size its colour map is measured
        out = tmp_path / f"{fraction}.png"
        args = ["--style-image", painting, "--input", painting, "--max-size", "256", "--output", out]
        r = _fastst("stylize", *args, "--model", "anystyle_base", "--palette", fraction)
        assert r.returncode == 0, r.stderr
        gaps[fraction] = np.abs(np.asarray(Image.open(out), np.float64).reshape(-1, 3).mean(0) - target)
    # all the way, the network's picture of the painting takes the painting's colour mean; none of the way,
    # it keeps its own
    assert gaps["1"].max() < 3 and gaps["0"].max() > 10, gaps
    # a painting at another fraction is not kept for the quick path, which runs the model's own fraction;
    # at the model's own, it is
    kept = lambda: list((tmp_path / "cache").glob("paintings/*.npz"))  # noqa: E731
    assert not kept()
    r = _fastst("stylize", *args[:-1], tmp_path / "own.png", "--model", "anystyle_base")
    assert r.returncode == 0 and kept(), r.stderr
    photo = data_root / "train" / "imagenet_sample" / "n02091032_Italian_greyhound.JPEG"
    for wrong, words in (
        (["--style", "starry_night", "--palette", "1"], "--style-image"),
        (["--style-image", painting, "--palette", "1.5"], "between 0 and 1"),
        (["--style-image", painting, "--palette", "1", "--refine", "5"], "--refine"),
        (["--style-image", painting, "--palette", "1", "--model", "anystyle"], "anystyle_base"),
    ):
        r = _fastst("stylize", "--input", photo, "--output", tmp_path / "x.png", *wrong)
        assert r.returncode != 0 and words in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.png").exists()


def test_a_shipped_style_stylizes_with_no_training(tmp_path):
    assert "starry_night" in pretrained_styles()
    assert all(p.stat().st_size < 5e6 for p in PRETRAINED_DIR.glob("*.pth"))
    gradients = [
        Image.linear_gradient("L"),
        Image.radial_gradient("L"),
        Image.linear_gradient("L").rotate(90),
    ]
    Image.merge("RGB", gradients).resize((40, 24)).save(tmp_path / "in.png")
    r = _fastst(
        "stylize", "--style", "starry_night", "--input", tmp_path / "in.png", "--output", tmp_path / "out.png"
    )
    assert r.returncode == 0, r.stderr
    # the shipped network's own forward pass in fp32 is the reference; the command's fast path in fp32
    # differs from it by rounding to 8 bits only, in bf16 by that precision's rounding too
    photo = load_image(tmp_path / "in.png")
    network = load_model(resolve_shipped_style("starry_night"), style="starry_night")
    with torch.no_grad():
        reference = network(photo[None])[0].clamp(0, 1)
    out = load_image(tmp_path / "out.png")
    assert out.shape == photo.shape == (3, 24, 40)
    assert (reference - photo).abs().mean() > 20 / 255  # the style changes the picture
    if fast_path("auto", torch.device("cpu"))[0] == "fp32":
        assert (out - reference).abs().max() <= 1 / 255
    else:
        assert (out - reference).abs().mean() <= 2 / 255
    r = _fastst(
        "stylize", "--style", "no_such_style", "--input", tmp_path / "in.png", "--output", tmp_path / "x.png"
    )
    assert r.returncode == 1 and "starry_night" in r.stderr and "Traceback" not in r.stderr
    listed = [line.split("\t")[0] for line in _fastst("styles").stdout.splitlines()]
    assert listed == list(pretrained_styles())


def test_every_stylizing_entry_point_has_one_default_precision():
    import inspect

    from fastst.cli import build_parser
    from fastst.files import StylizeOptions
    from fastst.stylize import DEFAULT_PRECISION
    from fastst.tiles import stylize_tiled

    for function in (stylize, stylize_image, stylize_tiled):
        assert inspect.signature(function).parameters["precision"].default == DEFAULT_PRECISION, (
            function.__name__
        )
    assert StylizeOptions().precision == DEFAULT_PRECISION
    args = build_parser().parse_args(["stylize", "--model", "m.pth", "--input", "a", "--output", "b"])
    assert args.precision == DEFAULT_PRECISION


def test_tiles_of_a_real_photo_above_the_statistics_size_stay_close_to_one_pass(data_root):
    # the largest photo of the data set is wider than STATS_SIZE, so the tiles' statistics come from a
    # shrunk copy, as for every image fastst tiles (results/tiling_accuracy.json measures more)
    from fastst.io import load_image
    from fastst.measure import psnr
    from fastst.tiles import STATS_SIZE, stylize_tiled

    image = load_image(data_root / "train" / "imagenet_sample" / "n02091032_Italian_greyhound.JPEG")
    assert max(image.shape[-2:]) > STATS_SIZE
    model = load_model("starry_night")
    whole = stylize(model, image, precision="fp32")
    assert psnr(stylize_tiled(model, image, precision="fp32"), whole) > 40


def test_the_stylizer_is_the_network_on_its_fast_path(model_file):
    from fastst.stylize import Stylizer

    model = load_model(model_file)
    torch.manual_seed(0)
    image = torch.rand(3, 60, 84)
    stylizer = Stylizer(model, precision="fp32")
    expected = stylize(model, image, precision="fp32")
    assert (stylizer(image) - expected).abs().max() < 1e-4  # the inference form: the same function
    assert (stylizer.batch(image[None])[0] - expected).abs().max() < 1e-4
    half = stylizer(image, strength=0.5)
    assert (half - (0.5 * expected + 0.5 * image)).abs().max() < 1e-4


def test_the_stylizer_refuses_a_network_of_several_styles():
    from fastst.stylize import Stylizer
    from fastst.transformer import TransformerNet

    with pytest.raises(FaststError, match="holds 2 styles"):
        Stylizer(TransformerNet(styles=2))


def test_a_style_two_shipped_networks_hold_is_stylized_by_the_smaller(tmp_path, monkeypatch):
    import fastst.stylize as st

    def ship(name, width, styles):
        net = TransformerNet(width=width, styles=len(styles))
        torch.save({"model": net.state_dict(), "net": net.config, "styles": styles}, tmp_path / f"{name}.pth")

    ship("big", 0.5, ["a", "b", "c"])
    ship("small", 0.25, ["a", "b", "c"])
    ship("c", 0.5, ["c"])  # named after its style
    ship("bigger_only", 0.5, ["a", "d"])
    monkeypatch.setattr(st, "PRETRAINED_DIR", tmp_path)
    names = {name: path.name for name, path in st.pretrained_styles().items()}
    assert names == {"a": "small.pth", "b": "small.pth", "c": "c.pth", "d": "bigger_only.pth"}
    assert Path(st.resolve_shipped_style("a:0.5,b:0.5")).name == "small.pth"
    assert Path(st.resolve_shipped_style("a,d")).name == "bigger_only.pth"
