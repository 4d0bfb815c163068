"""The GPU backend's DLPack reader against the installed cuda-core, with no GPU needed:
cuda-core 1.x moved StridedMemoryView to cuda.core.utils, and the old import failed for
every DLPack-only CUDA array (issue 18).  A host array exercises the same reader."""
import numpy as np
import pytest

pytest.importorskip("numba.cuda")
pytest.importorskip("cuda.core")

from fastdrop._cuda._memory import _strided_memory_view, dlpack_view  # noqa: E402


def test_the_reader_imports_from_the_installed_cuda_core():
    smv = _strided_memory_view()
    assert hasattr(smv, "from_dlpack")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.uint8, np.bool_])
@pytest.mark.parametrize("view", ["C", "F", "strided", "0-d"])
def test_dlpack_view_reads_shape_strides_and_pointer(dtype, view):
    base = np.arange(48).reshape(6, 8).astype(dtype)
    a = {"C": base, "F": np.asfortranarray(base), "strided": base[::2, 1::3],
         "0-d": base[2:3, 3:4].reshape(())}[view]
    name, shape, strides, ptr, readonly, _, _ = dlpack_view(a)
    assert name == np.dtype(dtype).name
    assert shape == a.shape and ptr == a.ctypes.data and readonly is False
    assert strides == a.strides or a.ndim == 0


def test_big_endian_dlpack_arrays_are_refused_by_name():
    # NumPy exports non-native arrays through DLPack only as a BufferError; the reader's own
    # check (typestr '>...') is tested on device arrays in test_cuda_dropout.py
    with pytest.raises((BufferError, TypeError)):
        dlpack_view(np.arange(4, dtype=">f4"), "grad")
