"""Compile every GPU kernel to PTX without a GPU, and check its floating-point ops.

Run as ``python3 tests/cuda/ptx_check.py`` (tests/cuda/test_simulator_run.py does, when
libNVVM is present).  It needs numba-cuda and libNVVM (the CUDA toolkit's nvvm), but no
GPU and no driver: NUMBA_FORCE_CUDA_CC picks the target and NVRTC -- only used to list
architectures and locate libdevice -- is bypassed.  It checks that

- every kernel specialisation compiles for real hardware (the simulator does not type
  anything, so this is what catches Numba typing errors);
- no floating-point FMA (``fma.rn.f32/f64``) appears: NVVM would contract ``a * b + c``
  into one, which would break bit-identity with the CPU (-ffp-contract=off);
- every float multiply / add / divide / sqrt carries an explicit IEEE rounding
  (``.rn``), so ptxas cannot fuse them, and none is approximate (``.approx``, ``.full``).

Prints a summary and exits 1 on any failure.
"""
import os
import re
import sys

os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
os.environ.setdefault("NUMBA_FORCE_CUDA_CC", "8.0")


def main() -> int:
    try:
        from numba.cuda import cuda_paths
    except ImportError:
        print("SKIP: numba-cuda is not installed")
        return 0
    cuda_paths._get_nvrtc_path = lambda: cuda_paths._env_path_tuple("none", None)
    from numba import cuda, types
    from numba.cuda import dispatcher
    from numba.cuda.cudadrv import nvvm
    # device functions ask the current device for its compute capability: answer 8.0
    dispatcher.get_current_device = lambda: type("Dev", (), {"compute_capability": (8, 0)})
    if not nvvm.is_available():
        print("SKIP: libNVVM not found")
        return 0
    from fastdrop._cuda import _kernels as K

    A = lambda dt: types.Array(dt, 1, "C")  # noqa: E731
    u8, u16, u32, u64, i64 = types.uint8, types.uint16, types.uint32, types.uint64, types.int64
    f32, f64, b1 = types.float32, types.float64, types.boolean
    storage = {"float16": u16, "bfloat16": u16, "float32": f32, "float64": f64}
    ct = {"float16": f32, "bfloat16": f32, "float32": f32, "float64": f64}

    jobs = [
        ("k_philox", K.k_philox, (A(u32), A(u32), A(u32), u64, i64)),
        ("k_bits/32", K.k_bits, (A(u32), u64, u64, u64, u64, u64)),
        ("k_bits/16", K.k_bits, (A(u16), u64, u64, u64, u64, u64)),
        ("k_uniform32", K.k_uniform32, (A(f32), u64, u64, u64, u64)),
        ("k_uniform64", K.k_uniform64, (A(f64), u64, u64, u64, u64)),
        ("k_normal/f32", K.k_normal, (A(f32), u64, u64, u64, u64)),
        ("k_normal/f64", K.k_normal, (A(f64), u64, u64, u64, u64)),
        ("k_mask", K.k_mask, (A(u8), A(b1), u64, u64, u64, u64, u64, u64, b1, b1)),
        ("mask_block/small", K.mask_block_kernel(True),
         (A(u8), A(b1), u64, u64, A(i64), A(u64), u64, u64, u64, u64, b1, b1)),
        ("mask_block/large", K.mask_block_kernel(False),
         (A(u8), A(b1), u64, u64, A(i64), A(u64), u64, u64, u64, u64, b1, b1)),
        ("k_pairwise_leaves", K.k_pairwise_leaves, (A(f64), A(f32), u64, u64)),
        ("k_copy", K.k_copy, (A(u16), A(u16), u64)),
    ]
    for raw in (u8, u16, u32, f64, b1):
        jobs.append((f"k_gather/{raw}", K.k_gather, (A(raw), A(raw), u64, i64, A(i64), A(i64))))
        jobs.append((f"k_scatter/{raw}", K.k_scatter, (A(raw), A(raw), u64, i64, A(i64), A(i64))))
    for name, sd in storage.items():
        c = ct[name]
        for op in (K.OP_SCALE, K.OP_ALPHA, K.OP_BDA):
            sig = (A(sd), A(sd), A(sd), A(sd), A(u8), A(b1), A(u8), A(b1), u64, u64, u64,
                   u64, u64, u64, c, c, c, c, b1, b1, A(i64), A(i64), u64, A(i64), A(u64))
            for ks in (K.KS_DRAWS, K.KS_ALL, K.KS_PACKED, K.KS_BOOL):
                jobs.append((f"dropout/{name}/op{op}/ks{ks}", K.dropout_kernel(name, op, ks), sig))
            for small in (True, False):
                jobs.append((f"dropout/{name}/op{op}/block/small{int(small)}",
                             K.dropout_kernel(name, op, K.KS_DRAWS, True, small=small), sig))
                if op != K.OP_BDA:
                    for ks in (K.KS_PACKED, K.KS_BOOL):
                        jobs.append((f"dropout/{name}/op{op}/ks{ks}/noise/small{int(small)}",
                                     K.dropout_kernel(name, op, ks, full=False, small=small),
                                     sig))
                else:
                    jobs.append((f"dropout/{name}/op{op}/bias/small{int(small)}",
                                 K.dropout_kernel(name, op, K.KS_DRAWS, has_bias=True,
                                                  small=small), sig))
        jobs.append((f"gaussian/{name}", K.gaussian_kernel(name),
                     (A(sd), A(sd), u64, u64, u64, f64)))
        for small in (True, False):
            jobs.append((f"gaussian_block/{name}/small{int(small)}",
                         K.gaussian_block_kernel(name, small),
                         (A(sd), A(sd), u64, u64, u64, f64, u64, A(i64), A(u64))))
        jobs.append((f"colsum/{name}", K.colsum_kernel(name), (A(sd), A(c), u64, u64, u32)))
        jobs.append((f"pairwise_combine/{name}", K.pairwise_combine_kernel(name),
                     (A(sd), A(f64), u64, u64)))
        if name in ("float16", "bfloat16"):
            jobs.append((f"convert/{name}->f32", K.convert_kernel(name, "float32"),
                         (A(f32), A(sd), u64)))
            jobs.append((f"convert/f32->{name}", K.convert_kernel("float32", name),
                         (A(sd), A(f32), u64)))

    from fastdrop._cuda import _fast as F  # the fast path: every specialisation
    for name, sd in storage.items():
        c = ct[name]
        sig = (u64, u64, u64, u32, u32, u32, u32, u32, u32, c, c, c, c)   # addresses
        for op in F.OPS:
            for bits in (8, 16, 32):
                for packed in (False, True):
                    jobs.append((f"fast/{name}/op{op}/bits{bits}/packed{int(packed)}",
                                 F.forward_kernel(name, op, bits, packed), sig))
            jobs.append((f"fast_tail/{name}/op{op}", F.tail_kernel(name, op),
                         (A(sd), A(sd), A(u8), u64, u64, u64, u64, u64, u64, c, c, c, c, b1)))

        jobs.append((f"fast_masked/{name}", F.masked_kernel(name), (u64, u64, u64, u32, c)))
        for bits in (8, 16, 32):
            for has_bias in (False, True):
                jobs.append((f"fast_bda/{name}/bits{bits}/bias{int(has_bias)}",
                             F.bda_kernel(name, bits, True, has_bias),
                             (u64, u64, u64, u64, u64) + (u32,) * 7 + (c,)))
        jobs.append((f"fast_masked_tail/{name}", F.masked_tail_kernel(name),
                     (A(sd), A(sd), A(u8), u64, u64, c)))

    def control(out, a, b):  # plain arithmetic: NVVM contracts it, the check must see it
        i = cuda.grid(1)
        if i < out.size:
            out[i] = a[i] * b[i] + 1.0

    jobs.append(("control (must be flagged)", type("C", (), {"py_func": staticmethod(control)}),
                 (A(f64), A(f64), A(f64))))

    fma = re.compile(r"\bfma\.\w*\.?f(32|64)\b")
    float_op = re.compile(r"\b(mul|add|sub|div|sqrt)(\.\w+)*\.f(32|64)\b")
    failures = 0
    counted = 0
    for label, kernel, sig in jobs:
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(8, 0))
        except Exception as exc:  # typing or lowering error
            failures += 1
            print(f"FAIL {label}: does not compile: {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0][:300]}")
            continue
        bad = []
        for line in ptx.splitlines():
            ins = line.strip().split(" ")[0].split("\t")[0]
            if fma.search(ins):
                bad.append(ins)
            elif float_op.search(ins):
                counted += 1
                if ".rn" not in ins or ".approx" in ins or ".full" in ins:
                    bad.append(ins)
        if label.startswith("control"):
            if not bad:
                failures += 1
                print("FAIL the control kernel's contracted FMA went unnoticed")
            continue
        if bad:
            failures += 1
            print(f"FAIL {label}: unrounded or fused float ops: {sorted(set(bad))}")
    print(f"ptx_check: {len(jobs) - 1} kernels compiled for sm_80, {counted} float ops checked, "
          f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
