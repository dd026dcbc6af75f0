"""``tinycifar predict IMAGE...``: classify image files with a trained model.

Each file becomes one 32×32 RGB image the way torchvision's ``Resize(32)`` +
``CenterCrop(32)`` would make it (see :func:`load_image`); all good files then go through
the model in one forward pass. A bad file costs one line on stderr, not the run.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from tinycifar.data import CLASSES
from tinycifar.errors import TinyCifarError
from tinycifar.pretrained import Forward, torch_forward
from tinycifar.untrusted import read_bytes

SIZE = 32
# The most pixels we ever decode: Pillow's own decompression-bomb threshold (~89.5 MP,
# ~360 MB as RGBA). JPEGs are decoded at reduced scale first (``Image.draft``), so even a
# 200-megapixel photo stays far below it; other formats must fit as they are.
MAX_PIXELS = 89_478_485
# A 200-megapixel JPEG is ~60 MB; larger files are not photos a classifier of 32×32 needs.
MAX_FILE_BYTES = 128 << 20
# JPEGs are DCT-downscaled (by 2, 4 or 8) while keeping both sides at least this long,
# so the final antialiased resize still has a few source pixels per output pixel.
_DRAFT_SIDE = 2 * SIZE
# Formats we open; others (EPS runs Ghostscript, for one) are refused as "not an image".
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "TGA", "ICO", "AVIF")
_WHITE = (255, 255, 255)


def _problem(path: str | os.PathLike[str], what: str) -> TinyCifarError:
    return TinyCifarError(f"{os.fspath(path)}: {what}")


def load_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read any image file as a uint8 ``(3, 32, 32)`` RGB tensor, as CIFAR-10 images are.

    - Orientation: the EXIF orientation tag is applied, so the photo is upright as viewers
      show it.
    - Modes: transparency (RGBA, LA, P or L/RGB with a transparent colour) is composited on
      white; grayscale, 1-bit, palette, CMYK and the rest become RGB; 16/32-bit grayscale
      (I;16, I) is scaled from 0..65535 and float (F) from 0..1 when its values fit, rather
      than clipped.
    - Geometry: the shorter side is resized to 32 and the centre 32×32 kept, like
      torchvision's ``Resize(32)`` + ``CenterCrop(32)``. CIFAR-10 images are square crops
      filling the frame with the object, so this matches the training data better than
      padding (black or white bars the model never saw) or squashing (distorted shapes).
      It is done in one antialiased bicubic resize of the centre square.
    - Memory: a file whose pixels would exceed :data:`MAX_PIXELS` when decoded is refused
      before decoding; JPEGs are decoded at 1/2, 1/4 or 1/8 scale when large.

    Raises :class:`TinyCifarError` naming the file for a missing, empty, truncated, too
    large or non-image file.
    """
    p = Path(path)
    try:
        p.stat()
    except FileNotFoundError:
        raise _problem(path, "no such file") from None
    except OSError as e:
        raise _problem(path, f"cannot read it ({e.strerror or e})") from None
    if p.is_dir():
        raise _problem(path, "is a folder, not an image file")
    data = read_bytes(p, MAX_FILE_BYTES, f"image file {os.fspath(path)}", "pass a PNG or JPEG photo")
    if not data:
        raise _problem(path, "empty file (0 bytes), not an image")
    with warnings.catch_warnings():
        # Between 1x and 2x Pillow's limit it only warns; our own MAX_PIXELS check decides.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=_formats()) as im:
                return _decode(im, path)
        except TinyCifarError:
            raise
        except Image.DecompressionBombError as e:
            raise _problem(
                path,
                f"refused: the image is too large to decode safely ({e}); "
                f"shrink it below {MAX_PIXELS / 1e6:.0f} megapixels first",
            ) from None
        except UnidentifiedImageError:
            raise _problem(path, f"not an image, or not a format tinycifar reads ({', '.join(_formats())})") from None
        except PermissionError as e:
            raise _problem(path, f"cannot read it ({e.strerror or e})") from None
        except MemoryError:
            raise _problem(path, "not enough memory to decode it") from None
        except Exception as e:  # noqa: BLE001 - a corrupt file fails in many ways, all alike to the user
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise _problem(path, f"truncated or corrupt image data ({detail})") from None


def _formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


def _decode(im: ImageFile.ImageFile, path: str | os.PathLike[str]) -> torch.Tensor:
    w, h = im.size
    if w < 1 or h < 1:
        raise _problem(path, f"the image has no pixels ({w}×{h})")
    im.draft(None, (_DRAFT_SIDE, _DRAFT_SIDE))  # JPEG only: decode at reduced scale
    dw, dh = im.size
    if dw * dh > MAX_PIXELS:
        raise _problem(
            path,
            f"refused: the image is {w}×{h} ({w * h / 1e6:.0f} megapixels), over the "
            f"{MAX_PIXELS / 1e6:.0f}-megapixel limit; shrink it first",
        )
    im.load()
    upright: Image.Image = im
    try:
        upright = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a broken EXIF block should not cost the prediction
        pass
    rgb = _to_rgb(upright, path)
    w, h = rgb.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    small = rgb.resize(
        (SIZE, SIZE), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side), reducing_gap=3.0
    )
    return torch.from_numpy(np.asarray(small, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def _to_rgb(im: Image.Image, path: str | os.PathLike[str]) -> Image.Image:
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        return _wide_gray(im)
    transparent = "transparency" in im.info or mode in ("RGBA", "RGBa", "LA", "La", "PA")
    if transparent:
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE + (255,)), rgba).convert("RGB")
    if mode == "RGB":
        return im
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise _problem(path, f"unsupported image mode {mode} ({e})") from None


def _wide_gray(im: Image.Image) -> Image.Image:
    """16/32-bit integer or float grayscale → 8-bit RGB, scaled rather than clipped."""
    a = np.asarray(im).astype(np.float64)
    if im.mode == "F":
        top = 1.0 if a.size and np.nanmax(a) <= 1.0 else 255.0
    else:
        top = 65535.0 if a.size and a.max() > 255 else 255.0
    g = np.clip(np.nan_to_num(a) * (255.0 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(g, "L").convert("RGB")


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, device: torch.device | str = "cpu", top_k: int = 3, precision: str = "fp32"
) -> list[list[tuple[str, float]]]:
    """Top-``k`` ``(class name, probability)`` pairs, most likely first, for each uint8
    image of ``(N, 3, 32, 32)``; all images in one forward pass."""
    return top_classes(torch_forward(model, device, max(1, len(images)), precision), images, top_k)


def top_classes(forward: Forward, images: torch.Tensor, top_k: int = 3) -> list[list[tuple[str, float]]]:
    """:func:`predict` for any forward (a PyTorch model's or an ONNX file's)."""
    if not 1 <= top_k <= len(CLASSES):
        raise TinyCifarError(f"top-k must be between 1 and {len(CLASSES)} (got {top_k})")
    if len(images) == 0:
        return []
    probs, idx = forward(images).softmax(1).topk(top_k, dim=1)
    return [[(CLASSES[i], p) for i, p in zip(row_i, row_p)] for row_i, row_p in zip(idx.tolist(), probs.tolist())]
