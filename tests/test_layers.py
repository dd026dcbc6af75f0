"""The advanced-convolution blocks: shapes, the parameter formula in each docstring, behaviour."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from tinycifar.layers import (
    ECA,
    ConvBNAct,
    ConvPoolGroup,
    DepthwiseSeparableConv,
    PatchWhitening,
    PixelShuffleUp,
    PixelUnshuffleDown,
    SqueezeExcite,
    TransposedConvUp,
    eca_kernel_size,
)
from tinycifar.summary import summarize


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def out_shape(m: nn.Module, c: int, h: int, w: int | None = None) -> tuple[int, ...]:
    m.eval()
    with torch.no_grad():
        return tuple(m(torch.randn(2, c, h, w or h)).shape)


# ---------------------------------------------------------------- ConvBNAct


@pytest.mark.parametrize(
    "in_ch, out_ch, k, stride, dilation, groups, size, expected_hw",
    [
        (3, 16, 3, 1, 1, 1, 32, 32),
        (16, 32, 3, 2, 1, 1, 32, 16),
        (8, 8, 3, 1, 2, 1, 16, 16),
        (8, 8, 3, 1, 4, 1, 16, 16),
        (8, 12, 5, 1, 1, 1, 15, 15),
        (8, 16, 5, 2, 1, 1, 15, 8),
        (8, 8, 3, 2, 2, 1, 16, 8),
        (16, 16, 3, 1, 1, 4, 8, 8),
        (16, 32, 1, 1, 1, 1, 8, 8),
    ],
)
def test_conv_bn_act_shape_and_params(in_ch, out_ch, k, stride, dilation, groups, size, expected_hw):
    m = ConvBNAct(in_ch, out_ch, k, stride, dilation, groups)
    assert out_shape(m, in_ch, size) == (2, out_ch, expected_hw, expected_hw)
    assert n_params(m) == in_ch * out_ch * k * k // groups + 2 * out_ch


def test_conv_bn_act_without_activation_can_be_negative():
    torch.manual_seed(0)
    with_act, without = ConvBNAct(3, 8, act=True), ConvBNAct(3, 8, act=False)
    x = torch.randn(4, 3, 8, 8)
    assert (with_act(x) >= 0).all()
    assert (without(x) < 0).any()


@pytest.mark.parametrize("dilation", [1, 2, 3, 4])
@pytest.mark.parametrize("k", [3, 5])
def test_dilation_keeps_size_with_stride_1(dilation, k):
    assert out_shape(ConvBNAct(4, 4, k, dilation=dilation), 4, 17) == (2, 4, 17, 17)


@pytest.mark.parametrize("dilation", [1, 2, 3, 4])
def test_dilation_enlarges_receptive_field_at_no_cost(dilation):
    def net(d: int) -> nn.Sequential:
        return nn.Sequential(ConvBNAct(3, 8), ConvBNAct(8, 8, dilation=d))

    s = summarize(net(dilation))
    assert s.receptive_field == 3 + 2 * dilation  # (k-1)*d + 1 added on top of the first 3x3
    assert n_params(net(dilation)) == n_params(net(1))
    if dilation > 1:
        assert s.receptive_field > summarize(net(1)).receptive_field
        assert s.macs == summarize(net(1)).macs  # same kernel, same output size


# ---------------------------------------------------------------- DepthwiseSeparableConv


@pytest.mark.parametrize(
    "in_ch, out_ch, k, stride, dilation, size, expected_hw",
    [
        (16, 32, 3, 1, 1, 16, 16),
        (32, 64, 3, 2, 1, 16, 8),
        (64, 64, 3, 1, 2, 8, 8),
        (24, 48, 5, 1, 1, 8, 8),
        (24, 40, 5, 2, 1, 9, 5),
        (8, 8, 3, 2, 2, 9, 5),
    ],
)
def test_depthwise_separable_shape_and_params(in_ch, out_ch, k, stride, dilation, size, expected_hw):
    m = DepthwiseSeparableConv(in_ch, out_ch, k, stride, dilation)
    assert out_shape(m, in_ch, size) == (2, out_ch, expected_hw, expected_hw)
    assert n_params(m) == in_ch * k * k + 2 * in_ch + in_ch * out_ch + 2 * out_ch


def test_depthwise_separable_is_cheaper_than_full_conv_when_wide():
    assert n_params(DepthwiseSeparableConv(64, 64)) * 5 < n_params(ConvBNAct(64, 64))


def test_depthwise_separable_dilation_widens_rf():
    s1 = summarize(DepthwiseSeparableConv(3, 8, dilation=1), input_size=(3, 16, 16))
    s3 = summarize(DepthwiseSeparableConv(3, 8, dilation=3), input_size=(3, 16, 16))
    assert (s1.receptive_field, s3.receptive_field) == (3, 7)


# ---------------------------------------------------------------- upsampling


@pytest.mark.parametrize("block", [TransposedConvUp, PixelShuffleUp])
@pytest.mark.parametrize(
    "in_ch, out_ch, scale, size",
    [(16, 8, 2, 4), (64, 32, 2, 8), (8, 8, 3, 5), (32, 16, 4, 2), (3, 5, 2, 7)],
)
def test_upsampling_shape_and_params(block, in_ch, out_ch, scale, size):
    m = block(in_ch, out_ch, scale)
    assert out_shape(m, in_ch, size) == (2, out_ch, size * scale, size * scale)
    assert n_params(m) == in_ch * out_ch * scale * scale + 2 * out_ch


def test_transposed_conv_and_pixel_shuffle_compute_the_same_map():
    """kernel = stride transposed conv == 1x1 conv + depth-to-space, up to a weight permutation."""
    torch.manual_seed(0)
    cin, cout, r = 6, 4, 2
    tc = TransposedConvUp(cin, cout, r, act=False).eval()
    ps = PixelShuffleUp(cin, cout, r, act=False).eval()
    w = tc[0].weight  # (cin, cout, r, r)
    with torch.no_grad():
        ps[0].weight.copy_(w.permute(1, 2, 3, 0).reshape(cout * r * r, cin, 1, 1))
        x = torch.randn(2, cin, 5, 5)
        assert torch.allclose(tc(x), ps(x), atol=1e-5)


# ---------------------------------------------------------------- PixelUnshuffleDown


@pytest.mark.parametrize(
    "in_ch, out_ch, scale, size",
    [(3, 32, 2, 32), (3, 16, 4, 32), (8, 24, 2, 16), (4, 4, 3, 9)],
)
def test_pixel_unshuffle_down_shape_and_params(in_ch, out_ch, scale, size):
    m = PixelUnshuffleDown(in_ch, out_ch, scale)
    assert out_shape(m, in_ch, size) == (2, out_ch, size // scale, size // scale)
    assert n_params(m) == in_ch * scale * scale * out_ch + 2 * out_ch


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pixel_unshuffle_is_lossless(scale):
    x = torch.randn(2, 3, 12, 12)
    down = nn.PixelUnshuffle(scale)(x)
    assert down.shape == (2, 3 * scale * scale, 12 // scale, 12 // scale)
    assert torch.equal(nn.PixelShuffle(scale)(down), x)


def test_pixel_unshuffle_down_loses_nothing_before_its_1x1_conv():
    """With a square, invertible 1x1 conv and no activation the whole block can be undone."""
    torch.manual_seed(0)
    m = PixelUnshuffleDown(3, 12, 2, act=False).eval()
    with torch.no_grad():
        m[1].weight.copy_(torch.linalg.qr(torch.randn(12, 12))[0].reshape(12, 12, 1, 1))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        y = m(x)
        bn = m[2]
        z = (y - bn.bias.view(1, -1, 1, 1)) / bn.weight.view(1, -1, 1, 1)
        z = z * torch.sqrt(bn.running_var + bn.eps).view(1, -1, 1, 1) + bn.running_mean.view(1, -1, 1, 1)
        w = m[1].weight.reshape(12, 12)
        pre = torch.einsum("oc,nohw->nchw", w, z)  # w is orthogonal: its inverse is w.T
        assert torch.allclose(nn.PixelShuffle(2)(pre), x, atol=1e-4)


def test_pixel_unshuffle_rf_is_the_patch():
    assert summarize(PixelUnshuffleDown(3, 8, 2)).receptive_field == 2


# ---------------------------------------------------------------- attention


@pytest.mark.parametrize("channels, reduction", [(32, 4), (64, 4), (64, 16), (48, 8), (7, 2), (2, 4), (3, 4)])
def test_squeeze_excite_shape_and_params(channels, reduction):
    m = SqueezeExcite(channels, reduction)
    assert out_shape(m, channels, 6) == (2, channels, 6, 6)
    h = max(1, channels // reduction)
    assert n_params(m) == 2 * channels * h + h + channels


@pytest.mark.parametrize(
    "channels, k",
    [(1, 1), (2, 1), (4, 1), (8, 3), (16, 3), (32, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)],
)
def test_eca_kernel_size_table(channels, k):
    # t = (log2 C + 1) / 2 to the nearest odd number: C=64 -> 3.5 -> 3, C=128 -> 4 -> 5, C=1024 -> 5.5 -> 5
    assert eca_kernel_size(channels) == k


@pytest.mark.parametrize("channels", [3, 16, 24, 64, 100, 128, 200, 512, 4096])
def test_eca_kernel_size_is_odd_and_follows_the_formula(channels):
    k = eca_kernel_size(channels)
    t = (math.log2(channels) + 1) / 2
    assert k % 2 == 1
    assert abs(k - t) <= 1  # nearest odd number


@pytest.mark.parametrize("channels", [8, 32, 64, 96, 128, 512])
def test_eca_shape_params_and_kernel(channels):
    m = ECA(channels)
    k = eca_kernel_size(channels)
    assert m.conv.kernel_size == (k,)
    assert n_params(m) == k
    assert out_shape(m, channels, 5) == (2, channels, 5, 5)


def test_eca_explicit_kernel_size():
    m = ECA(64, kernel_size=7)
    assert m.conv.kernel_size == (7,) and n_params(m) == 7
    assert out_shape(m, 64, 4) == (2, 64, 4, 4)


@pytest.mark.parametrize("block", [lambda c: SqueezeExcite(c, 4), lambda c: ECA(c)])
def test_attention_gates_are_in_0_1(block):
    torch.manual_seed(0)
    m = block(32).eval()
    for p in m.parameters():  # large weights push the gate to its limits
        nn.init.normal_(p, std=3.0)
    x = torch.rand(4, 32, 6, 6) + 0.01
    with torch.no_grad():
        y = m(x)
    assert (y >= 0).all() and (y <= x).all()
    gate = y / x
    # each channel of each image is scaled by one number in [0, 1] (sigmoid may saturate in fp32)
    assert torch.allclose(gate, gate[..., :1, :1].expand_as(gate), atol=1e-5)
    assert (gate >= 0).all() and (gate <= 1).all()


@pytest.mark.parametrize("block", [lambda c: SqueezeExcite(c, 4), lambda c: ECA(c)])
def test_attention_gate_strictly_inside_with_default_init(block):
    torch.manual_seed(0)
    m = block(16).eval()
    x = torch.rand(2, 16, 4, 4) + 0.1
    with torch.no_grad():
        gate = m(x) / x
    assert (gate > 0).all() and (gate < 1).all()


def test_attention_does_not_widen_receptive_field():
    base = summarize(nn.Sequential(ConvBNAct(3, 16)))
    for att in (SqueezeExcite(16), ECA(16)):
        assert summarize(nn.Sequential(ConvBNAct(3, 16), att)).receptive_field == base.receptive_field


# ---------------------------------------------------------------- PatchWhitening, ConvPoolGroup


@pytest.mark.parametrize("in_ch, k, stride, size, expected_hw", [(3, 2, 1, 32, 31), (3, 2, 2, 32, 16), (1, 3, 1, 8, 6)])
def test_patch_whitening_shape_and_params(in_ch, k, stride, size, expected_hw):
    m = PatchWhitening(in_ch, k, stride)
    out = 2 * in_ch * k * k
    assert out_shape(m, in_ch, size) == (2, out, expected_hw, expected_hw)
    assert n_params(m) == in_ch * k * k * out + out
    assert sum(p.numel() for p in m.parameters() if p.requires_grad) == out  # only the bias trains


def test_patch_whitening_decorrelates_patches():
    torch.manual_seed(0)
    mix = torch.tensor([[1.0, 0.8, 0.6], [0.0, 0.5, 0.4], [0.0, 0.0, 0.2]])
    x = torch.einsum("ij,njhw->nihw", mix, torch.randn(400, 3, 16, 16))  # correlated channels
    layer = PatchWhitening(3, kernel_size=2, eps=0.0)
    layer.fit(x)
    out = nn.functional.conv2d(x, layer.weight[:12])  # the positive half: one filter per direction
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    assert torch.equal(layer.weight[12:], -layer.weight[:12])
    assert not layer.weight.requires_grad and layer.bias.requires_grad


@pytest.mark.parametrize("in_ch, out_ch, size", [(24, 40, 31), (8, 16, 16), (16, 16, 7)])
def test_conv_pool_group_shape_and_params(in_ch, out_ch, size):
    m = ConvPoolGroup(in_ch, out_ch)
    assert out_shape(m, in_ch, size) == (2, out_ch, size // 2, size // 2)
    assert n_params(m) == 9 * in_ch * out_ch + 9 * out_ch * out_ch + 4 * out_ch
