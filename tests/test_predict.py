"""`tinycifar predict` and `load_image`, plus the pretrained-weights helper they share with
`evaluate`. Every image is made on the fly; no shipped weights are needed."""

from __future__ import annotations

import io
import re
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile
from safetensors.torch import save_file

import tinycifar.predict as pr
import tinycifar.pretrained as pt
from tinycifar import cli
from tinycifar.checkpoint import save_weights
from tinycifar.data import CLASSES
from tinycifar.errors import TinyCifarError
from tinycifar.inference import predict_logits
from tinycifar.models import create_model

CPU = torch.device("cpu")
RED = (255, 0, 0)


# ---------------------------------------------------------------- helpers


def _array(mode: str, w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """A random image of ``mode`` and size ``w``×``h``."""
    u8 = lambda *shape: rng.integers(0, 256, (h, w, *shape), dtype=np.uint8)  # noqa: E731
    if mode == "RGB":
        return Image.fromarray(u8(3))
    if mode == "RGBA":
        return Image.fromarray(u8(4))
    if mode == "L":
        return Image.fromarray(u8())
    if mode == "LA":
        return Image.merge("LA", [Image.fromarray(u8()), Image.fromarray(u8())])
    if mode == "P":
        return Image.fromarray(u8(3)).quantize(16)
    if mode == "1":
        return Image.fromarray(u8()).convert("1")
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.int32))
    if mode == "F":
        return Image.fromarray(rng.random((h, w), dtype=np.float32))
    if mode == "CMYK":
        return Image.fromarray(u8(3)).convert("CMYK")
    raise AssertionError(mode)


# Formats that can hold each mode, as Pillow writes them.
FORMATS_FOR = {
    "RGB": ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"],
    "RGBA": ["PNG", "TIFF", "WEBP"],
    "L": ["PNG", "JPEG", "BMP", "TIFF"],
    "LA": ["PNG"],
    "P": ["PNG", "GIF", "BMP"],
    "1": ["PNG", "BMP", "TIFF"],
    "I;16": ["PNG", "TIFF"],
    "I": ["TIFF"],
    "F": ["TIFF"],
    "CMYK": ["JPEG", "TIFF"],
}
EXT = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "GIF": "gif", "TIFF": "tif", "WEBP": "webp"}


def _save(im: Image.Image, folder: Path, name: str, fmt: str = "PNG", **kw) -> Path:
    path = folder / f"{name}.{EXT[fmt]}"
    im.save(path, fmt, **kw)
    return path


def _uniform(path_dir: Path, name: str, mode: str, color, fmt: str = "PNG", size=(40, 30)) -> Path:
    return _save(Image.new(mode, size, color), path_dir, name, fmt)


def _center(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t[:, 16, 16].tolist())


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of any size, built row-block by row-block: a
    20000×20000 one is ~50 KB and never exists in memory as pixels."""
    comp = zlib.compressobj(6)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    block = row * 500
    parts = [comp.compress(block) for _ in range(height // 500)]
    parts.append(comp.compress(row * (height % 500)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header is patched to claim ``width``×``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 32), (0, 0, 255)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.fixture
def spy_decodes(monkeypatch):
    """Sizes of every image Pillow actually decodes (ImageFile.load)."""
    sizes = []
    original = ImageFile.ImageFile.load

    def load(self):
        if self.tile:  # only a first load decodes
            sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return sizes


# ---------------------------------------------------------------- load_image: shapes and modes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(sorted(FORMATS_FOR)),
    data=st.data(),
    w=st.integers(1, 80),
    h=st.integers(1, 80),
    seed=st.integers(0, 2**32 - 1),
)
def test_load_image_always_gives_uint8_3x32x32(mode, data, w, h, seed):
    fmt = data.draw(st.sampled_from(FORMATS_FOR[mode]), label="format")
    im = _array(mode, w, h, np.random.default_rng(seed))
    with tempfile.TemporaryDirectory() as d:
        t = pr.load_image(_save(im, Path(d), "x", fmt))
    assert t.dtype == torch.uint8
    assert t.shape == (3, 32, 32)
    assert t.is_contiguous()


@pytest.mark.parametrize("size", [(5, 5), (32, 32), (1000, 700), (7, 3000), (3000, 7)])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_load_image_any_size(tmp_path, size, fmt):
    im = _array("RGB", *size, np.random.default_rng(0))
    t = pr.load_image(_save(im, tmp_path, "x", fmt))
    assert t.dtype == torch.uint8 and t.shape == (3, 32, 32)


@pytest.mark.parametrize(
    ("mode", "color", "fmt", "tol"),
    [
        ("RGB", RED, "PNG", 0),
        ("RGB", RED, "JPEG", 6),
        ("RGB", RED, "WEBP", 6),
        ("RGBA", RED + (255,), "PNG", 0),
        ("CMYK", (0, 255, 255, 0), "JPEG", 6),
        ("CMYK", (0, 255, 255, 0), "TIFF", 0),
    ],
)
def test_uniform_red_stays_red(tmp_path, mode, color, fmt, tol):
    t = pr.load_image(_uniform(tmp_path, "red", mode, color, fmt, size=(1000, 700)))
    assert (t[0].int() >= 255 - tol).all()
    assert (t[1:].int() <= tol).all()


def test_palette_red_stays_red(tmp_path):
    im = Image.new("P", (40, 30), 3)
    im.putpalette([0, 0, 0] * 3 + list(RED) + [0, 0, 0] * 252)
    for fmt in ("PNG", "GIF"):
        assert (pr.load_image(_save(im, tmp_path, "p", fmt)) == torch.tensor(RED).view(3, 1, 1)).all()


@pytest.mark.parametrize("under", [(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 255, 0)])
def test_fully_transparent_rgba_becomes_white(tmp_path, under):
    t = pr.load_image(_uniform(tmp_path, "clear", "RGBA", under))
    assert (t == 255).all()


def test_transparent_palette_and_gray_become_white(tmp_path):
    p = Image.new("P", (40, 30), 0)
    p.putpalette(list(RED) + [0, 0, 0] * 255)
    p_path = _save(p, tmp_path, "p", transparency=0)
    l_path = _save(Image.new("L", (40, 30), 0), tmp_path, "l", transparency=0)
    la_path = _save(Image.new("LA", (40, 30), (0, 0)), tmp_path, "la")
    for path in (p_path, l_path, la_path):
        assert (pr.load_image(path) == 255).all(), path


def test_half_transparent_black_on_white_is_mid_gray(tmp_path):
    t = pr.load_image(_uniform(tmp_path, "half", "RGBA", (0, 0, 0, 128)))
    assert (t.int() - 127).abs().max() <= 1


@pytest.mark.parametrize(
    ("mode", "value", "fmt", "expected"),
    [
        ("I;16", 65535, "PNG", 255),
        ("I;16", 32768, "PNG", 128),  # scaled, not clipped to 255
        ("I;16", 0, "PNG", 0),
        ("I", 32768, "TIFF", 128),
        ("F", 0.5, "TIFF", 128),
        ("1", 1, "PNG", 255),
        ("L", 77, "PNG", 77),
    ],
)
def test_gray_modes_map_to_the_right_gray(tmp_path, mode, value, fmt, expected):
    t = pr.load_image(_uniform(tmp_path, "g", mode, value, fmt))
    assert (t.int() - expected).abs().max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    # Stored 64 wide × 32 high, left half red, right half blue; orientation 6 means
    # "rotate 90° clockwise to display": upright it is 32 × 64, red on top, blue below.
    im = Image.new("RGB", (64, 32), (0, 0, 255))
    im.paste(RED, (0, 0, 32, 32))
    exif = Image.Exif()
    exif[0x0112] = 6
    t = pr.load_image(_save(im, tmp_path, "rotated", "JPEG", exif=exif, quality=95))
    top, bottom = t[:, 3, 16].int(), t[:, 28, 16].int()
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


@pytest.mark.parametrize("wide", [True, False])
def test_center_crop_not_pad_or_squash(tmp_path, wide):
    # Three bands red | green | blue along the long side: the centre crop is all green.
    bands = [RED, (0, 255, 0), (0, 0, 255)]
    im = Image.new("RGB", (96, 32) if wide else (32, 96))
    for i, c in enumerate(bands):
        im.paste(c, (32 * i, 0, 32 * i + 32, 32) if wide else (0, 32 * i, 32, 32 * i + 32))
    t = pr.load_image(_save(im, tmp_path, "bands"))
    assert (t[1] == 255).all() and (t[0] <= 2).all() and (t[2] <= 2).all()


def test_downscale_is_antialiased(tmp_path):
    # 1-pixel black/white stripes shrunk 8x average to grey; nearest-neighbour would not.
    a = np.zeros((256, 256), np.uint8)
    a[:, ::2] = 255
    t = pr.load_image(_save(Image.fromarray(a), tmp_path, "stripes"))
    assert (t.int() - 128).abs().max() <= 8


# ---------------------------------------------------------------- load_image: bad files


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    good_png = _save(_array("RGB", 200, 150, np.random.default_rng(1)), folder, "good")
    good_jpg = _save(_array("RGB", 200, 150, np.random.default_rng(2)), folder, "goodj", "JPEG")
    files = {}
    (folder / "empty.png").write_bytes(b"")
    files["empty"] = (folder / "empty.png", "empty file")
    (folder / "notes.jpg").write_text("these are not the pixels you are looking for\n")
    files["text"] = (folder / "notes.jpg", "not an image")
    png = good_png.read_bytes()
    (folder / "trunc.png").write_bytes(png[: len(png) // 2])
    files["truncated png"] = (folder / "trunc.png", "truncated")
    jpg = good_jpg.read_bytes()
    (folder / "trunc.jpg").write_bytes(jpg[: len(jpg) // 2])
    files["truncated jpeg"] = (folder / "trunc.jpg", "truncated")
    (folder / "header_only.png").write_bytes(png[:8])
    files["header only"] = (folder / "header_only.png", "not an image")
    files["missing"] = (folder / "missing.png", "no such file")
    (folder / "a_folder.png").mkdir()
    files["folder"] = (folder / "a_folder.png", "folder")
    (folder / "doc.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    files["eps (never run Ghostscript)"] = (folder / "doc.eps", "not an image")
    return files


def test_bad_files_give_clear_errors(tmp_path):
    for kind, (path, words) in _bad_files(tmp_path).items():
        with pytest.raises(TinyCifarError) as e:
            pr.load_image(path)
        msg = str(e.value)
        assert msg.startswith(f"{path}: "), (kind, msg)
        assert words in msg, (kind, msg)
        assert "\n" not in msg


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    path.write_bytes(_bilevel_png(20000, 20000))
    return path


def test_huge_png_fixture_is_a_real_png(huge_png, monkeypatch):
    assert huge_png.stat().st_size < 1_000_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with Image.open(huge_png) as im:
        assert im.size == (20000, 20000) and im.mode == "1"
    # ... and its pixel data is all there: streamed, never held as 50 MB.
    data = huge_png.read_bytes()
    idat = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[idat - 4 : idat])
    d, total, stream = zlib.decompressobj(), 0, data[idat + 4 : idat + 4 + length]
    while stream:
        total += len(d.decompress(stream, 1 << 20))
        stream = d.unconsumed_tail
    assert d.eof and total == 20000 * (1 + 20000 // 8)


@pytest.mark.parametrize("pillow_limit", ["default", "disabled"])
def test_huge_png_is_refused_without_decoding(huge_png, spy_decodes, monkeypatch, pillow_limit):
    # With Pillow's limit, Pillow refuses at open; with it disabled (as some apps do),
    # our own MAX_PIXELS still refuses before a byte of pixel data is decoded.
    if pillow_limit == "disabled":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(
        TinyCifarError, match=r"huge\.png: refused: the image (is too large|is 20000×20000 .* over the)"
    ):
        pr.load_image(huge_png)
    assert spy_decodes == []


def test_huge_jpeg_is_refused_without_decoding(tmp_path, spy_decodes):
    path = tmp_path / "huge.jpg"
    path.write_bytes(_jpeg_claiming(20000, 20000))
    with pytest.raises(TinyCifarError, match="refused"):
        pr.load_image(path)
    assert spy_decodes == []


def test_pixel_limit_applies_to_what_would_be_decoded(tmp_path, monkeypatch, spy_decodes):
    # Pillow's own check alone is not enough: below twice its limit it only warns.
    monkeypatch.setattr(pr, "MAX_PIXELS", 1_000_000)
    path = tmp_path / "big.png"
    path.write_bytes(_bilevel_png(1200, 1000))
    with pytest.raises(TinyCifarError, match=r"1200×1000 .* over the 1-megapixel limit"):
        pr.load_image(path)
    assert spy_decodes == []


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, monkeypatch, spy_decodes):
    monkeypatch.setattr(pr, "MAX_PIXELS", 1_000_000)
    path = _uniform(tmp_path, "photo", "RGB", RED, "JPEG", size=(2000, 1500))
    t = pr.load_image(path)  # 3 MP on disk, but drafted to 1/8 scale: allowed
    assert spy_decodes and all(w * h <= 1_000_000 for w, h in spy_decodes)
    assert min(spy_decodes[0]) >= 64  # still well above 32 for the final resize
    assert (t[0] >= 249).all() and (t[1:] <= 6).all()


# ---------------------------------------------------------------- weights


def _varied_tinynet() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("tinynet")
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    return model


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "model.safetensors"
    save_weights(_varied_tinynet(), path, {"model": "tinynet"})
    return path


def test_pretrained_path_is_inside_the_package():
    path = pt.pretrained_path("tinynet")
    assert path.name == "tinynet.safetensors"
    assert path.parent.name == "weights"
    assert path.parent.parent == Path(pr.__file__).parent


@pytest.mark.parametrize("name", ["nope", "../tinynet", ""])
def test_pretrained_path_rejects_unknown_models(name):
    with pytest.raises(TinyCifarError, match="unknown model"):
        pt.pretrained_path(name)


def test_load_model_eval_channels_last_and_loaded(weights):
    model = pt.load_model("tinynet", weights, "cpu")
    assert not model.training
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert conv.weight.device.type == "cpu"
    expected = _varied_tinynet().state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, expected[k]), k


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_weights_load_widened(tmp_path, half):
    """Weights halved to ship smaller load into the fp32 network (integer counters stay
    integers); only integer or fp8 floats are refused (test_bad_input)."""
    path = tmp_path / "half.safetensors"
    state = {k: v.to(half) if v.is_floating_point() else v for k, v in _varied_tinynet().state_dict().items()}
    save_file(state, str(path), metadata={"model": "tinynet"})
    model = pt.load_model("tinynet", path, "cpu")
    for k, v in model.state_dict().items():
        assert v.dtype == _varied_tinynet().state_dict()[k].dtype, k
        assert torch.equal(v, state[k].to(v.dtype)), k


def test_missing_shipped_weights_say_pass_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(pt, "pretrained_path", lambda name: tmp_path / f"{name}.safetensors")
    with pytest.raises(TinyCifarError, match=r"no pretrained weights ship for model 'tinynet'.*--weights"):
        pt.load_model("tinynet", None, "cpu")


def test_shipped_weights_are_used_when_present(weights, monkeypatch):
    monkeypatch.setattr(pt, "pretrained_path", lambda name: weights)
    model = pt.load_model("tinynet", None, "cpu")
    assert torch.equal(model.classifier.weight, _varied_tinynet().classifier.weight)


def test_wrong_architecture_weights_do_not_fit(tmp_path):
    path = tmp_path / "seed.safetensors"
    save_weights(create_model("seed"), path, {})
    with pytest.raises(TinyCifarError, match="do not fit"):
        pt.load_model("tinynet", path, "cpu")


def test_weights_of_another_model_suggest_that_model(tmp_path):
    path = tmp_path / "seed.safetensors"
    save_weights(create_model("seed"), path, {"model": "seed"})
    with pytest.raises(TinyCifarError, match=r"'seed', not 'tinynet'.*--model seed"):
        pt.load_model("tinynet", path, "cpu")
    pt.load_model("seed", path, "cpu")  # and the suggestion works


def test_unreadable_weights(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(TinyCifarError, match="not a readable safetensors"):
        pt.load_model("tinynet", path, "cpu")


# ---------------------------------------------------------------- predict()


def test_predict_is_one_forward_pass_and_matches_logits(weights, monkeypatch):
    model = pt.load_model("tinynet", weights, CPU)
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8, generator=g)
    calls = []
    handle = model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        result = pr.predict(model, images, CPU, top_k=3)
    finally:
        handle.remove()
    assert calls == [7]
    probs = predict_logits(model, images, CPU).softmax(1)
    assert len(result) == 7
    for row, p in zip(result, probs):
        assert [c for c, _ in row] == [CLASSES[i] for i in p.argsort(descending=True)[:3]]
        assert [q for _, q in row] == pytest.approx(p.sort(descending=True).values[:3].tolist())


def test_predict_top_k_bounds(weights):
    model = pt.load_model("tinynet", weights, CPU)
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    full = pr.predict(model, images, CPU, top_k=10)
    assert sum(p for _, p in full[0]) == pytest.approx(1.0, abs=1e-5)
    assert sorted(c for c, _ in full[0]) == sorted(CLASSES)
    assert pr.predict(model, images[:0], CPU) == []
    for k in (0, 11):
        with pytest.raises(TinyCifarError, match="top-k"):
            pr.predict(model, images, CPU, top_k=k)


# ---------------------------------------------------------------- the command


LINE = re.compile(r"^(?P<name>.+): (?P<rest>\w+ [01]\.\d\d(?:, \w+ [01]\.\d\d)*)$")


def _parse(out: str) -> dict[str, list[tuple[str, float]]]:
    result = {}
    for line in out.strip().splitlines():
        m = LINE.match(line)
        assert m, line
        result[m["name"]] = [(c, float(p)) for c, p in (item.split() for item in m["rest"].split(", "))]
    return result


def test_cli_predict_good_files(tmp_path, capsys, weights):
    paths = [
        str(_save(_array(mode, 50 + 10 * i, 40, np.random.default_rng(i)), tmp_path, f"img{i}", fmt))
        for i, (mode, fmt) in enumerate([("RGB", "PNG"), ("RGBA", "PNG"), ("L", "JPEG"), ("CMYK", "TIFF")])
    ]
    rc = cli.main(["predict", *paths, "--weights", str(weights), "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.err == ""
    rows = _parse(captured.out)
    assert list(rows) == paths  # every file, in the order given
    model = pt.load_model("tinynet", weights, CPU)
    probs = predict_logits(model, torch.stack([pr.load_image(p) for p in paths]), CPU).softmax(1)
    for path, p in zip(paths, probs):
        row = rows[path]
        assert len(row) == 3
        assert [c for c, _ in row] == [CLASSES[i] for i in p.argsort(descending=True)[:3]]
        assert [q for _, q in row] == pytest.approx(p.sort(descending=True).values[:3].tolist(), abs=0.005)


def test_cli_predict_bad_files_do_not_stop_the_others(tmp_path, capsys, weights, huge_png):
    bad = _bad_files(tmp_path)
    bad["huge"] = (huge_png, "too large")
    good = [str(tmp_path / "good.png"), str(tmp_path / "goodj.jpg")]
    args = [good[0]] + [str(p) for p, _ in bad.values()] + [good[1]]
    rc = cli.main(["predict", *args, "--weights", str(weights), "--device", "cpu", "--top-k", "2"])
    captured = capsys.readouterr()
    assert rc == 1
    rows = _parse(captured.out)
    assert list(rows) == good
    assert all(len(r) == 2 for r in rows.values())
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == len(bad)
    for line, (kind, (path, words)) in zip(err_lines, bad.items()):
        assert line.startswith(f"tinycifar predict: error: {path}: "), (kind, line)
        assert words in line, (kind, line)


def test_cli_predict_all_bad_exits_1(tmp_path, capsys, weights):
    (tmp_path / "empty.png").write_bytes(b"")
    rc = cli.main(["predict", str(tmp_path / "empty.png"), "--weights", str(weights), "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 1
    assert captured.out == ""
    assert "empty.png: empty file" in captured.err


def test_cli_predict_wrong_architecture_exits_2(tmp_path, capsys):
    path = tmp_path / "seed.safetensors"
    save_weights(create_model("seed"), path, {})
    img = _uniform(tmp_path, "red", "RGB", RED)
    rc = cli.main(["predict", str(img), "--weights", str(path), "--device", "cpu"])
    captured = capsys.readouterr()
    assert rc == 2
    assert "do not fit" in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("k", ["0", "11", "x"])
def test_cli_predict_rejects_bad_top_k(tmp_path, weights, k):
    with pytest.raises(SystemExit) as e:
        cli.main(["predict", "x.png", "--weights", str(weights), "--top-k", k])
    assert e.value.code == 2
