"""ONNX export: every registered model passes onnx's full check and ONNX Runtime computes what
numbacnn computes in eval mode, at batch 1 and a larger batch (one file: the batch is symbolic).
Skipped where the onnx extra is absent; CI installs it."""

import numpy as np
import pytest

import numbacnn as nc
from numbacnn import layers as L

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _with_running_stats(model, rng, shape):
    """Train-mode forwards on random batches so BatchNorm's running statistics are not 0 and 1."""
    model.train()
    for _ in range(2):
        model.forward(rng.standard_normal((8, *shape)).astype(np.float32))
    return model.eval()


def _assert_runtime_agrees(model, path, shape, rng, batches=(1, 5)):
    session = _session(path)
    for n in batches:
        x = rng.standard_normal((n, *shape)).astype(np.float32)
        want = np.array(model.forward(x))
        got = session.run(None, {"input": x})[0]
        assert got.shape == want.shape
        # 1e-4 relative to the outputs' scale: float32 sums in a different order.
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("name", sorted(nc.models.REGISTRY))
def test_every_registered_model_exports_and_runs(name, tmp_path, rng):
    shape = (1, 28, 28)
    model = _with_running_stats(nc.models.create(name, 1, 10, 28), rng, shape)
    path = nc.onnx.export(model, tmp_path / f"{name}.onnx", shape)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    initializers = {t.name for t in proto.graph.initializer}
    assert initializers == {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    _assert_runtime_agrees(model, path, shape, rng)


def test_every_exportable_layer_kind(tmp_path, rng):
    model = L.Sequential(
        L.Conv2d(3, 4, 3, stride=2, padding=1, dilation=1, bias=True),
        L.BatchNorm2d(4),
        L.LeakyReLU(0.2),
        L.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, bias=False),
        L.ELU(0.7),
        L.AvgPool2d(3, stride=1, padding=1),
        L.Tanh(),
        L.MaxPool2d(3, stride=2, padding=1),
        L.Sigmoid(),
        L.Flatten(),
        L.Dropout(0.3),
        L.Linear(4 * 4 * 4, 6, bias=False),
        L.ReLU(),
        L.Linear(6, 3),
        L.Softmax(),
    )
    _with_running_stats(model, rng, (3, 15, 15))
    path = nc.onnx.export(model, tmp_path / "all.onnx", (3, 15, 15))
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert "Dropout" not in ops and ops.count("Gemm") == 2 and ops[-1] == "Softmax"
    _assert_runtime_agrees(model, path, (3, 15, 15), rng)


def test_gemm_uses_transposed_weights_and_flatten_axis_1(tmp_path):
    proto = nc.onnx.to_model_proto(nc.models.lenet5(), (1, 28, 28))
    gemms = [n for n in proto.graph.node if n.op_type == "Gemm"]
    assert all({a.name: a.i for a in n.attribute}["transB"] == 1 for n in gemms)
    (flatten,) = [n for n in proto.graph.node if n.op_type == "Flatten"]
    assert flatten.attribute[0].name == "axis" and flatten.attribute[0].i == 1


def test_a_model_ending_in_a_no_op_still_has_an_output(tmp_path, rng):
    model = L.Sequential(L.Flatten(), L.Linear(12, 2), L.Dropout(0.5)).eval()
    path = nc.onnx.export(model, tmp_path / "d.onnx", (3, 2, 2))
    assert onnx.load(path).graph.node[-1].output[0] == "output"  # the Gemm's output, renamed
    _assert_runtime_agrees(model, path, (3, 2, 2), rng)
    only_dropout = L.Sequential(L.Dropout(0.5)).eval()
    path = nc.onnx.export(only_dropout, tmp_path / "i.onnx", (3, 2, 2))
    assert [n.op_type for n in onnx.load(path).graph.node] == ["Identity"]
    _assert_runtime_agrees(only_dropout, path, (3, 2, 2), rng)


def test_a_layer_without_onnx_form_is_named(tmp_path):
    class Custom(L.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match=r"layer '1' \(Custom\) has no ONNX form"):
        nc.onnx.export(L.Sequential(L.ReLU(), Custom()), tmp_path / "c.onnx", (1, 4, 4))
    assert not (tmp_path / "c.onnx").exists()


def test_bad_input_shape_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"input_shape should be \(C, H, W\)"):
        nc.onnx.export(nc.models.lenet5(), tmp_path / "x.onnx", (28, 28))


def test_the_toolbox_layers_export(tmp_path, rng):
    model = L.Sequential(
        L.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
        L.PReLU(4),
        L.Conv2d(4, 6, 2, padding="same"),  # asymmetric zero padding
        L.Maxout(2),
        L.Dropout2d(0.2),
        L.Concat(L.Conv2d(3, 2, 1), L.Conv2d(3, 2, 3, padding=2, padding_mode="replicate", dilation=2)),
        L.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        L.MaxPool2d(2, ceil_mode=True),
        L.AdaptiveAvgPool2d((3, 1)),  # from 3x3: bins of equal size, an AveragePool
        L.Flatten(),
        L.Linear(12, 5),
        L.PReLU(),
    )
    _with_running_stats(model, rng, (3, 10, 8))
    path = nc.onnx.export(model, tmp_path / "toolbox.onnx", (3, 10, 8))
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert {"Pad", "PRelu", "ReduceMax", "Concat", "AveragePool"} <= ops
    _assert_runtime_agrees(model, path, (3, 10, 8), rng)


def _pool_cases():
    """Every ceil_mode geometry of a small grid: sizes, kernels, strides, paddings up to k/2."""
    for size in (5, 6, 7, 9):
        for kernel in (2, 3):
            for stride in (1, 2, 3):
                for padding in range(kernel // 2 + 1):
                    if nc.kernels.shapes.pool2d_output_size(size, kernel, stride, padding, True) >= 1:
                        yield size, kernel, stride, padding


POOL_CASES = list(_pool_cases())


@pytest.mark.parametrize("kind", ["max", "avg", "avg_no_pad_count"])
@pytest.mark.parametrize("ceil_mode", [True, False])
def test_pools_export_every_geometry_as_numbacnn_computes_it(tmp_path, rng, kind, ceil_mode):
    """ONNX's own ceil_mode would keep a last window that starts in the padding (2x2 stride 3 on
    6x6: 3 outputs, numbacnn and PyTorch 2); the export must give numbacnn's sizes and values,
    divisors included. One graph holds a branch per geometry (a Concat of flattened outputs)."""
    for size in sorted({case[0] for case in POOL_CASES}):
        branches = []
        for _, kernel, stride, padding in (c for c in POOL_CASES if c[0] == size):
            if kind == "max":
                pool = L.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
            else:
                pool = L.AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad=kind == "avg")
            branches.append(L.Sequential(pool, L.Flatten()))
        model = L.Sequential(L.Concat(*branches)).eval()
        # Concat joins along axis 1, which Flatten's outputs are.
        path = nc.onnx.export(model, tmp_path / f"{kind}{size}.onnx", (2, size, size))
        _assert_runtime_agrees(model, path, (2, size, size), rng, batches=(3,))


def test_the_issue_example_ceil_pool_on_6x6_exports(tmp_path, rng):
    for pool in (L.MaxPool2d(2, stride=3, ceil_mode=True), L.AvgPool2d(2, stride=3, ceil_mode=True)):
        model = L.Sequential(pool).eval()
        path = nc.onnx.export(model, tmp_path / "p.onnx", (1, 6, 6))
        assert _session(path).run(None, {"input": np.zeros((1, 1, 6, 6), np.float32)})[0].shape == (1, 1, 2, 2)
        _assert_runtime_agrees(model, path, (1, 6, 6), rng)


@pytest.mark.parametrize("pads", [1, 2, (2, 1), (0, 3)])
def test_circular_padding_exports_as_slices_and_concats(tmp_path, rng, pads):
    model = L.Sequential(L.Conv2d(2, 3, 3, padding=pads, padding_mode="circular"), L.ReLU()).eval()
    path = nc.onnx.export(model, tmp_path / "c.onnx", (2, 5, 6))
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert "Slice" in ops and "Concat" in ops and "Pad" not in ops
    _assert_runtime_agrees(model, path, (2, 5, 6), rng)
    same = L.Sequential(L.Conv2d(2, 2, 4, padding="same", padding_mode="circular")).eval()  # asymmetric pads
    _assert_runtime_agrees(same, nc.onnx.export(same, tmp_path / "s.onnx", (2, 7, 5)), (2, 7, 5), rng)


@pytest.mark.parametrize("size, out", [(7, 3), (5, 2), ((7, 9), (3, 4)), (6, (4, 6)), (3, 5)])
def test_adaptive_pooling_with_unequal_bins_exports_exactly(tmp_path, rng, size, out):
    h, w = (size, size) if isinstance(size, int) else size
    model = L.Sequential(L.AdaptiveAvgPool2d(out)).eval()
    path = nc.onnx.export(model, tmp_path / "a.onnx", (3, h, w))
    assert "MatMul" in [n.op_type for n in onnx.load(path).graph.node]
    _assert_runtime_agrees(model, path, (3, h, w), rng)


def test_every_layer_class_has_an_onnx_form():
    """README and DESIGN say every layer exports; a new layer without an exporter fails here."""
    import inspect

    classes = [c for c in vars(L).values() if inspect.isclass(c) and issubclass(c, L.Module) and c is not L.Module]
    missing = [c.__name__ for c in classes if not any(k in nc.onnx._EXPORTERS for k in c.__mro__)]
    assert classes and missing == []
