"""`fastdrop bench` (fastdrop/apps/bench.py): tiny sizes, JSON schema and PNG checked."""
import json
import sys

import numpy as np
import pytest

from fastdrop.apps import bench
from fastdrop.apps.cli import main as cli_main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_doc(doc, sizes, dtype="float32"):
    assert doc["schema"] == "fastdrop-bench/1"
    m = doc["machine"]
    for key in ("cpu", "cores", "simd", "openmp", "threads", "numpy", "fastdrop", "torch"):
        assert key in m
    assert doc["config"]["sizes_log2"] == sizes
    assert doc["config"]["dtype"] == dtype
    rows = doc["results"]
    assert {r["op"] for r in rows} == {"forward", "backward", "mask"}
    for op in ("forward", "backward", "mask"):
        for log2n in sizes:
            keys = {r["contender"] for r in rows if r["op"] == op and r["log2n"] == log2n}
            assert {"limit", "fastdrop", "numpy"} <= keys, (op, log2n, keys)
    for r in rows:
        assert r["n"] == 1 << r["log2n"]
        assert r["median_s"] > 0 and r["min_s"] <= r["median_s"]
        assert r["gbps"] > 0
        assert r["gelems"] == pytest.approx(r["n"] / r["median_s"] / 1e9)
        assert r["bytes"] > 0
        if r["contender"] == "limit":  # halves: a copy (np.multiply is scalar code there)
            assert ("copy" in r["label"]) == (dtype in ("float16", "bfloat16"))
        assert np.isfinite(r["ratio_to_limit"]) and r["ratio_to_limit"] > 0
        if r["contender"] == "limit":
            assert r["ratio_to_limit"] == 1.0
        if r["contender"] == "fastdrop":
            assert r["fastdrop_speedup"] == 1.0


@pytest.fixture
def no_torch(monkeypatch):
    """Leave PyTorch out (its import alone takes seconds); one test below keeps it."""
    monkeypatch.setenv("FASTDROP_BENCH_NO_TORCH", "1")


def test_bench_main_json_and_plot(tmp_path, capsys, no_torch):
    pytest.importorskip("matplotlib")
    js, png = tmp_path / "b.json", tmp_path / "b.png"
    rc = bench.main(["--sizes", "10", "12", "--repeats", "2", "--json", str(js),
                     "--plot", str(png)])
    assert rc == 0
    out, err = capsys.readouterr()
    assert "== forward" in out and "== backward" in out and "== mask generation" in out
    assert "memory-bound limit" in out and "SIMD" in out
    assert "size 1/2" in err  # progress goes to stderr
    _check_doc(json.loads(js.read_text()), [10, 12])
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000


def test_bench_subcommand_float64(tmp_path, capsys):
    js = tmp_path / "b.json"
    assert cli_main(["bench", "--sizes", "8", "--repeats", "1", "--dtype", "float64",
                     "--p", "0.1", "--threads", "1", "--quiet", "--json", str(js)]) == 0
    doc = json.loads(js.read_text())
    _check_doc(doc, [8], "float64")
    try:
        import torch  # noqa: F401
        assert {r["op"] for r in doc["results"] if r["contender"] == "torch"} == {
            "forward", "backward", "mask"}
        assert doc["machine"]["torch"]
    except ImportError:
        assert doc["machine"]["torch"] is None
    assert doc["config"]["threads"] == 1 and doc["config"]["p"] == 0.1
    assert capsys.readouterr().err.count("size") == 0  # --quiet


def test_bench_plot_without_matplotlib(tmp_path, monkeypatch, capsys, no_torch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    assert bench.main(["--sizes", "8", "--plot", str(tmp_path / "x.png")]) == 2
    assert "matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_bench_cuda_clear_error():
    """Without a GPU backend or a GPU, --device cuda stops with a message, no traceback."""
    try:
        from numba import cuda
        has_gpu = cuda.is_available()
    except Exception:
        has_gpu = False
    if has_gpu:
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(SystemExit) as e:
        bench.main(["--device", "cuda", "--sizes", "8", "--quiet"])
    assert "cuda" in str(e.value)


@pytest.mark.parametrize("argv, msg", [(["--p", "1.5"], "--p"), (["--dtype", "int8"], "--dtype"),
                                       (["--repeats", "0"], "--repeats"),
                                       (["--threads", "0"], "--threads"),
                                       (["--threads", "-2"], "--threads")])
def test_bench_bad_arguments(argv, msg, no_torch):
    with pytest.raises(SystemExit) as e:
        bench.main(argv + ["--sizes", "8", "--quiet"])
    assert msg in str(e.value)


@pytest.mark.parametrize("argv, msg", [
    (["bench-rng", "--log2n", "-3"], "--log2n must be in [0, 30]"),
    (["bench-rng", "--log2n", "8", "--repeats", "0"], "--repeats must be at least 1"),
    (["bench-rng", "--log2n", "8", "--threads", "1", "0"], "--threads must be at least 1"),
    (["bench-dropout", "--log2n", "8", "--p", "1.5"], "--p must be in [0, 1)"),
    (["bench-dropout", "--log2n", "31"], "--log2n must be in [0, 30]"),
    (["bench-dropout", "--log2n", "8", "--threads", "0"], "--threads must be at least 1"),
])
def test_measure_commands_check_their_options(argv, msg):
    # a message naming the option, as fastdrop bench gives, before anything is measured
    with pytest.raises(SystemExit) as e:
        cli_main(argv)
    assert msg in str(e.value) and argv[0] in str(e.value)


def test_bench_cuda_path_under_the_simulator(tmp_path):
    """--device cuda end to end on Numba's CUDA simulator (no GPU needed; the times mean
    nothing there): the GPU contenders run and the JSON says device cuda."""
    import os
    import subprocess

    pytest.importorskip("numba.cuda")
    try:
        from fastdrop import _cuda
        _cuda.backend
    except (ImportError, AttributeError):
        pytest.skip("no fastdrop GPU backend")
    js = tmp_path / "cu.json"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", FASTDROP_BENCH_NO_TORCH="1")
    r = subprocess.run([sys.executable, "-m", "fastdrop", "bench", "--device", "cuda",
                        "--sizes", "6", "--repeats", "1", "--quiet", "--json", str(js)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "device-to-device copy" in r.stdout
    doc = json.loads(js.read_text())
    assert doc["config"]["device"] == "cuda"
    assert {(x["op"], x["contender"]) for x in doc["results"]} == {
        ("forward", "limit"), ("forward", "fastdrop"), ("backward", "limit"),
        ("backward", "fastdrop")}


def test_half_types_are_measured_against_a_copy_and_masks_in_elements(tmp_path, capsys,
                                                                      no_torch):
    js = tmp_path / "h.json"
    assert bench.main(["--sizes", "10", "--dtype", "float16", "--repeats", "2", "--quiet",
                       "--json", str(js)]) == 0
    _check_doc(json.loads(js.read_text()), [10], "float16")
    out = capsys.readouterr().out
    assert "memory-bound limit: copy of x's bytes into y" in out
    mask_table = out.split("== mask generation")[1]
    assert "Gelem/s" in mask_table.splitlines()[1]


def test_bounds_view(tmp_path, capsys, no_torch):
    """--bounds: per kernel, size and thread count, the kernel's time over its memory and
    generator bounds, in the table and the JSON; the binding bound is the larger one."""
    from fastdrop.apps.bounds import KERNELS

    js = tmp_path / "bounds.json"
    assert bench.main(["--bounds", "--sizes", "10", "12", "--threads", "1", "2",
                       "--bits", "8", "--repeats", "2", "--quiet", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "== bounds: dtype float32, bits 8" in out
    for title in ("forward, packed mask", "backward from the packed mask",
                  "backward from the seed", "mask generation, packed"):
        assert f"-- {title} --" in out
    doc = json.loads(js.read_text())
    assert doc["results"] == [] and doc["config"]["view"] == "bounds"
    rows = doc["bounds"]
    assert {(r["kernel"], r["log2n"], r["threads"]) for r in rows} == {
        (k, s, t) for k in KERNELS for s in (10, 12) for t in (1, 2)}
    for r in rows:
        assert r["bits"] == 8 and r["kernel_threads"] == 1  # below two grains: one thread
        assert r["kernel_s"] > 0 and r["memory_s"] > 0
        assert r["x_memory"] > 0
        if r["kernel"] == "backward_mask":  # draws nothing
            assert r["generator_s"] is None and r["x_generator"] is None
            assert r["bound"] == "memory"
        else:
            assert r["generator_s"] > 0 and r["x_generator"] > 0
            assert r["bound"] == ("memory" if r["memory_s"] >= r["generator_s"]
                                  else "generator")


def test_bounds_threads_follow_the_grain():
    from fastdrop.apps.bounds import GRAIN, kernel_threads

    assert kernel_threads(2 * GRAIN - 1, 8) == 1
    assert kernel_threads(2 * GRAIN, 8) == 2
    assert kernel_threads(5 * GRAIN, 2) == 2
    assert kernel_threads(64 * GRAIN, 8) == 8


def test_bench_several_thread_counts_only_with_bounds(no_torch):
    with pytest.raises(SystemExit) as e:
        bench.main(["--sizes", "8", "--threads", "1", "2", "--quiet"])
    assert "--bounds" in str(e.value)


def test_bench_outputs_are_checked_before_measuring(tmp_path, monkeypatch, no_torch):
    ran = []
    monkeypatch.setattr(bench, "run", lambda **k: ran.append(k))
    for argv in (["--json", str(tmp_path / "missing" / "x.json")], ["--json", str(tmp_path)],
                 ["--plot", str(tmp_path / "missing" / "p.png")]):
        with pytest.raises(SystemExit) as e:
            bench.main(argv + ["--sizes", "8", "--quiet"])
        assert argv[0] in str(e.value) and "cannot be written" in str(e.value)
    assert ran == []


def test_bench_records_the_threads_it_ran_on(tmp_path, capsys, no_torch):
    # more threads than the process may use: the kernels' count is the one measured,
    # printed and recorded
    path = tmp_path / "b.json"
    assert bench.main(["--sizes", "8", "--repeats", "1", "--quiet", "--threads", "4096",
                       "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    used = doc["config"]["threads"]
    assert used == doc["machine"]["threads"] and 1 <= used < 4096
    assert "--threads 4096 is more than this process may use" in capsys.readouterr().err


@pytest.mark.parametrize("value,has_torch", [("1", False), ("0", True), ("", True)])
def test_the_no_torch_switch_reads_as_the_others(monkeypatch, value, has_torch):
    pytest.importorskip("torch")
    monkeypatch.setenv("FASTDROP_BENCH_NO_TORCH", value)
    assert (bench._torch() is not None) == has_torch
    if not has_torch:
        assert "left out" in bench.machine_header(bench.machine_info(1))
