"""Explicit SIMD vectors for ``@njit`` kernels: a numba type whose LLVM form is ``<LANES x float>``
and the handful of operations a compute-bound kernel needs.

Plain numba loops leave LLVM to guess: accumulators end up in memory and FMAs scalar. A kernel
written on these vectors names every register it wants (``c0 = vfma(a, b, c0)``), so LLVM keeps
the accumulators in vector registers and emits packed FMAs (``vfmadd...ps`` on ymm or zmm).

``LANES`` follows the instruction set numba *compiles for* (``NUMBA_CPU_NAME`` and
``NUMBA_CPU_FEATURES`` when set, else the host): 16 with AVX-512, 8 with AVX/AVX2, 4 otherwise.
Code compiled for AVX2 on an AVX-512 machine so gets 8-lane vectors that fit its 16 registers.
``NUMBACNN_LANES=4|8|16`` forces the width whatever the target: LLVM splits a vector wider than
the registers into several, so every width runs (and is tested) on any x86-64 CPU, only slower.

The operations (any float dtype; ``offset`` counts elements of a C-contiguous array, any shape):

    vload(a, offset)       -> vector of a.flat[offset : offset + LANES]
    vstore(a, offset, v)      a.flat[offset : offset + LANES] = v
    vsplat(x)              -> vector of LANES copies of the scalar x
    vbroadcast(a, offset)  -> vector of LANES copies of a.flat[offset] (one broadcast load)
    vfma(a, b, c)          -> a * b + c, fused (one rounding)
    vadd(a, b), vsub(a, b), vmul(a, b), vmax(a, b)   (vmax: of a NaN and a number, the number)
    vsum(v)                -> the sum of the lanes (a scalar)

None of them checks bounds: the caller guarantees ``offset + LANES <= a.size``.
"""

import os

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic, models, register_model

__all__ = [
    "LANES",
    "LANES_ENV",
    "FloatVector",
    "lanes_for",
    "vadd",
    "vbroadcast",
    "vfma",
    "vload",
    "vmax",
    "vmul",
    "vsplat",
    "vstore",
    "vsub",
    "vsum",
]

# CPU names whose default features include AVX-512F (LLVM's names), for a target given by name
# with its features left to the name (NUMBA_CPU_FEATURES empty).
_AVX512_CPUS = (
    "skylake-avx512",
    "cascadelake",
    "cooperlake",
    "cannonlake",
    "icelake",
    "tigerlake",
    "rocketlake",
    "sapphirerapids",
    "graniterapids",
    "emeraldrapids",
    "znver4",
    "znver5",
    "x86-64-v4",
    "knl",
    "knm",
)
_AVX_CPUS = (
    "sandybridge",
    "ivybridge",
    "haswell",
    "broadwell",
    "skylake",
    "alderlake",
    "raptorlake",
    "meteorlake",
    "arrowlake",
    "lunarlake",
    "gracemont",
    "znver1",
    "znver2",
    "znver3",
    "bdver",
    "btver2",
    "x86-64-v3",
)


def lanes_for(cpu_name, features):
    """Float32 lanes of the widest vector registers of a compile target: ``features`` is LLVM's
    feature string ("+avx2,-avx512f,...") or None/"" to take the CPU name's own."""
    if features:
        enabled = {f[1:] for f in features.split(",") if f.startswith("+")}
        return 16 if "avx512f" in enabled else 8 if "avx" in enabled else 4
    name = (cpu_name or "").lower()
    return 16 if name.startswith(_AVX512_CPUS) else 8 if name.startswith(_AVX_CPUS) else 4


LANES_ENV = "NUMBACNN_LANES"
LANE_CHOICES = (4, 8, 16)


def forced_lanes():
    """The width NUMBACNN_LANES forces, or None; any other value is refused by name."""
    value = os.environ.get(LANES_ENV, "").strip()
    if not value:
        return None
    if value not in {str(n) for n in LANE_CHOICES}:
        raise ValueError(f"{LANES_ENV}={value!r}: the SIMD width must be one of 4, 8 or 16 (or unset)")
    return int(value)


def target_lanes():
    """Lanes for the target numba compiles for in this process."""
    name = config.CPU_NAME or llvm.get_host_cpu_name()
    if config.CPU_FEATURES is not None:
        return lanes_for(name, config.CPU_FEATURES)
    if config.CPU_NAME:  # a named CPU without features: the name's own
        return lanes_for(name, None)
    host = llvm.get_host_cpu_features()
    return lanes_for(name, ",".join(("+" if on else "-") + f for f, on in host.items()))


LANES = forced_lanes() or target_lanes()


class FloatVector(types.Type):
    """``lanes`` floats of ``dtype`` (types.float32 or types.float64) in one LLVM vector value."""

    def __init__(self, dtype, lanes):
        self.dtype, self.lanes = dtype, lanes
        super().__init__(name=f"FloatVector({dtype}, {lanes})")


@register_model(FloatVector)
class _FloatVectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _float_array(a):
    return isinstance(a, types.Array) and isinstance(a.dtype, types.Float) and a.layout == "C"


def _element_pointer(context, builder, array_type, array, offset, offset_type, value_type):
    """A pointer to ``array``'s element ``offset``, typed as a pointer to ``value_type`` (a vector
    or the element itself)."""
    data = context.make_array(array_type)(context, builder, array).data
    index = context.cast(builder, offset, offset_type, types.intp)
    return builder.bitcast(builder.gep(data, [index]), context.get_value_type(value_type).as_pointer())


@intrinsic
def vload(typingctx, a, offset):
    if not (_float_array(a) and isinstance(offset, types.Integer)):
        return None
    vector = FloatVector(a.dtype, LANES)

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, a, args[0], args[1], offset, vector)
        return builder.load(pointer, align=a.dtype.bitwidth // 8)

    return vector(a, offset), codegen


@intrinsic
def vstore(typingctx, a, offset, v):
    if not (_float_array(a) and isinstance(offset, types.Integer) and v == FloatVector(a.dtype, LANES)):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, a, args[0], args[1], offset, v)
        builder.store(args[2], pointer, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(a, offset, v), codegen


def _splat(context, builder, vector, value):
    """LANES copies of the scalar ``value`` (insertelement + shufflevector: one broadcast)."""
    undefined = ir.Constant(context.get_value_type(vector), ir.Undefined)
    first = builder.insert_element(undefined, value, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
    return builder.shuffle_vector(first, undefined, zeros)


@intrinsic
def vsplat(typingctx, x):
    if not isinstance(x, types.Float):
        return None
    vector = FloatVector(x, LANES)

    def codegen(context, builder, signature, args):
        return _splat(context, builder, vector, args[0])

    return vector(x), codegen


@intrinsic
def vbroadcast(typingctx, a, offset):
    if not (_float_array(a) and isinstance(offset, types.Integer)):
        return None
    vector = FloatVector(a.dtype, LANES)

    def codegen(context, builder, signature, args):
        element = a.dtype
        pointer = _element_pointer(context, builder, a, args[0], args[1], offset, element)
        return _splat(context, builder, vector, builder.load(pointer))

    return vector(a, offset), codegen


def _call_intrinsic(builder, name, vector_type, args):
    """Call the LLVM intrinsic ``name`` overloaded for ``vector_type`` (e.g. llvm.fma.v8f32)."""
    element = "f32" if isinstance(vector_type.element, ir.FloatType) else "f64"
    function_type = ir.FunctionType(vector_type, [vector_type] * len(args))
    function = cgutils.get_or_insert_function(builder.module, function_type, f"{name}.v{vector_type.count}{element}")
    return builder.call(function, args)


def _same_vectors(*vs):
    return isinstance(vs[0], FloatVector) and all(v == vs[0] for v in vs)


@intrinsic
def vfma(typingctx, a, b, c):
    if not _same_vectors(a, b, c):
        return None

    def codegen(context, builder, signature, args):
        return _call_intrinsic(builder, "llvm.fma", context.get_value_type(a), args)

    return a(a, b, c), codegen


def _binary(operation):
    def typer(typingctx, a, b):
        if not _same_vectors(a, b):
            return None

        def codegen(context, builder, signature, args):
            return operation(builder, context, a, *args)

        return a(a, b), codegen

    return intrinsic(typer)


vadd = _binary(lambda builder, context, t, x, y: builder.fadd(x, y))
vsub = _binary(lambda builder, context, t, x, y: builder.fsub(x, y))
vmul = _binary(lambda builder, context, t, x, y: builder.fmul(x, y))


def _maxnum(builder, context, t, x, y):
    return _call_intrinsic(builder, "llvm.maxnum", context.get_value_type(t), [x, y])


vmax = _binary(_maxnum)


@intrinsic
def vsum(typingctx, v):
    if not isinstance(v, FloatVector):
        return None

    def codegen(context, builder, signature, args):
        total = builder.extract_element(args[0], ir.Constant(ir.IntType(32), 0))
        for lane in range(1, v.lanes):
            total = builder.fadd(total, builder.extract_element(args[0], ir.Constant(ir.IntType(32), lane)))
        return total

    return v.dtype(v), codegen
