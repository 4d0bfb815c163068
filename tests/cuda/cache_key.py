"""Print, as JSON, numba-cuda's compile-cache identity of some GPU kernels in this process.

Run as ``python3 tests/cuda/cache_key.py`` (tests/cuda/test_compile_cache.py runs it twice
and compares).  Needs numba-cuda, but no GPU and no driver: it computes what
``cuda.jit(cache=True)`` would look up -- the index file's name and the index key
(`numba.cuda.core.caching.Cache._index_key`: the signature, the target's magic tuple,
hashes of the bytecode and of the pickled closure cells) -- with a fixed stand-in for the
target part (the GPU's compute capability), without compiling.  A real GPU is needed to
see a kernel loaded from the cache (benchmarks/gpu_check.py reports the warm-up time of a
second process).

Also prints the same for a *control*: a kernel made the way fastdrop's kernels were made
before (a closure over one of the fast path's device functions), whose key is expected to
change from process to process.
"""
import json
import os
import sys
from pathlib import Path

os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


class _Codegen:
    """The target's part of the key (triple, compute capability), fixed."""

    def magic_tuple(self):
        return ("nvptx64-nvidia-cuda", (9, 0), "")


def main() -> int:
    from numba import cuda, types
    from numba.cuda.dispatcher import CUDACache
    from fastdrop._cuda import _fast as F
    from fastdrop._cuda import _kernels as K

    A = lambda dt: types.Array(dt, 1, "C")  # noqa: E731
    u8, u16, u32, u64, f32, b1, i64 = (types.uint8, types.uint16, types.uint32, types.uint64,
                                       types.float32, types.boolean, types.int64)
    fast_sig = (u64, u64, u64, u32, u32, u32, u32, u32, u32, f32, f32, f32, f32)
    gen_sig = (A(f32), A(f32), A(f32), A(f32), A(u8), A(b1), A(u8), A(b1), u64, u64, u64,
               u64, u64, u64, f32, f32, f32, f32, b1, b1, A(i64), A(i64), u64, A(i64),
               A(u64))
    kernels = {
        "fast/float32/bits16/packed": (F.forward_kernel("float32", 0, 16, True), fast_sig),
        "fast/bfloat16/bits8": (F.forward_kernel("bfloat16", 0, 8, False), fast_sig),
        "masked/float16": (F.masked_kernel("float16"), (u64, u64, u64, u32, f32)),
        "general/float32/draws": (K.dropout_kernel("float32", K.OP_SCALE, K.KS_DRAWS),
                                  gen_sig),
        "general/float32/noise": (K.dropout_kernel("float32", K.OP_SCALE, K.KS_PACKED,
                                                   full=False, small=True), gen_sig),
        "colsum/bfloat16": (K.colsum_kernel("bfloat16"), (A(u16), A(f32), u64, u64, u32)),
        "k_mask": (K.k_mask, (A(u8), A(b1), u64, u64, u64, u64, u64, u64, b1, b1)),
    }
    load8 = F._codec8("float32")[0]

    def old_style(dev=load8):          # a closure, as the kernels were made before
        @cuda.jit(cache=True)
        def kernel(y, x):
            a = dev(x, 0)
            y[0] = a[0]
        return kernel

    kernels["control"] = (old_style(), (A(u32), A(u32)))
    out = {}
    for label, (k, sig) in kernels.items():
        cache = getattr(k, "_cache", None)
        if not isinstance(cache, CUDACache):
            out[label] = {"cached": False}
            continue
        out[label] = {"cached": True, "index": cache._cache_file._index_name,
                      "key": repr(cache._index_key(sig, _Codegen()))}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
