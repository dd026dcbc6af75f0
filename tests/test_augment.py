import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycifar import augment


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def ramp(b=8, c=3, h=32, w=32):
    return torch.arange(b * c * h * w, dtype=torch.float32).reshape(b, c, h, w)


def test_flip_mirrors_about_half_and_keeps_the_rest():
    x = ramp(64)
    y = augment.random_flip(x, gen())
    flipped = [torch.equal(y[i], x[i].flip(2)) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f != k for f, k in zip(flipped, kept))  # each image exactly one of the two
    assert 16 < sum(flipped) < 48


@given(pad=st.integers(1, 6), seed=st.integers(0, 1000))
@settings(max_examples=25, deadline=None)
def test_translate_is_a_crop_of_the_reflect_padded_image(pad, seed):
    x = ramp(4, 3, 12, 12)
    y = augment.random_translate(x, pad, gen(seed))
    padded = torch.nn.functional.pad(x, (pad,) * 4, mode="reflect")
    assert y.shape == x.shape
    for i in range(4):
        crops = [padded[i, :, dy:dy + 12, dx:dx + 12] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
        assert any(torch.equal(y[i], c) for c in crops)


def test_translate_moves_images_by_different_offsets():
    x = ramp(32)
    y = augment.random_translate(x, 4, gen())
    unchanged = sum(torch.equal(y[i], x[i]) for i in range(32))
    assert unchanged < 8  # only the (0, 0) shift leaves an image as it was: p = 1/81
    assert augment.random_translate(x, 0, gen()) is x


def test_cutout_erases_one_clipped_square_with_the_mean():
    x = torch.ones(200, 3, 32, 32)
    y = augment.cutout(x, 16, gen())
    erased = (y == 0).all(1)  # (B, H, W): all channels erased together
    assert ((y == 0) | (y == 1)).all()
    areas = erased.flatten(1).sum(1)
    assert areas.max() == 256 and areas.min() >= 64  # full square inside, clipped at corners to ≥ 8×8
    for i in range(20):
        rows, cols = erased[i].nonzero(as_tuple=True)
        assert (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) == areas[i]  # a rectangle
    assert torch.equal(augment.cutout(x, 16, gen(), p=0.0), x)


def test_shift_scale_rotate_identity_when_not_applied_and_warps_when_applied():
    x = torch.randn(16, 3, 32, 32)
    same = augment.shift_scale_rotate(x, gen(), p=0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    warped = augment.shift_scale_rotate(x, gen(), p=1.0)
    assert warped.shape == x.shape
    assert all(not torch.allclose(warped[i], x[i], atol=1e-3) for i in range(16))


def test_shift_only_moves_dots_by_at_most_the_shift():
    x = torch.zeros(64, 1, 32, 32)
    x[:, 0, 16, 16] = 1.0
    # shift=0.0625 of 32 px is 2 px at most; no scale, no rotation.
    y = augment.shift_scale_rotate(x, gen(3), shift=0.0625, scale=0.0, rotate=0.0, p=1.0)
    # Centre of mass of each image's dot (bilinear sampling spreads it over 4 pixels).
    grid = torch.arange(32.0)
    mass = y[:, 0].sum((1, 2))
    rows = (y[:, 0].sum(2) * grid).sum(1) / mass
    cols = (y[:, 0].sum(1) * grid).sum(1) / mass
    moved = ((rows - 16).abs() + (cols - 16).abs())
    assert ((rows - 16).abs() <= 2.01).all() and ((cols - 16).abs() <= 2.01).all()
    assert (moved > 0.1).float().mean() > 0.9  # nearly every image really moved
    assert (mass > 0.5).all()  # the dot survives interpolation


def test_same_generator_seed_same_augmentation():
    x = torch.randn(8, 3, 32, 32)
    a = augment.cutout(augment.random_translate(x, 2, gen(5)), 8, gen(6))
    b = augment.cutout(augment.random_translate(x, 2, gen(5)), 8, gen(6))
    assert torch.equal(a, b)
