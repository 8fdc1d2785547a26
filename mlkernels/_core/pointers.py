"""Element access through raw addresses: how one ``foreach`` launch reaches a LIST of
arrays of different sizes (PyTorch's ``_foreach_*`` and its multi-tensor apply do the same
with a table of pointers). A kernel receives an int64 table of the arrays' addresses and
reads and writes ``load(address, i, ref)`` / ``store(address, i, ref, value)``, ``ref`` a
(0-size) array of the elements' dtype (the GPU), or views a chunk of an array as an
array, ``carray(pointer(address, ref), n)`` (the CPU: loops over arrays vectorise). Under
the CUDA simulator (plain Python) the addresses are viewed through ctypes.
"""

from __future__ import annotations

import ctypes

import numpy as np
from numba import types
from numba.extending import intrinsic


def _pointer(context, builder, dtype, address, index):
    ptr_type = context.get_value_type(types.CPointer(dtype))
    base = builder.inttoptr(address, ptr_type)
    return builder.gep(base, [index])


@intrinsic
def pointer(typingctx, address, ref):
    """``(dtype *) address``, dtype that of the array ``ref`` (for ``numba.carray``)."""
    ptr_type = types.CPointer(ref.dtype)
    sig = ptr_type(address, ref)

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(ptr_type))

    return sig, codegen


@intrinsic
def load(typingctx, address, index, ref):
    """``((dtype *) address)[index]``, dtype that of the array ``ref``."""
    dtype = ref.dtype
    sig = dtype(address, index, ref)

    def codegen(context, builder, sig, args):
        return builder.load(_pointer(context, builder, dtype, args[0], args[1]))

    return sig, codegen


@intrinsic
def store(typingctx, address, index, ref, value):
    """``((dtype *) address)[index] = value``, dtype that of the array ``ref``."""
    dtype = ref.dtype
    sig = types.none(address, index, ref, value)

    def codegen(context, builder, sig, args):
        v = context.cast(builder, args[3], sig.args[3], dtype)
        builder.store(v, _pointer(context, builder, dtype, args[0], args[1]))
        return context.get_dummy_value()

    return sig, codegen


def _view(address, index, ref):
    dtype = np.dtype(ref.dtype)
    ctype = ctypes.c_double if dtype == np.float64 else ctypes.c_float
    return ctype.from_address(int(address) + int(index) * dtype.itemsize)


def sim_load(address, index, ref):
    """:func:`load` for the CUDA simulator, whose kernels run as Python."""
    return np.dtype(ref.dtype).type(_view(address, index, ref).value)


def sim_store(address, index, ref, value):
    """:func:`store` for the CUDA simulator."""
    _view(address, index, ref).value = value


def _data(a):
    return a.ctypes.data


_host_data = None  # _data compiled (at the first host address asked for)


def address(x) -> int:
    """The address of a C-contiguous host or device array's first element."""
    global _host_data
    if type(x) is np.ndarray:
        # compiled, it costs 0.6 µs; __array_interface__ builds a dict, 3 µs: 2 ms an
        # optimiser step over 200 parameters, their gradients and moments
        if _host_data is None:
            from mlkernels._core.jit import _njit

            _host_data = _njit(_data, parallel=False)
        return _host_data(x)
    if isinstance(x, np.ndarray):
        return x.__array_interface__["data"][0]
    if hasattr(x, "_ary"):  # a simulator device array: host memory
        return x._ary.__array_interface__["data"][0]
    return x.__cuda_array_interface__["data"][0]
