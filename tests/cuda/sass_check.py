"""Static SASS check of the GPU fast path, without a GPU: PTX (numba-cuda) -> ptxas -> nvdisasm.

Run as ``python3 tests/cuda/sass_check.py [--json PATH] [--no-general] [--quick]``
(tests/cuda/test_sass_check.py runs it when the toolkit is there).  It needs numba-cuda
with libNVVM, ``ptxas`` (CUDA toolkit: PATH or /usr/local/cuda*/bin) and ``nvdisasm``
(the toolkit's, or PyPI's nvidia-cuda-nvdisasm); it prints ``SKIP: ...`` and exits 0
when one of them is missing.

Every fast-path specialisation (`fastdrop._cuda._fast.forward_kernel`: dtype x bits x
packed mask, op DROPOUT; op ALPHA too for float32 and bfloat16) is compiled for sm_90
and checked:

- the grid-stride loop is found (the one backward branch) and holds exactly
  ``UNIT_WORDS / 4`` ``LDG.E.128`` and as many ``STG.E.128``, every load before the first
  store, no other global load or store but the mask byte's ``STG.E.U8`` (with the packed
  mask only), no generic ``LD``/``ST``, and no branch but the loop's own;
- no local memory (``LDL``/``STL``, stack frame, spills) and no ``CALL`` (the 64-bit
  division routines are calls) anywhere in the kernel;
- at most 32 registers;
- SASS instructions per 8-element unit (the loop body: one unit per iteration) within
  the issue's targets: 25 per element for float32, 30 for float16 / bfloat16 (float64
  and alpha are reported, not bounded).

`_fast.masked_kernel` (the backward from a packed mask) is checked the same way, with
the mask byte's ``LDG.E.U8`` allowed in the loop (no store of a mask), and a target of
15 instructions per element (float64 reported); `_fast.bda_kernel` (bias-dropout-add:
float32, bfloat16 and float64, bits 8 and 16, with and without a bias) with 2 or 3 times
as many 16-byte loads (x, residual, bias), its count reported; float64 bias-dropout-add
goes in two halves of a unit, so its loop must hold the first half's loads, its two
stores, the second half's loads, its two stores, in that order.

These are *static* figures of the compiled code, not measurements on hardware.  The
general kernels (`_kernels.dropout_kernel` for n < 2^32, one per path of GENERAL_CASES:
the draws, a packed or bool mask, alpha, a noise shape, ``block=``, bias-dropout-add with
a bias, with and without a block map) are compiled the same way: registers, total SASS
instructions, global accesses by width, calls (their per-element loops make a per-unit
count from the static code meaningless); each must have no local memory, no ``CALL`` and
at most 32 registers.  The dbias reductions are reported (no local memory, no call).

A control kernel (a scalar grid-stride copy) must be flagged by the loop checks, so they
are not vacuous.  ``--quick`` checks three fast specialisations, one masked backward and
five float32 general kernels (GENERAL_QUICK) only (the test suite's default).

Prints a table; exits 1 if any check fails.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
os.environ.setdefault("NUMBA_FORCE_CUDA_CC", "9.0")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

ARCH = "sm_90"
TARGET_PER_ELEMENT = {"float32": 25, "float16": 30, "bfloat16": 30}
MAX_REGISTERS = 32

_INS = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_LABEL = re.compile(r"^\s*(\.L_x_\d+):")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")


def find_tool(name: str) -> str | None:
    """A CUDA tool: the nvidia-* PyPI wheels' bin/ first (nvidia-cuda-nvcc installs its
    ptxas beside the libNVVM wheel numba-cuda then compiles with, so the two agree on the
    PTX version; an older toolkit's ptxas refuses newer PTX), then PATH, then
    /usr/local/cuda*/bin."""
    for p in sys.path:
        for hit in sorted(glob.glob(os.path.join(p, "nvidia", "*", "bin", name))):
            if os.access(hit, os.X_OK):
                return hit
    hit = shutil.which(name)
    if hit:
        return hit
    for pattern in ("/usr/local/cuda*/bin/", "/opt/cuda*/bin/"):
        for d in sorted(glob.glob(pattern)):
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
    return None


def parse_sass(text: str) -> list[tuple[int, str, list[str]]]:
    """(address, instruction text, labels just before it) of every SASS instruction."""
    out, labels = [], []
    for line in text.splitlines():
        m = _LABEL.match(line)
        if m:
            labels.append(m.group(1))
            continue
        m = _INS.search(line)
        if m:
            out.append((int(m.group(1), 16), m.group(2).strip(), labels))
            labels = []
    return out


def opcode(ins: str) -> str:
    """The opcode of an instruction, its predicate dropped: ``@!P0 BRA x`` -> ``BRA``."""
    parts = ins.split()
    if parts and parts[0].startswith("@"):
        parts = parts[1:]
    return parts[0] if parts else ""


def loops(code) -> list[tuple[int, int]]:
    """(first, last) indices into `code` of every loop: a branch to an earlier label."""
    where = {}
    for i, (_, _, labels) in enumerate(code):
        for lb in labels:
            where[lb] = i
    found = []
    for i, (_, ins, _) in enumerate(code):
        if opcode(ins) == "BRA":
            m = _TARGET.search(ins)
            if m and m.group(1) in where and where[m.group(1)] < i:
                found.append((where[m.group(1)], i))
    return found


def is_global(op: str, kind: str) -> bool:
    return op.startswith(kind + ".") or op == kind


def analyse(code) -> dict:
    """Counts over the whole kernel: instructions (to the first EXIT-only tail), global
    accesses by opcode, local accesses, calls."""
    ops = [opcode(ins) for _, ins, _ in code]
    real = [o for o in ops if o not in ("NOP",)]
    return {
        "instructions": len(real),
        "ldg": sorted(o for o in real if is_global(o, "LDG")),
        "stg": sorted(o for o in real if is_global(o, "STG")),
        "generic": sorted(o for o in real if o.split(".")[0] in ("LD", "ST")),
        "local": sorted(o for o in real if o.split(".")[0] in ("LDL", "STL")),
        "calls": sum(1 for o in real if o.startswith("CALL")),
    }


class Toolchain:
    """numba-cuda's PTX for sm_90 without a GPU, assembled and disassembled."""

    def __init__(self, ptxas: str, nvdisasm: str):
        self.ptxas, self.nvdisasm = ptxas, nvdisasm
        self.dir = tempfile.mkdtemp(prefix="fastdrop-sass-")
        from numba.cuda import cuda_paths
        cuda_paths._get_nvrtc_path = lambda: cuda_paths._env_path_tuple("none", None)
        from numba import cuda
        from numba.cuda import dispatcher
        dispatcher.get_current_device = lambda: type("Dev", (),
                                                     {"compute_capability": (9, 0)})
        self.cuda = cuda

    def compile(self, label: str, kernel, sig) -> dict:
        """ptxas's resource report and the SASS of one kernel specialisation (a
        dispatcher, whose ``max_registers`` option becomes ``-maxrregcount`` as numba-cuda
        passes it to the linker, or a plain function)."""
        pyfunc = getattr(kernel, "py_func", kernel)
        maxreg = getattr(kernel, "targetoptions", {}).get("max_registers")
        ptx, _ = self.cuda.compile_ptx(pyfunc, sig, cc=(9, 0))
        stem = os.path.join(self.dir, re.sub(r"[^A-Za-z0-9_]+", "_", label))
        Path(stem + ".ptx").write_text(ptx)
        cap = [f"-maxrregcount={maxreg}"] if maxreg else []
        r = subprocess.run([self.ptxas, f"-arch={ARCH}", "-v", *cap, "-o", stem + ".cubin",
                            stem + ".ptx"], capture_output=True, text=True, check=True)
        report = r.stderr
        sass = subprocess.run([self.nvdisasm, "-c", stem + ".cubin"], capture_output=True,
                              text=True, check=True).stdout
        regs = int(re.search(r"Used (\d+) registers", report).group(1))
        frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, "
                          r"(\d+) bytes spill loads", report)
        return {"ptx": ptx, "sass": sass, "registers": regs,
                "stack": int(frame.group(1)), "spills": int(frame.group(2)) + int(frame.group(3))}


def check_loop(code, n_vec: int, packed: bool, mask_in: bool = False,
               n_loads: int | None = None, elements: int = 8, groups: int = 1) -> dict:
    """The checks of a fast kernel's grid-stride loop: {"row": figures, "problems": [..]}.
    packed: the mask bytes are stored (one STG.E.U8 per 8 elements); mask_in: the mask
    byte is loaded (LDG.E.U8); n_loads: the LDG.E.128 expected (n_vec, the STG.E.128
    count, by default); elements: per iteration (16 at bits=8: one Philox block);
    groups: the unit goes in that many equal parts (float64 bias-dropout-add: 2 halves),
    the 16-byte accesses in order being each part's n_loads / groups loads then its
    n_vec / groups stores, the mask byte after every load (groups=1: every load before
    any store)."""
    found = loops(code)
    if len(found) != 1:
        return {"row": {}, "problems": [f"expected one loop, found {len(found)}"]}
    lo, hi = found[0]
    body = [opcode(ins) for _, ins, _ in code[lo:hi + 1]]
    ldg = [i for i, o in enumerate(body) if is_global(o, "LDG")]
    stg = [i for i, o in enumerate(body) if is_global(o, "STG")]
    ld128 = [i for i in ldg if body[i] == "LDG.E.128"]
    st128 = [i for i in stg if body[i] == "STG.E.128"]
    other_ld = [body[i] for i in ldg if body[i] != "LDG.E.128"]
    other_st = [body[i] for i in stg if body[i] != "STG.E.128"]
    row = dict(elements=elements, per_unit=len(body),
               per_element=round(len(body) / elements, 2),
               ldg128=len(ld128), stg128=len(st128), scalar_ld=len(other_ld),
               scalar_st=other_st, branches=sum(o == "BRA" for o in body))
    problems = []
    n_loads = n_vec if n_loads is None else n_loads
    if len(ld128) != n_loads or len(st128) != n_vec:
        problems.append(f"{len(ld128)} LDG.E.128 and {len(st128)} STG.E.128 in the loop, "
                        f"expected {n_loads} and {n_vec}")
    # (the mask byte: ptxas may load it sign-extended, only its low 8 bits are used)
    if [o.replace(".S8", ".U8") for o in other_ld] != (["LDG.E.U8"] if mask_in else []):
        problems.append(f"scalar loads in the loop: {other_ld}")
    if other_st != (["STG.E.U8"] * (elements // 8) if packed else []):
        problems.append(f"unexpected stores in the loop: {other_st}")
    if groups == 1:
        if ldg and stg and max(ldg) > min(stg):
            problems.append("a load follows a store in the loop")
    else:
        seq = "".join("L" if body[i] == "LDG.E.128" else "S"
                      for i in sorted(ld128 + st128))
        want = ("L" * (n_loads // groups) + "S" * (n_vec // groups)) * groups
        if seq != want:
            problems.append(f"16-byte loads (L) and stores (S) in the loop in the order "
                            f"{seq}, expected {want}")
        if ldg and any(i < max(ldg) for i in stg if body[i] != "STG.E.128"):
            problems.append("a load follows the mask byte's store in the loop")
    if any(o.split(".")[0] in ("LD", "ST") for o in body):
        problems.append("generic (non-global) loads or stores in the loop")
    if row["branches"] != 1:
        problems.append(f"{row['branches']} branches in the loop (only the back edge "
                        f"expected)")
    return {"row": row, "problems": problems}


def control(tc: Toolchain) -> list[str]:
    """A scalar grid-stride copy loop (y[i] = x[i] * 2): the loop checks must flag it
    (so they are not vacuous); returns their complaints."""
    import numpy as np
    from numba import types

    cuda = tc.cuda

    def k(y, x, n):
        i = np.uint32(cuda.grid(1))
        while i < n:
            y[i] = x[i] * np.float32(2.0)
            i = np.uint32(i + np.uint32(cuda.gridsize(1)))

    A = types.Array(types.float32, 1, "C")
    res = tc.compile("control", k, (A, A, types.uint32))
    return check_loop(parse_sass(res["sass"]), 2, False)["problems"]


def check_masked(tc: Toolchain, dtype: str) -> dict:
    """Compile and check `_fast.masked_kernel` (the backward from a packed mask)."""
    from numba import types
    from fastdrop._cuda import _fast as F
    ct = types.float64 if dtype == "float64" else types.float32
    u32, u64 = types.uint32, types.uint64
    label = f"masked/{dtype}/bwd(mask)"
    res = tc.compile(label, F.masked_kernel(dtype), (u64, u64, u64, u32, ct))
    code = parse_sass(res["sass"])
    whole = analyse(code)
    loop = check_loop(code, F.UNIT_WORDS[dtype] // 4, False, mask_in=True)
    row = {"label": label, "dtype": dtype, "op": 0, "bits": None, "packed": "in",
           "registers": res["registers"], "stack": res["stack"], "spills": res["spills"],
           "calls": whole["calls"], "local": len(whole["local"]), **loop["row"]}
    problems = list(loop["problems"])
    if dtype != "float64" and row.get("per_unit", 0) > 8 * 15:
        problems.append(f"{row['per_unit']} instructions per unit > {8 * 15}")
    if whole["calls"] or whole["local"] or res["stack"] or res["spills"]:
        problems.append("calls or local memory")
    if res["registers"] > MAX_REGISTERS:
        problems.append(f"{res['registers']} registers > {MAX_REGISTERS}")
    row["problems"] = problems
    return row


def check_bda(tc: Toolchain, dtype: str, bits: int, has_bias: bool) -> dict:
    """Compile and check `_fast.bda_kernel` (bias-dropout-add, packed mask): x, the
    residual and the bias in 16-byte loads (no target on the count: reported); float64
    goes in two halves, each half's loads before its stores (`check_loop`'s groups)."""
    from numba import types
    from fastdrop._cuda import _fast as F
    ct = types.float64 if dtype == "float64" else types.float32
    u32, u64 = types.uint32, types.uint64
    label = f"bda/{dtype}/bits{bits}/{'bias' if has_bias else 'nobias'}/packed"
    sig = (u64, u64, u64, u64, u64, u32, u32, u32, u32, u32, u32, u32, ct)
    res = tc.compile(label, F.bda_kernel(dtype, bits, True, has_bias), sig)
    code = parse_sass(res["sass"])
    whole = analyse(code)
    n_vec = F.UNIT_WORDS[dtype] // 4
    loop = check_loop(code, n_vec, True, n_loads=n_vec * (3 if has_bias else 2),
                      groups=2 if dtype == "float64" else 1)
    row = {"label": label, "dtype": dtype, "op": 1, "bits": bits, "packed": True,
           "registers": res["registers"], "stack": res["stack"], "spills": res["spills"],
           "calls": whole["calls"], "local": len(whole["local"]), **loop["row"]}
    problems = list(loop["problems"])
    if whole["calls"] or whole["local"] or res["stack"] or res["spills"]:
        problems.append("calls or local memory")
    if res["registers"] > MAX_REGISTERS:
        problems.append(f"{res['registers']} registers > {MAX_REGISTERS}")
    row["problems"] = problems
    return row


def check_fast(tc: Toolchain, dtype: str, op: int, bits: int, packed: bool) -> dict:
    """Compile one fast specialisation and check it (see the module docstring)."""
    from numba import types
    from fastdrop._cuda import _fast as F
    ct = types.float64 if dtype == "float64" else types.float32
    u32 = types.uint32
    u64 = types.uint64   # the route passes device addresses (`_fast.try_forward`)
    sig = (u64, u64, u64, u32, u32, u32, u32, u32, u32, ct, ct, ct, ct)
    label = f"fast/{dtype}/op{op}/bits{bits}/{'packed' if packed else 'nomask'}"
    res = tc.compile(label, F.forward_kernel(dtype, op, bits, packed), sig)
    code = parse_sass(res["sass"])
    whole = analyse(code)
    problems = []
    row = {"label": label, "dtype": dtype, "op": op, "bits": bits, "packed": packed,
           "registers": res["registers"], "stack": res["stack"], "spills": res["spills"],
           "loops": len(loops(code)), "calls": whole["calls"], "local": len(whole["local"])}
    per = F.per_iteration(dtype, bits)
    loop = check_loop(code, F.UNIT_WORDS[dtype] // 4 * (per // 8), packed, elements=per)
    row.update(loop["row"])
    problems += loop["problems"]
    target = TARGET_PER_ELEMENT.get(dtype)
    if target is not None and op == 0 and row.get("per_element", 0) > target:
        problems.append(f"{row['per_element']} instructions per element > {target}")
    if whole["calls"]:
        problems.append(f"{whole['calls']} CALL instructions (division routines?)")
    if whole["local"] or res["stack"] or res["spills"]:
        problems.append("local memory: stack frame, spills or LDL/STL")
    if res["registers"] > MAX_REGISTERS:
        problems.append(f"{res['registers']} registers > {MAX_REGISTERS}")
    row["problems"] = problems
    return row


#: the general kernels of the table: (label, op, keep source, block map, full mask, bias)
GENERAL_CASES = [
    ("fwd(draws)", 0, "DRAWS", False, True, False),
    ("bwd(packed mask)", 0, "PACKED", False, True, False),
    ("bwd(bool mask)", 0, "FLAGS", False, True, False),
    ("alpha(draws)", 2, "DRAWS", False, True, False),
    ("fwd(noise shape, packed)", 0, "PACKED", False, False, False),
    ("fwd(block=)", 0, "DRAWS", True, True, False),
    ("bias-dropout-add(bias)", 1, "DRAWS", False, True, True),
    ("bias-dropout-add(bias, block=)", 1, "DRAWS", True, True, True),
]
#: the general cases held to MAX_REGISTERS (every one, since fastdrop issue 18)
GENERAL_BOUNDED = tuple(case[0] for case in GENERAL_CASES)
#: the general cases of ``--quick`` (float32): the packed-mask backward and the paths
#: that were over the bound before fastdrop issue 18
GENERAL_QUICK = ("bwd(packed mask)", "fwd(noise shape, packed)", "fwd(block=)",
                 "bias-dropout-add(bias)", "bias-dropout-add(bias, block=)")


def _storage(dtype: str):
    from numba import types
    return {"float16": types.uint16, "bfloat16": types.uint16, "float32": types.float32,
            "float64": types.float64}[dtype]


def _general_row(tc: Toolchain, label: str, kernel, sig, bounded: bool) -> dict:
    res = tc.compile(label, kernel, sig)
    code = parse_sass(res["sass"])
    w = analyse(code)
    problems = []
    if w["local"] or res["stack"] or res["spills"]:
        problems.append("local memory: stack frame, spills or LDL/STL")
    if w["calls"]:
        problems.append(f"{w['calls']} CALL instructions (division routines?)")
    if bounded and res["registers"] > MAX_REGISTERS:
        problems.append(f"{res['registers']} registers > {MAX_REGISTERS}")
    return {"label": label, "registers": res["registers"], "stack": res["stack"],
            "spills": res["spills"], "instructions": w["instructions"],
            "loops": len(loops(code)), "calls": w["calls"], "bounded": bounded,
            "ldg": {o: w["ldg"].count(o) for o in sorted(set(w["ldg"]))},
            "stg": {o: w["stg"].count(o) for o in sorted(set(w["stg"]))},
            "problems": problems}


def general(tc: Toolchain, dtype: str, case: tuple) -> dict:
    """One general dropout kernel (`_kernels.dropout_kernel`, n < 2^32: 32-bit index
    divisions), for the table: registers, local memory, total SASS instructions, global
    accesses by width, calls (its per-element loops make a per-unit count from the static
    code meaningless).  Fails on local memory, on a CALL, and on registers over
    MAX_REGISTERS for GENERAL_BOUNDED."""
    from numba import types
    from fastdrop._cuda import _kernels as K
    A = lambda dt: types.Array(dt, 1, "C")  # noqa: E731
    u8, u64, i64, b1 = types.uint8, types.uint64, types.int64, types.boolean
    sd = _storage(dtype)
    c = types.float64 if dtype == "float64" else types.float32
    sig = (A(sd), A(sd), A(sd), A(sd), A(u8), A(b1), A(u8), A(b1), u64, u64, u64, u64, u64,
           u64, c, c, c, c, b1, b1, A(i64), A(i64), u64, A(i64), A(u64))
    name, op, ks, gmap, full, bias = case
    ks = {"DRAWS": K.KS_DRAWS, "PACKED": K.KS_PACKED, "FLAGS": K.KS_BOOL}[ks]
    kernel = K.dropout_kernel(dtype, op, ks, gmap, full, bias, True)
    return _general_row(tc, f"general/{dtype}/{name}", kernel, sig,
                        name in GENERAL_BOUNDED)


def reductions(tc: Toolchain, dtype: str) -> list[dict]:
    """dbias: the tiled column sum and the pairwise tree's two kernels (no register
    bound; no local memory)."""
    from numba import types
    from fastdrop._cuda import _kernels as K
    A = lambda dt: types.Array(dt, 1, "C")  # noqa: E731
    sd, u32, u64 = _storage(dtype), types.uint32, types.uint64
    c = types.float64 if dtype == "float64" else types.float32
    rows = [_general_row(tc, f"colsum/{dtype}", K.colsum_kernel(dtype),
                         (A(sd), A(c), u64, u64, u32), False),
            _general_row(tc, f"pairwise_combine/{dtype}", K.pairwise_combine_kernel(dtype),
                         (A(sd), A(types.float64), u64, u64), False)]
    if dtype == "float32":
        rows.append(_general_row(tc, "pairwise_leaves/float32", K.k_pairwise_leaves,
                                 (A(types.float64), A(c), u64, u64), False))
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    json_path = argv[argv.index("--json") + 1] if "--json" in argv else None
    try:
        from numba.cuda.cudadrv import nvvm
    except ImportError:
        print("SKIP: numba-cuda is not installed")
        return 0
    ptxas, nvdisasm = find_tool("ptxas"), find_tool("nvdisasm")
    if ptxas is None or nvdisasm is None:
        print(f"SKIP: ptxas ({ptxas}) or nvdisasm ({nvdisasm}) not found "
              f"(CUDA toolkit; pip install nvidia-cuda-nvdisasm)")
        return 0
    tc = Toolchain(ptxas, nvdisasm)
    if not nvvm.is_available():
        print("SKIP: libNVVM not found")
        return 0
    from fastdrop._cuda import _fast as F
    from fastdrop._core.ops import Op
    quick = "--quick" in argv
    rows = []
    if quick:  # the test suite's default: three specialisations, GENERAL_QUICK
        specs = [("float32", 0, 16, True), ("bfloat16", 0, 32, True), ("float32", 0, 8, True)]
    else:
        specs = [(d, 0, b, p) for d in F.DTYPES for b in (8, 16, 32) for p in (True, False)]
        specs += [(d, int(Op.ALPHA), 16, True) for d in ("float32", "bfloat16")]
    for dtype, op, bits, packed in specs:
        rows.append(check_fast(tc, dtype, op, bits, packed))
    for dtype in (("bfloat16",) if quick else F.DTYPES):
        rows.append(check_masked(tc, dtype))
    if not quick:
        for dtype in ("float32", "bfloat16", "float64"):
            for has_bias in (True, False):
                for bits in (8, 16):
                    rows.append(check_bda(tc, dtype, bits, has_bias))
    if quick:
        gen = [general(tc, "float32", case) for case in GENERAL_CASES
               if case[0] in GENERAL_QUICK]
    elif "--no-general" in argv:
        gen = []
    else:
        gen = [general(tc, d, case) for d in ("float32", "bfloat16", "float16")
               for case in GENERAL_CASES]
        for d in ("float32", "bfloat16", "float16"):
            gen += reductions(tc, d)
    flagged = control(tc)

    version = subprocess.run([ptxas, "--version"], capture_output=True,
                             text=True).stdout.strip().splitlines()
    print(f"static SASS ({ARCH}; {version[-1] if version else ptxas}): fast path, one "
          f"8-element unit per loop iteration, two at bits=8 (ins/unit: per iteration; not "
          f"measured on hardware)")
    print(f"{'specialisation':40} {'regs':>4} {'ins/unit':>8} {'ins/elem':>8} "
          f"{'LDG.128':>7} {'STG.128':>7} {'other st':>9}  result")
    failures = 0
    for r in rows:
        ok = not r["problems"]
        failures += not ok
        print(f"{r['label']:40} {r['registers']:>4} {r.get('per_unit', '-'):>8} "
              f"{r.get('per_element', '-'):>8} {r.get('ldg128', '-'):>7} "
              f"{r.get('stg128', '-'):>7} {','.join(r.get('scalar_st', [])) or '-':>9}  "
              f"{'ok' if ok else 'FAIL: ' + '; '.join(r['problems'])}")
    for g in gen:
        ok = not g["problems"]
        failures += not ok
        print(f"{g['label']:40} {g['registers']:>4} regs{'' if g['bounded'] else '*'}, "
              f"{g['instructions']} SASS instructions in all, {g['loops']} loops, "
              f"{g['calls']} calls, stack {g['stack']} B, spills {g['spills']} B, "
              f"LDG {g['ldg']}, STG {g['stg']}  "
              f"{'ok' if ok else 'FAIL: ' + '; '.join(g['problems'])}")
    if gen:
        print(f"(* general kernels without a register bound: reported; every general kernel "
              f"must have no local memory and no CALL, those of {', '.join(GENERAL_BOUNDED)} "
              f"at most {MAX_REGISTERS} registers)")
    print(f"control (a scalar copy loop) flagged: {'; '.join(flagged) or 'NOTHING'}")
    if not flagged:
        failures += 1
    if json_path:
        Path(json_path).write_text(json.dumps({"arch": ARCH, "fast": rows, "general": gen},
                                              indent=1))
    print(f"sass_check: {len(rows)} fast kernels checked, {len(gen)} general, "
          f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
