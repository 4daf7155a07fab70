"""The CPU convolution table (kernels/cpu/conv/dispatch.py): which entry takes which layer and why
the others decline, its ordering rule, NUMBACNN_CONV, NUMBACNN_VERBOSE, the bias-only entry, the
table in docs/DESIGN.md, and every entry compiled for older CPUs. (Each entry against the float64
references: test_conv_<module>.py, on every geometry of tests/conv_cases.py it accepts.)"""

import os
import re

import numpy as np
import pytest

import numbacnn as nc
from numbacnn.kernels import verbose
from numbacnn.kernels.cpu.conv import dispatch
from numbacnn.kernels.cpu.simd import LANES

from conv_cases import GEOMETRIES, accepted, geometry
from helpers import conv2d_grads_ref, conv2d_ref

DESIGN = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "DESIGN.md")


def _chosen(c, k, hw, kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, batch=2):
    g = geometry((batch, c, k, hw, hw, kernel, stride, padding, dilation, groups))
    return dispatch.choose(g, dispatch.FORWARD)[0].name


def test_which_layers_each_entry_takes():
    assert _chosen(16, 16, 32) == "direct_positions"
    assert _chosen(16, 16, 32, stride=(2, 2)) == "direct_channels"  # stride
    assert _chosen(16, 16, 32, padding=(2, 2), dilation=(2, 2)) == "direct_channels"  # dilation
    assert _chosen(16, 16, 32, groups=2) == "direct_channels"  # groups
    assert _chosen(16, 16, 32, padding=(3, 3)) == "direct_channels"  # padding past the kernel
    assert _chosen(16, 16, 8) == "direct_channels"  # 8x8: rule small_planes
    assert _chosen(16, 16, 8, kernel=(1, 1), padding=(0, 0)) == "pointwise"
    assert _chosen(16, 16, 8, kernel=(1, 1), padding=(0, 0), stride=(2, 2)) == "subsample"
    # Under 200 positions, layers whose channels fill direct_channels' blocks go there (a 5x5 kernel,
    # which Winograd does not take); LeNet's conv2 (6 -> 16 channels, 10x10) stays.
    block = 2 * LANES
    assert _chosen(2 * block, 2 * block, 14, kernel=(5, 5), padding=(2, 2)) == "direct_channels"
    assert _chosen(2 * block, 2 * block, 16, kernel=(5, 5), padding=(2, 2)) == "direct_positions"
    assert _chosen(6, 16, 14, kernel=(5, 5), padding=(0, 0)) == "direct_positions"
    # From a batch of 2 LANES on, direct_samples takes the stride-1 layers whose block of LANES
    # samples fits in L2 (both of LeNet's, ResNet's 16-channel 28x28 and small planes).
    assert _chosen(6, 16, 14, kernel=(5, 5), padding=(0, 0), batch=4 * LANES) == "direct_samples"
    assert _chosen(6, 16, 14, kernel=(5, 5), padding=(0, 0), batch=2 * LANES - 1) == "direct_positions"
    assert _chosen(1, 6, 28, kernel=(5, 5), padding=(2, 2), batch=128) == "direct_samples"
    assert _chosen(16, 16, 8, batch=128) == "direct_samples"
    assert _chosen(16, 16, 28, batch=128) == "direct_samples"
    wide = _chosen(16, 16, 32, batch=128)  # 16 x 35 x 34 pixels of LANES samples: over 1 MiB at 16 lanes
    assert wide == ("direct_positions" if LANES == 16 else "direct_samples")
    # Winograd over channels where both counts are at least 32 and fill its blocks of 2 LANES:
    # F(4x4, 3x3) up to 32 x 32 channel pairs on planes its 4x4 tiles cover as tightly as 2x2
    # tiles do, F(2x2, 3x3) past them and on 14x14.
    g = geometry((2, 32, 32, 16, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1))
    assert {dispatch.choose(g, p)[0].name for p in dispatch.CONV_PASSES} == {"winograd4_channels"}
    assert _chosen(32, 32, 8) == "winograd4_channels"
    assert _chosen(32, 32, 14) == "winograd_channels"
    assert _chosen(64, 64, 7) == "winograd_channels"
    assert _chosen(32, 64, 14, padding=(0, 0)) == "winograd_channels"
    assert _chosen(64, 64, 7, stride=(2, 2)) == "direct_channels"
    assert _chosen(64, 64 + block // 2, 7) == "direct_channels"


def test_numbacnn_conv_direct_leaves_winograd_and_direct_samples_out(monkeypatch):
    monkeypatch.setenv("NUMBACNN_CONV", "direct")
    assert _chosen(64, 64, 7) == "direct_channels"
    assert _chosen(64, 64, 16) == "direct_positions"
    assert not any(name.startswith("winograd") for name in dispatch.DIRECT)
    # ... and direct_samples: =direct gives the results of the versions before both.
    assert "direct_samples" not in dispatch.DIRECT
    assert _chosen(6, 16, 14, kernel=(5, 5), padding=(0, 0), batch=4 * LANES) == "direct_positions"


def test_choices_are_remembered_per_layer_and_follow_numbacnn_conv(monkeypatch):
    """choose() answers a layer it has seen from memory (the same objects), and a change of
    NUMBACNN_CONV between calls is still obeyed."""
    monkeypatch.delenv("NUMBACNN_CONV", raising=False)
    g = geometry((2, 64, 64, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1), 1))
    first = dispatch.choose(g, dispatch.FORWARD)
    assert dispatch.choose(g, dispatch.FORWARD) is first and first[0].name == "winograd_channels"
    monkeypatch.setenv("NUMBACNN_CONV", "direct")
    assert dispatch.choose(g, dispatch.FORWARD)[0].name == "direct_channels"
    monkeypatch.setenv("NUMBACNN_CONV", "pointwise")
    with pytest.raises(ValueError, match="NUMBACNN_CONV=pointwise cannot run"):
        dispatch.choose(g, dispatch.FORWARD)
    monkeypatch.delenv("NUMBACNN_CONV")
    assert dispatch.choose(g, dispatch.FORWARD) is first


def test_should_run_is_a_named_rule_apart_from_can_run():
    g = geometry((2, 16, 16, 8, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1))
    assert dispatch.BY_NAME["direct_positions"].accepts(g) is None  # it can run an 8x8 plane
    entry, declined = dispatch.choose(g, dispatch.FORWARD)
    assert entry.name == "direct_channels"
    assert dict(declined)["direct_positions"].startswith("rule small_planes:")
    rule_order = ["winograd4_channels"] * 3 + ["winograd_channels", "direct_samples"]
    rule_order += ["direct_samples", "direct_positions"]
    assert [r.sends_on for r in dispatch.RULES] == rule_order
    assert dict(declined)["direct_samples"].startswith("rule few_samples:")
    large = geometry((128, 64, 16, 48, 48, (3, 3), (1, 1), (1, 1), (1, 1), 1))
    assert dict(dispatch.choose(large, dispatch.FORWARD)[1])["direct_samples"].startswith("rule large_blocks:")
    wide = dict(dispatch.choose(geometry((2, 64, 64, 7, 7, (3, 3), (1, 1), (1, 1), (1, 1), 1)), dispatch.FORWARD)[1])
    assert wide["winograd4_channels"].startswith("rule wide_channels:")
    uneven = dict(
        dispatch.choose(geometry((2, 32, 32, 14, 14, (3, 3), (1, 1), (1, 1), (1, 1), 1)), dispatch.FORWARD)[1]
    )
    assert uneven["winograd4_channels"].startswith("rule uneven_tiles:")
    if LANES == 8:  # 16 channels fill its blocks at 8 lanes: the rule narrow_channels declines them
        wide = geometry((2, 16, 16, 28, 28, (3, 3), (1, 1), (1, 1), (1, 1), 1))
        assert dispatch.BY_NAME["winograd_channels"].accepts(wide) is None
        assert dict(dispatch.choose(wide, dispatch.FORWARD)[1])["winograd_channels"].startswith("rule narrow_channels:")


def test_every_entry_before_the_catch_all_has_layers_of_its_own_in_the_shared_list():
    """Each convolution entry up to direct_channels (which accepts every layer) is the table's
    choice for some geometry of tests/conv_cases.py; the entries after it run only when forced."""
    names = [e.name for e in dispatch.IMPLEMENTATIONS if dispatch.FORWARD in e.passes]
    chosen = {dispatch.choose(geometry(case), dispatch.FORWARD)[0].name for case in GEOMETRIES}
    assert chosen == set(names[: names.index("direct_channels") + 1])
    assert names[names.index("direct_channels") + 1 :] == ["winograd"]


def test_numbacnn_conv_forces_an_entry_or_says_why_it_cannot(monkeypatch, rng):
    layer = nc.layers.Conv2d(3, 5, 3, padding=1)
    x = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    expected = conv2d_ref(x, layer.weight.data, layer.bias.data, padding=(1, 1))
    for name in ("direct_positions", "direct_channels"):
        monkeypatch.setenv("NUMBACNN_CONV", name)
        g = geometry((2, 3, 5, 16, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1))
        assert dispatch.choose(g, dispatch.FORWARD)[0].name == name
        np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)
    monkeypatch.setenv("NUMBACNN_CONV", "pointwise")
    with pytest.raises(ValueError, match=r"NUMBACNN_CONV=pointwise cannot run conv2d of .*a 3x3 kernel: it needs 1x1"):
        layer(x)
    monkeypatch.setenv("NUMBACNN_CONV", "direct_positions")
    strided = nc.layers.Conv2d(3, 5, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match=r"stride \(2, 2\): it needs stride 1"):
        strided(x)
    monkeypatch.setenv("NUMBACNN_CONV", "winograd-please")
    with pytest.raises(ValueError, match="no such convolution implementation .*direct, .*winograd"):
        layer(x)


def _verbose_lines(capsys):
    return [line for line in capsys.readouterr().err.splitlines()]


@pytest.mark.parametrize(
    "layer, shape, entry",
    [
        (lambda: nc.layers.Conv2d(4, 8, 3, padding=1), (2, 4, 12, 12), "direct_positions"),
        (lambda: nc.layers.Conv2d(4, 8, 3, padding=1), (2, 4, 6, 6), "direct_channels"),
        (lambda: nc.layers.Conv2d(4, 8, 1), (2, 4, 12, 12), "pointwise"),
        (lambda: nc.layers.Conv2d(4, 8, 1, stride=2), (2, 4, 12, 12), "subsample"),
        (lambda: nc.layers.Conv2d(4, 8, 3, stride=2, padding=1), (2, 4, 12, 12), "direct_channels"),
        (lambda: nc.layers.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2), (2, 4, 12, 12), "direct_channels"),
    ],
    ids=["3x3", "small plane", "1x1", "strided 1x1", "strided 3x3", "dilated grouped"],
)
def test_verbose_names_the_entry_each_layer_ran(layer, shape, entry, monkeypatch, capsys, rng):
    monkeypatch.setenv("NUMBACNN_VERBOSE", "1")
    monkeypatch.setattr(verbose, "_reported", set())
    conv = layer()
    y = conv(rng.standard_normal(shape).astype(np.float32))
    conv.backward(np.ones(y.shape, np.float32))
    lines = [line for line in _verbose_lines(capsys) if "conv2d" in line]
    assert [line.split()[2] for line in lines] == ["forward", "input_grad", "weight_grad"], lines
    assert all(line.endswith(f": {entry}") for line in lines), lines


def test_verbose_2_also_says_why_earlier_entries_declined(monkeypatch, capsys, rng):
    monkeypatch.setenv("NUMBACNN_VERBOSE", "2")
    monkeypatch.setattr(verbose, "_reported", set())
    nc.layers.Conv2d(4, 8, 3, stride=2, padding=1)(rng.standard_normal((2, 4, 12, 12)).astype(np.float32))
    text = "\n".join(_verbose_lines(capsys))
    assert text.splitlines()[0].endswith(": direct_channels")
    for entry, why in [
        ("bias_only", "it runs no forward pass"),
        ("pointwise", "a 3x3 kernel: it needs 1x1"),
        ("subsample", "a 3x3 kernel: it needs 1x1"),
        ("direct_positions", "stride (2, 2): it needs stride 1"),
    ]:
        assert f"  {entry} declined: {why}" in text, text


def test_a_backward_that_needs_only_the_bias_gradient_is_its_own_entry(monkeypatch, capsys, rng):
    monkeypatch.setenv("NUMBACNN_VERBOSE", "1")
    monkeypatch.setattr(verbose, "_reported", set())
    layer = nc.layers.Conv2d(3, 4, 3, padding=1)
    layer.weight.requires_grad = False
    layer.input_grad = False
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    dy = rng.standard_normal(layer(x).shape).astype(np.float32)
    layer.zero_grad()
    assert layer.backward(dy) is None
    np.testing.assert_allclose(layer.bias.grad, conv2d_grads_ref(dy, x, layer.weight.data, (1, 1))[2], rtol=1e-5)
    assert [line for line in _verbose_lines(capsys) if "bias_grad" in line][0].endswith(": bias_only")


def _design_table():
    """(order, name) rows of DESIGN.md's convolution table, and the rules it lists."""
    text = open(DESIGN).read()
    section = text[text.index("## Convolution on the CPU") :]
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", section, re.M)
    rules = re.findall(r"^- rule `(\w+)`", section, re.M)
    return [(int(order), name) for order, name in rows], rules


def test_design_md_lists_the_table_as_it_is():
    rows, rules = _design_table()
    assert rows == [(i + 1, e.name) for i, e in enumerate(dispatch.IMPLEMENTATIONS)]
    assert rules == list(dict.fromkeys(r.name for r in dispatch.RULES))  # a rule of two entries once


ISA_PROBE = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from conv_cases import GEOMETRIES, accepted, arrays, geometry
from helpers import conv2d_grads_ref, conv2d_ref
from numbacnn.kernels.cpu.conv.dispatch import BY_NAME
from numbacnn.kernels.cpu.simd import LANES
rng = np.random.default_rng(0)
worst = 0.0
for name in ("pointwise", "subsample", "direct_positions", "direct_channels"):
    for case in accepted(name)[:4]:
        x, w, b = arrays(case, np.float32, rng)
        g, entry = geometry(case), BY_NAME[name]
        stride, padding, dilation, groups = case[6:]
        want_out = conv2d_ref(x, w, b, stride, padding, dilation, groups)
        out = np.empty(want_out.shape, np.float32)
        entry.forward(out, x, w, b, g)
        dy = rng.standard_normal(out.shape).astype(np.float32)
        dx, dw, db = np.empty_like(x), np.zeros_like(w), np.zeros_like(b)
        entry.backward(dx, dw, db, dy, x, w, g)
        grads = conv2d_grads_ref(dy, x, w, padding, stride, dilation, groups)
        for got, want in zip((out, dx, dw, db), (want_out,) + tuple(grads)):
            worst = max(worst, float(np.abs(got - want).max() / max(1.0, np.abs(want).max())))
print(LANES, worst)
"""


@pytest.mark.slow
@pytest.mark.parametrize("cpu, lanes", [("haswell", 8), ("x86-64", 4)])
def test_every_entry_is_right_compiled_for_an_older_cpu_with_an_empty_cache(cpu, lanes, tmp_path):
    """AVX2 and plain x86-64 (both variables set: the name alone keeps the host's features): the
    vectors narrow to the target's registers, and every entry's passes still match the references."""
    import subprocess
    import sys

    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES="", NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBACNN_LANES", None)
    probe = ISA_PROBE.format(tests=tests)
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    got_lanes, error = done.stdout.split()
    assert int(got_lanes) == lanes and float(error) < 1e-5, done.stdout
    assert all(accepted(name) for name in ("pointwise", "subsample", "direct_positions", "direct_channels"))


@pytest.mark.parametrize(
    "layer, why",
    [
        (lambda: nc.layers.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), "reflect padding (1, 1, 1, 1)"),
        (
            lambda: nc.layers.Conv2d(2, 3, 4, padding="same"),
            "zero padding (1, 2, 1, 2) (top, bottom, left, right) that differs",
        ),
    ],
    ids=["reflect", "same with an even kernel"],
)
def test_padding_the_kernel_cannot_do_is_done_first_and_said(layer, why, monkeypatch, capsys, rng):
    monkeypatch.setenv("NUMBACNN_VERBOSE", "1")
    monkeypatch.setattr(verbose, "_reported", set())
    conv = layer()
    conv(rng.standard_normal((2, 2, 9, 9)).astype(np.float32))
    lines = _verbose_lines(capsys)
    assert why in lines[0] and "padded first by pad2d" in lines[0], lines
    assert "padding (0, 0)" in lines[1], lines  # the table then runs without padding
