import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycifar import augment
from tinycifar.augment import Augmentation
from tinycifar.inference import prepare


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def ramp(b=8, c=3, h=32, w=32):
    return torch.arange(b * c * h * w, dtype=torch.float32).reshape(b, c, h, w)


def draws(n, seed=0, **kinds):
    """One epoch's draws of an Augmentation with only ``kinds`` on, in image order."""
    aug = Augmentation(n, seed, **{"flip": False, **kinds})
    d = aug.draw(0, gen(seed), torch.device("cpu"))
    return aug, d


def test_flip_mirrors_about_half_and_keeps_the_rest():
    x = ramp(64)
    aug, d = draws(64, flip=True)
    y = augment.flip(x, d.flips)
    flipped = [torch.equal(y[i], x[i].flip(2)) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f != k for f, k in zip(flipped, kept))  # each image exactly one of the two
    assert 16 < sum(flipped) < 48


@given(pad=st.integers(1, 6), seed=st.integers(0, 1000))
@settings(max_examples=25, deadline=None)
def test_translate_is_a_crop_of_the_reflect_padded_image(pad, seed):
    x = ramp(4, 3, 12, 12)
    _, d = draws(4, seed, translate=pad)
    assert d.shifts.min() >= 0 and d.shifts.max() <= 2 * pad
    y = augment.translate(x, pad, d.shifts)
    padded = torch.nn.functional.pad(x, (pad,) * 4, mode="reflect")
    assert y.shape == x.shape
    for i in range(4):
        dy, dx = d.shifts[i].tolist()
        assert torch.equal(y[i], padded[i, :, dy : dy + 12, dx : dx + 12])


def reference_batch(images, d, pad, cutout_size=0):
    """The batch as the transforms' definitions say, one after the other on normalised
    floats: select, convert, reflect-pad, crop, mirror, cut out."""
    x = prepare(images[d.order], torch.device("cpu")).contiguous()
    padded = torch.nn.functional.pad(x, (pad,) * 4, mode="reflect")
    h, w = x.shape[2:]
    out = torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(d.shifts.tolist())])
    out = torch.stack([o.flip(2) if f else o for o, f in zip(out, d.flips.tolist())])
    return augment.cutout(out, cutout_size, d.centres) if cutout_size else out


@pytest.mark.parametrize("pad, cutout_size", [(2, 0), (4, 8), (1, 0), (16, 0)])
def test_the_uint8_training_batch_equals_the_transforms_applied_in_turn(pad, cutout_size):
    # The training path folds selection, padding, cropping and mirroring into one gather on
    # the uint8 set: it must give exactly what applying them one by one gives.
    g = gen(7)
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (40,), generator=g)
    aug = Augmentation(40, seed=1, flip=True, alternating=True, translate=pad, cutout=cutout_size)
    d = aug.draw(1, gen(2), torch.device("cpu"))[5:30]
    x, target, y = aug.batch(images, labels, d, torch.device("cpu"))
    assert torch.equal(x, reference_batch(images, d, pad, cutout_size))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, labels[d.order]) and torch.equal(target, y)
    assert 0 < int(d.flips.sum()) < len(d.flips) and len(d.shifts.unique()) > 2  # both kinds exercised


def test_the_training_batch_without_translation_is_selected_and_mirrored():
    images = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8, generator=gen(3))
    aug = Augmentation(20, seed=0, flip=True)
    d = aug.draw(0, gen(4), torch.device("cpu"))
    x = aug.batch(images, torch.zeros(20, dtype=torch.long), d, torch.device("cpu"))[0]
    expected = prepare(
        torch.stack([images[i].flip(2) if f else images[i] for i, f in zip(d.order.tolist(), d.flips.tolist())]),
        torch.device("cpu"),
    )
    assert torch.equal(x, expected) and 0 < int(d.flips.sum()) < 20


def test_translate_refuses_a_pad_as_large_as_the_image():
    with pytest.raises(ValueError, match="reflect padding"):
        augment.translate(ramp(2, 3, 8, 8), 8, torch.zeros(2, 2, dtype=torch.long))


def test_translate_moves_images_by_different_offsets():
    x = ramp(32)
    _, d = draws(32, translate=4)
    y = augment.translate(x, 4, d.shifts)
    unchanged = sum(torch.equal(y[i], x[i]) for i in range(32))
    assert unchanged < 8  # only the (0, 0) shift leaves an image as it was: p = 1/81
    assert augment.translate(x, 0, d.shifts) is x


def test_cutout_erases_one_clipped_square_with_the_mean():
    x = torch.ones(200, 3, 32, 32)
    _, d = draws(200, cutout=16)
    y = augment.cutout(x, 16, d.centres)
    erased = (y == 0).all(1)  # (B, H, W): all channels erased together
    assert ((y == 0) | (y == 1)).all()
    areas = erased.flatten(1).sum(1)
    assert areas.max() == 256 and areas.min() >= 64  # full square inside, clipped at corners to ≥ 8×8
    for i in range(20):
        rows, cols = erased[i].nonzero(as_tuple=True)
        assert (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) == areas[i]  # a rectangle


def test_shift_scale_rotate_identity_at_zero_and_warps_about_half():
    x = torch.randn(64, 3, 32, 32)
    torch.testing.assert_close(augment.shift_scale_rotate(x, torch.zeros(64, 4)), x, atol=1e-5, rtol=0)
    _, d = draws(64, ssr=True)
    warped = augment.shift_scale_rotate(x, d.warps)
    moved = sum(not torch.allclose(warped[i], x[i], atol=1e-3) for i in range(64))
    assert 16 < moved < 48  # SSR_P = 0.5 of the images
    assert moved == int((d.warps != 0).any(1).sum())


def test_shift_only_moves_dots_by_at_most_the_shift():
    x = torch.zeros(64, 1, 32, 32)
    x[:, 0, 16, 16] = 1.0
    # shift=0.0625 of 32 px is 2 px at most; no scale, no rotation.
    u = torch.rand(64, 4, generator=gen(3)) * 2 - 1
    y = augment.shift_scale_rotate(x, u, shift=0.0625, scale=0.0, rotate=0.0)
    # Centre of mass of each image's dot (bilinear sampling spreads it over 4 pixels).
    grid = torch.arange(32.0)
    mass = y[:, 0].sum((1, 2))
    rows = (y[:, 0].sum(2) * grid).sum(1) / mass
    cols = (y[:, 0].sum(1) * grid).sum(1) / mass
    moved = (rows - 16).abs() + (cols - 16).abs()
    assert ((rows - 16).abs() <= 2.01).all() and ((cols - 16).abs() <= 2.01).all()
    assert (moved > 0.1).float().mean() > 0.9  # nearly every image really moved
    assert (mass > 0.5).all()  # the dot survives interpolation


def test_an_epoch_is_a_permutation_and_the_same_generator_draws_the_same_epoch():
    aug = Augmentation(500, seed=1, flip=True, alternating=True, translate=2, ssr=True, cutout=8)
    a, b = (aug.draw(3, gen(5), torch.device("cpu")) for _ in range(2))
    assert torch.equal(a.order.sort().values, torch.arange(500))
    for name in ("order", "flips", "shifts", "warps", "centres"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.order, aug.draw(3, gen(6), torch.device("cpu")).order)


def test_batch_rows_of_the_draws_augment_the_batch():
    x = torch.randn(10, 3, 32, 32)
    aug = Augmentation(10, seed=0, flip=True, translate=2, cutout=8)
    d = aug.draw(0, gen(), torch.device("cpu"))
    whole = aug(x[d.order], d)
    halves = torch.cat([aug(x[d[s].order], d[s]) for s in (slice(0, 5), slice(5, 10))])
    assert torch.equal(whole, halves)
    assert whole.is_contiguous(memory_format=torch.channels_last)
    assert d[2:7].order.shape == (5,) and d[2:7].shifts.shape == (5, 2)


def test_alternating_flip_mirrors_each_image_every_other_epoch():
    aug = Augmentation(50, seed=3, flip=True, alternating=True)
    mask = [None] * 3
    for e in range(3):
        d = aug.draw(e, gen(e), torch.device("cpu"))
        mask[e] = torch.empty(50, dtype=torch.bool)
        mask[e][d.order] = d.flips  # by image, whatever the order
    assert torch.equal(mask[0], mask[2]) and torch.equal(mask[0], ~mask[1])
    assert 10 < int(mask[0].sum()) < 40
    again = Augmentation(50, seed=3, flip=True, alternating=True).draw(0, gen(0), torch.device("cpu"))
    assert torch.equal(again.flips, aug.draw(0, gen(0), torch.device("cpu")).flips)  # a resumed run


def test_mixup_blends_each_image_with_its_mirror_in_the_batch_and_its_label_alike():
    x, labels = ramp(6), torch.arange(6)
    _, d = draws(6, mixup=0.4)
    y, target = augment.mix(x, labels, d.lams, d.cut, d.boxes)
    assert d.cut is None and d.boxes is None and ((d.lams > 0) & (d.lams < 1)).all()
    for i in range(6):
        lam, j = d.lams[i], 5 - i
        assert torch.allclose(y[i], lam * x[i] + (1 - lam) * x[j])
        expect = torch.zeros(10)
        expect[i] += lam
        expect[j] += 1 - lam
        assert torch.allclose(target[i], expect)


@given(seed=st.integers(0, 1000))
@settings(max_examples=20, deadline=None)
def test_cutmix_pastes_one_box_and_the_target_counts_its_pixels(seed):
    x, labels = ramp(4), torch.tensor([1, 2, 3, 4])
    _, d = draws(4, seed, cutmix=1.0)
    y, target = augment.mix(x, labels, d.lams, d.cut, d.boxes)
    assert d.cut.all()
    for i in range(4):
        own = (y[i] == x[i]).all(0)  # pixels kept from the image itself
        pasted = (y[i] == x[3 - i]).all(0)
        assert (own ^ pasted).all()  # every pixel is one or the other
        rows, cols = (~own).nonzero(as_tuple=True)
        if len(rows):  # the pasted pixels form one rectangle
            assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert target[i, labels[i]] == pytest.approx(own.float().mean().item())
        assert target[i].sum() == pytest.approx(1.0)


def test_mixup_and_cutmix_together_split_the_images_and_repeat_on_a_resume():
    aug = Augmentation(2000, seed=0, flip=False, mixup=0.2, cutmix=1.0)
    a, b = (aug.draw(4, gen(9), torch.device("cpu")) for _ in range(2))
    assert 0.45 < a.cut.float().mean() < 0.55
    assert torch.equal(a.lams, b.lams) and torch.equal(a.cut, b.cut) and torch.equal(a.boxes, b.boxes)
    # Beta(0.2, 0.2) piles up near 0 and 1; Beta(1, 1) is uniform.
    mixup_lams, cutmix_lams = a.lams[~a.cut], a.lams[a.cut]
    assert ((mixup_lams < 0.1) | (mixup_lams > 0.9)).float().mean() > 0.5
    assert 0.15 < ((cutmix_lams < 0.2).float().mean()) < 0.25


def test_mixup_ramp_starts_unmixed_and_widens_the_partner_share_to_its_cap():
    aug = Augmentation(4000, seed=0, flip=False, mixup_ramp=0.5, epochs=10)
    first, third, last = (aug.draw(e, gen(e), torch.device("cpu")) for e in (0, 3, 9))
    assert torch.equal(first.lams, torch.ones(4000))  # epoch 1: no mixing at all
    for d, cap in ((third, 0.3), (last, 0.5)):  # U(0, min(epoch / epochs, 0.5)) for the partner
        partner = 1 - d.lams
        assert partner.min() >= 0 and partner.max() <= cap + 1e-6
        assert partner.max() > 0.95 * cap and 0.45 * cap < partner.mean() < 0.55 * cap
    resumed = Augmentation(4000, seed=0, flip=False, mixup_ramp=0.5, epochs=10)
    assert torch.equal(last.lams, resumed.draw(9, gen(9), torch.device("cpu")).lams)
    with pytest.raises(ValueError, match="give the run's epochs"):
        Augmentation(10, seed=0, mixup_ramp=0.5)
    both = Augmentation(4000, seed=0, flip=False, mixup_ramp=0.5, cutmix=1.0, epochs=10).draw(
        9, gen(9), torch.device("cpu")
    )
    assert 0.45 < both.cut.float().mean() < 0.55
    assert (1 - both.lams[~both.cut]).max() <= 0.5 + 1e-6  # the ramp's rows
    assert (1 - both.lams[both.cut]).max() > 0.9  # CutMix's Beta(1, 1) rows


def test_batch_without_mixing_trains_on_the_labels_themselves():
    aug = Augmentation(16, seed=0, flip=True)
    d = aug.draw(0, gen(), torch.device("cpu"))
    images, labels = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8), torch.arange(16) % 10
    x, target, y = aug.batch(images, labels, d[0:8], torch.device("cpu"))
    assert x.shape == (8, 3, 32, 32) and torch.equal(target, y) and torch.equal(y, labels[d.order[:8]])
    mixed = Augmentation(16, seed=0, flip=True, mixup=1.0)
    x, target, y = mixed.batch(images, labels, mixed.draw(0, gen(), torch.device("cpu"))[0:8], torch.device("cpu"))
    assert target.shape == (8, 10) and torch.allclose(target.sum(1), torch.ones(8))
    assert x.is_contiguous(memory_format=torch.channels_last)


def _unit(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] images, normalised as the loop's batches are."""
    from tinycifar.inference import MEAN, STD

    return (x01 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_color_jitter_is_torchvisions_arithmetic_and_factors_of_one_change_nothing():
    x01 = torch.rand(4, 3, 8, 8, generator=gen())
    x = _unit(x01)
    assert torch.allclose(augment.color_jitter(x, torch.ones(4, 4)), x, atol=1e-5)
    back = lambda y: _unit(y)  # noqa: E731
    ones = torch.ones(4)
    # brightness: scaled and clamped
    f = torch.stack([torch.full((4,), 1.5), ones, ones, ones], 1)
    assert torch.allclose(augment.color_jitter(x, f), back((x01 * 1.5).clamp(0, 1)), atol=1e-5)
    # saturation 0: every channel the image's luma
    f = torch.stack([ones, ones, torch.zeros(4), ones], 1)
    luma = 0.299 * x01[:, 0:1] + 0.587 * x01[:, 1:2] + 0.114 * x01[:, 2:3]
    assert torch.allclose(augment.color_jitter(x, f), back(luma.expand_as(x01)), atol=1e-5)
    # contrast 0: every pixel the mean luma of its image
    f = torch.stack([ones, torch.zeros(4), ones, ones], 1)
    assert torch.allclose(
        augment.color_jitter(x, f), back(luma.mean((1, 2, 3), keepdim=True).expand_as(x01)), atol=1e-5
    )
    # sharpness: a flat image stays flat; a dot is sharpened inside, the border kept
    dot = torch.full((1, 3, 5, 5), 0.5)
    dot[:, :, 2, 2] = 0.6
    sharp = augment.color_jitter(_unit(dot), torch.tensor([[1.0, 1.0, 1.0, 2.0]]))
    # factor 2: twice the image less its smoothing (centre 5, neighbours 1, over 13), inside only
    expect = dot.clone()
    expect[:, :, 1:4, 1:4] = 2 * 0.5 - (12 * 0.5 + 0.6) / 13  # the ring: the dot is one neighbour
    expect[:, :, 2, 2] = 2 * 0.6 - (5 * 0.6 + 8 * 0.5) / 13
    assert torch.allclose(sharp, _unit(expect), atol=1e-5)
    flat = _unit(torch.full((1, 3, 5, 5), 0.3))
    assert torch.allclose(augment.color_jitter(flat, torch.tensor([[1.0, 1.0, 1.0, 2.2]])), flat, atol=1e-5)


def test_jitter_factors_are_drawn_within_their_ranges_and_repeat():
    aug = Augmentation(2000, 0, flip=False, jitter=(0.1, 0.2, 0.5, 1.2))
    d = aug.draw(0, gen(), torch.device("cpu"))
    lo, hi = d.jitter.min(0).values, d.jitter.max(0).values
    assert torch.allclose(lo, torch.tensor([0.9, 0.8, 0.5, 1.0]), atol=0.01)
    assert torch.allclose(hi, torch.tensor([1.1, 1.2, 1.5, 2.2]), atol=0.01)
    assert torch.equal(d.jitter, aug.draw(0, gen(), torch.device("cpu")).jitter)
    assert Augmentation(10, 0).draw(0, gen(), torch.device("cpu")).jitter is None  # off: nothing drawn
    x = torch.randn(6, 3, 32, 32)
    assert not torch.allclose(aug(x, d[:6]), x, atol=1e-3)
