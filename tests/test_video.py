"""Video: clips in and out with their frame rate, size, audio and rotation; flicker; bad clips."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

from fastst.cli import main
from fastst.stylize import load_model

av = pytest.importorskip("av")
from fastst import anchor, clips, temporal, video  # noqa: E402  (needs PyAV)


@pytest.fixture(scope="module")
def photo(data_root):
    return data_root / "test" / "demo" / "chicago.jpg"


@pytest.fixture(scope="module")
def pan(photo, tmp_path_factory):
    """48 frames at 24 fps, 320x240, H.264 with an AAC tone: a camera moving 2 px right, 1 down a frame."""
    return clips.make_pan_clip(photo, tmp_path_factory.mktemp("clips") / "pan.mp4", frames=24)


@pytest.fixture(scope="module")
def model():
    return load_model("starry_night")


def _streams(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return {
            "frames": frames,
            "size": (v.codec_context.width, v.codec_context.height),
            "rate": v.average_rate,
            "audio": [a.codec_context.name for a in c.streams.audio],
            "seconds": float(c.duration / 1e6) if c.duration else None,
        }


def _cli(capsys, *args):
    code = main(["stylize", "--style", "starry_night", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.err.strip()


def test_a_clip_keeps_its_frames_size_rate_and_sound(pan, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, err = _cli(capsys, "--input", pan, "--output", out)
    assert code == 0, err
    before, after = _streams(pan), _streams(out)
    assert after["frames"] == before["frames"] == 24
    assert after["size"] == before["size"] == (320, 240)
    assert after["rate"] == before["rate"] == Fraction(24)
    assert after["audio"] == before["audio"] == ["aac"]
    assert after["seconds"] == pytest.approx(before["seconds"], abs=0.05)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary file left


def test_max_size_shrinks_to_even_sides(pan, tmp_path, capsys):
    code, err = _cli(capsys, "--input", pan, "--output", tmp_path / "small.mkv", "--max-size", "101")
    assert code == 0, err
    # 320x240 -> 101x75.75, each side rounded down to even (4:2:0), so none exceeds --max-size
    assert _streams(tmp_path / "small.mkv")["size"] == (100, 74)


def test_the_rotation_tag_is_kept(photo, model, tmp_path):
    clip = tmp_path / "turned.mp4"
    with av.open(str(clip), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(90)
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode())
    with av.open(str(clip)) as c:
        source_rotation = next(c.decode(video=0)).rotation
    assert source_rotation != 0
    video.stylize_video(model, clip, tmp_path / "out.mp4", progress=False)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert next(c.decode(video=0)).rotation == source_rotation


def test_global_shift_finds_the_camera_motion(pan):
    frames = video.read_frames(pan)
    assert anchor.global_shift(frames[3], frames[4]) == temporal.PAN_STEP
    assert anchor.global_shift(frames[4], frames[4]) == (0, 0)


def test_stream_norm_per_frame_is_instance_norm():
    norm = torch.nn.InstanceNorm2d(8, affine=True)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(3, 8, 9, 7) * 3 + 1
    torch.testing.assert_close(temporal.StreamNorm(norm, "frame")(x), norm(x), atol=1e-5, rtol=1e-5)


def test_ema_statistics_follow_the_frames_in_order():
    norm = torch.nn.InstanceNorm2d(1)
    stream = temporal.StreamNorm(norm, "ema", ema_weight=0.5)
    checker = torch.tensor([[0.0, 1], [1, 0]])
    frames = torch.stack([torch.full((1, 2, 2), v) + checker for v in (0.0, 4.0, 8.0)])
    out = torch.cat([stream(frames[:2]), stream(frames[2:])])  # two batches, one stream
    # means 0.5, 4.5, 8.5 -> smoothed 0.5, 2.5, 5.5; the variance of each frame is 0.25
    smoothed = torch.tensor([0.5, 2.5, 5.5])
    squares = torch.tensor([0.5, (0.5 + 4.5**2 + 0.25) / 2, 0])
    squares[2] = squares[1] + 0.5 * (8.5**2 + 0.25 - squares[1])
    var = squares - smoothed**2
    expected = (frames - smoothed.view(3, 1, 1, 1)) / torch.sqrt(var.view(3, 1, 1, 1) + norm.eps)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_stabilised_clip_flickers_less_than_frame_by_frame(pan, model, tmp_path):
    source = video.read_frames(pan)
    scores = {}
    for label, options in {"plain": {"temporal": "frame", "anchor": False}, "stable": {}}.items():
        out = tmp_path / f"{label}.mp4"
        video.stylize_video(model, pan, out, progress=False, **options)
        scores[label] = temporal.flicker(video.read_frames(out), source, temporal.PAN_STEP)
    # the pan moves the picture by 2 and 1 px, off the network's 4-px grid: frame by frame, its
    # texture changes with each frame; with the grid anchored to the scene it does not
    assert scores["stable"] < 0.6 * scores["plain"], scores


def test_with_the_clip_s_statistics_an_exported_runtime_draws_the_torch_path_s_frames(
    pan, model, tmp_path, monkeypatch
):
    from fastst import runtimes

    name = next((n for n in runtimes.installed() if n != "torch"), None)
    if name is None:
        pytest.skip("no runtime besides torch is installed")
    from fastst.measure import psnr

    monkeypatch.setenv("FASTST_CACHE", str(tmp_path / "cache"))
    finish, frames = video._finish, {}
    for runtime in ("torch", name):
        styled = frames[runtime] = []  # each frame as stylized, before the codec (which would amplify
        # the runtimes' last-bit differences through its prediction from frame to frame)
        monkeypatch.setattr(
            video, "_finish", lambda s, *rest, styled=styled: styled.append(s) or finish(s, *rest)
        )
        video.stylize_video(
            model, pan, tmp_path / f"{runtime}.mp4", progress=False, runtime=runtime, precision="fp32"
        )
    a, b = torch.stack(frames["torch"]), torch.stack(frames[name])
    assert len(a) == 24 and psnr(a, b) > 40
    assert list((tmp_path / "cache" / "onnx").glob("*.onnx"))  # the network with the clip's statistics


def test_animated_gif_and_webp_in_gif_out(photo, tmp_path, capsys):
    im = Image.open(photo).convert("RGB").resize((96, 64))
    frames = [im.rotate(5 * i) for i in range(5)]
    durations = [100, 200, 100, 100, 50]
    frames[0].save(tmp_path / "in.gif", save_all=True, append_images=frames[1:], duration=durations)
    frames[0].save(tmp_path / "in.webp", save_all=True, append_images=frames[1:], duration=80)
    code, err = _cli(capsys, "--input", tmp_path / "in.gif", "--output", tmp_path / "out.gif")
    assert code == 0, err
    with Image.open(tmp_path / "out.gif") as out:
        assert out.n_frames == 5 and out.size == (96, 64)
        kept = []
        for i in range(out.n_frames):
            out.seek(i)
            kept.append(out.info["duration"])
        assert kept[:4] == durations[:4]
    code, err = _cli(capsys, "--input", tmp_path / "in.webp", "--output", tmp_path / "out.mp4")
    assert code == 0, err
    assert _streams(tmp_path / "out.mp4")["frames"] == 5


def test_a_folder_of_clips(pan, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (folder / name).write_bytes(pan.read_bytes())
    code, err = _cli(capsys, "--input", folder, "--output", tmp_path / "out", "--max-size", "128")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "b.mp4"]


def _audio_only(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 44100, 0
        c.mux(s.encode(f))
        c.mux(s.encode())


def _empty(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()  # a header and a video stream, no frames
        c.mux(s.encode())


def _odd(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=24)
        s.width, s.height, s.pix_fmt = 65, 49, "yuv444p"
        for i in range(2):
            f = av.VideoFrame.from_ndarray(np.zeros((49, 65, 3), np.uint8), format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode())


def _unknown_codec(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(2):
            f = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode())
    data = path.read_bytes()
    assert b"FMP4" in data
    path.write_bytes(data.replace(b"FMP4", b"QQQQ").replace(b"fmp4", b"qqqq"))


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("text.mp4", lambda p, pan: p.write_text("not a video\n"), "not a readable video"),
        ("cut.mp4", lambda p, pan: p.write_bytes(pan.read_bytes()[: len(pan.read_bytes()) // 2]), "video"),
        ("sound.mp4", lambda p, pan: _audio_only(p), "no video stream"),
        ("empty.mkv", lambda p, pan: _empty(p), "before its first video frame"),
        ("zero.mp4", lambda p, pan: p.write_bytes(b""), "empty"),
        ("odd.mkv", lambda p, pan: _odd(p), "odd side"),
        ("codec.avi", lambda p, pan: _unknown_codec(p), "codec"),
    ],
)
def test_bad_clips_get_one_line_and_leave_the_output_alone(name, make, message, pan, tmp_path, capsys):
    clip = tmp_path / name
    make(clip, pan)
    out = tmp_path / "out.mp4"
    code, err = _cli(capsys, "--input", clip, "--output", out)
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith("fastst: error:") and message in err, err
    assert not out.exists()
    out.write_bytes(b"kept")  # an existing output is not touched either
    code, err = _cli(capsys, "--input", clip, "--output", out, "--overwrite")
    assert code == 1 and out.read_bytes() == b"kept"


def test_a_truncated_clip_with_its_index_first_is_refused(pan, tmp_path, capsys):
    # an index at the front (faststart) lets the frames that remain decode; the clip is still refused
    whole = tmp_path / "whole.mp4"
    with av.open(str(pan)) as src, av.open(str(whole), "w", options={"movflags": "faststart"}) as dst:
        s = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = s
                dst.mux(packet)
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    code, err = _cli(capsys, "--input", cut, "--output", tmp_path / "out.mp4")
    assert code == 1 and len(err.splitlines()) == 1 and ("truncated" in err or "damaged" in err), err
    assert not (tmp_path / "out.mp4").exists()


def test_an_interrupted_run_leaves_nothing(pan, model, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = video.frame_to_array

    def interrupt_after_some(frame):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(frame)

    monkeypatch.setattr(video, "frame_to_array", interrupt_after_some)
    with pytest.raises(KeyboardInterrupt):
        video.stylize_video(model, pan, tmp_path / "out.mp4", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_painting_as_the_style_of_a_clip_at_another_scale(pan, tmp_path, capsys):
    # the one-pass path on video: a painting's network built once, frames stylized at half size and
    # brought back guided by each frame; the clip keeps its frames and size
    from fastst.anystyle import AnyStyleNet, model_file
    from fastst.io import atomic_torch_save

    torch.manual_seed(0)
    one_pass = tmp_path / "anystyle.pth"
    atomic_torch_save(model_file(AnyStyleNet(width=0.25, residual_blocks=1)), one_pass)
    painting = tmp_path / "painting.png"
    Image.effect_noise((64, 48), 70).convert("RGB").save(painting)
    out = tmp_path / "out.mp4"
    code = main(
        [
            "stylize",
            "--model",
            str(one_pass),
            "--style-image",
            str(painting),
            "--input",
            str(pan),
            "--output",
            str(out),
            "--style-scale",
            "2",
        ]
    )
    assert code == 0, capsys.readouterr().err
    after = _streams(out)
    assert after["frames"] == 24 and after["size"] == (320, 240)


@pytest.mark.parametrize("size", [(33, 47), (720, 1280), (5, 8)])
def test_padded_frames_share_a_size_of_whole_blocks_and_crop_back(size):
    frames = np.random.default_rng(0).random((3, 3, *size), dtype=np.float32)
    offsets = [(0, 0), (3, 1), (2, 3)]  # the grid's offsets: 0 to GRID - 1
    padded = anchor.padded(frames, offsets)
    h, w = padded.shape[-2:]
    assert (h, w) == anchor.padded_size(*size)
    assert h % anchor.PADDED_MULTIPLE == 0 and w % anchor.PADDED_MULTIPLE == 0
    assert h >= size[0] + anchor.GRID - 1 and w >= size[1] + anchor.GRID - 1
    assert np.array_equal(np.stack(anchor.cropped(padded, offsets, *size)), frames)
    # the reflection's first padded column mirrors the frame's second, as torch's reflect padding does
    a, b = offsets[1]
    if a:
        assert np.array_equal(padded[1, :, b : b + size[0], a - 1], frames[1, :, :, 1])
