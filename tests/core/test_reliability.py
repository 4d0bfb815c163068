"""Regression tests of the reliability audit (issue 13), one per defect fixed.

Defect 1 (strided packed masks) is tests/cpu/test_dropout.py::
test_strided_packed_masks_are_read_by_logical_byte; defect 7 and the empty last axis are
tests/api/test_twin.py::test_dbias_is_layout_independent and
test_dbias_of_an_empty_last_axis.
"""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastdrop as fd
from _helpers import assert_bits_equal, make_x

ARRAY_FUNCTIONS = {  # name -> a call with x (or grad) as its first argument
    "dropout": lambda x: fd.dropout(x, 0.5, seed=1),
    "dropout_backward": lambda x: fd.dropout_backward(x, 0.5, seed=1),
    "alpha_dropout": lambda x: fd.alpha_dropout(x, 0.5, seed=1),
    "alpha_dropout_backward": lambda x: fd.alpha_dropout_backward(x, 0.5, seed=1),
    "gaussian_dropout": lambda x: fd.gaussian_dropout(x, 0.5, seed=1),
    "gaussian_dropout_backward": lambda x: fd.gaussian_dropout_backward(x, 0.5, seed=1),
    "bias_dropout_add": lambda x: fd.bias_dropout_add(x, None, x, 0.5, seed=1),
    "bias_dropout_add_backward": lambda x: fd.bias_dropout_add_backward(x, 0.5, seed=1),
}


# ---- defect 2: a forked child never hangs ---------------------------------------------------

FORK_CHILD = textwrap.dedent("""
    import os, sys, numpy as np, fastdrop
    x = np.ones(1 << 20, np.float32)
    fastdrop.dropout(x, 0.5, seed=1, n_threads=2)        # a multi-threaded kernel first
    expected = fastdrop.dropout(x, 0.5, seed=3)
    pid = os.fork()
    if pid == 0:                                        # the child: default and 2 threads
        ok = (np.array_equal(fastdrop.dropout(x, 0.5, seed=3), expected) and
              np.array_equal(fastdrop.dropout(x, 0.5, seed=3, n_threads=2), expected))
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
""")

POOL = textwrap.dedent("""
    import multiprocessing as mp, numpy as np, fastdrop
    def work(seed):
        return float(fastdrop.dropout(np.ones(1 << 18, np.float32), 0.5, seed=seed).sum())
    if __name__ == "__main__":
        fastdrop.dropout(np.ones(1 << 20, np.float32), 0.5, seed=1)   # default threads
        with mp.get_context("fork").Pool(2) as pool:
            print(pool.map(work, range(4)) == [work(s) for s in range(4)])
""")


# the threaded kernel ran inside XLA (fastdrop.jax's FFI handlers, on XLA's threads)
FORK_AFTER_XLA = textwrap.dedent("""
    import os, sys, warnings, numpy as np
    import jax, jax.numpy as jnp, fastdrop, fastdrop.jax as fj
    x = np.ones(1 << 20, np.float32)
    y = jax.jit(lambda a: fj.dropout(a, 0.5, seed=1))(jnp.asarray(x))
    y.block_until_ready()
    assert fastdrop._cpu._xla.parallel_ran()
    expected = fastdrop.dropout(x, 0.5, seed=1, n_threads=1)   # no NumPy-API threads
    assert np.array_equal(np.asarray(y), expected)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # JAX warns that a fork of a threaded process may hang
        pid = os.fork()
    if pid == 0:                          # the child: the NumPy API only
        ok = (np.array_equal(fastdrop.dropout(x, 0.5, seed=1), expected) and
              np.array_equal(fastdrop.dropout(x, 0.5, seed=1, n_threads=2), expected) and
              fastdrop._cpu.backend.thread_policy()["single"])
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
""")


def _has_jax():
    try:
        import jax  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.parametrize("script", [FORK_CHILD, POOL, FORK_AFTER_XLA],
                         ids=["fork", "multiprocessing-pool", "fork-after-xla"])
def test_a_child_forked_after_a_threaded_kernel_finishes(script, tmp_path):
    if script is FORK_AFTER_XLA and not _has_jax():
        pytest.skip("jax is not installed")
    path = tmp_path / "child.py"
    path.write_text(script)
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=120)  # the bug was an infinite wait: any end is progress
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if script is POOL:
        assert proc.stdout.strip() == "True"


# ---- defect 3: huge thread counts ------------------------------------------------------------

def test_thread_counts_are_capped_at_the_usable_cpus():
    from fastdrop._cpu.backend import thread_policy

    expected = fd.dropout_mask(2**16 + 3, 0.5, seed=1, n_threads=1)
    for n in (2**31 - 1, 32_768, 16_384):
        np.testing.assert_array_equal(fd.dropout_mask(2**16 + 3, 0.5, seed=1, n_threads=n),
                                      expected)
    policy = thread_policy()
    assert 1 <= policy["cpus"] <= (os.cpu_count() or 1) and policy["single"] is False


# ---- defect 4: non-native byte order ----------------------------------------------------------

@pytest.mark.parametrize("code", [">f2", ">f4", ">f8"])
@pytest.mark.parametrize("name", list(ARRAY_FUNCTIONS))
def test_big_endian_arrays_are_refused(name, code):
    x = np.arange(1, 9, dtype=code).reshape(2, 4)
    before = x.copy()
    with pytest.raises(TypeError, match=r"(x|grad) has non-native byte order \(>f"):
        ARRAY_FUNCTIONS[name](x)
    assert_bits_equal(x, before)


@pytest.mark.parametrize("code", [">f4", "<f4"])
def test_out_must_be_native(code):
    x, out = np.ones(8, np.float32), np.zeros(8, code)
    if np.dtype(code).isnative:
        assert fd.dropout(x, 0.5, seed=1, out=out) is out
        return
    with pytest.raises(TypeError, match=r"out must have dtype float32 \(native byte order\)"):
        fd.dropout(x, 0.5, seed=1, out=out)
    with pytest.raises(TypeError, match="native byte order"):
        fd.random_bits(8, seed=1, out=np.zeros(8, ">u4"))
    assert not out.any()


# ---- defect 5: bool masks are read as NumPy reads them ---------------------------------------

@pytest.mark.parametrize("noise", [None, (1, 8)])
def test_any_nonzero_byte_of_a_bool_mask_keeps(noise):
    shape = (4, 8)
    mshape = shape if noise is None else noise
    keep = np.random.default_rng(0).random(mshape) < 0.5
    raw = (keep * np.random.default_rng(1).integers(1, 256, mshape)).astype(np.uint8)
    odd = raw.view(np.bool_)               # bytes 0..255: NumPy's truth is byte != 0
    assert np.array_equal(odd, keep) and raw.max() > 1
    g = make_x(shape, np.float32, seed=2, specials=False)
    kw = dict(noise_shape=noise)
    assert_bits_equal(fd.dropout_backward(g, 0.5, mask=odd, **kw),
                      fd.dropout_backward(g, 0.5, mask=keep, **kw))
    assert_bits_equal(fd.alpha_dropout_backward(g, 0.5, mask=odd, **kw),
                      fd.alpha_dropout_backward(g, 0.5, mask=keep, **kw))
    assert_bits_equal(fd.dropout_backward(np.full(8, 1.1, np.float32), 0.5,
                                          mask=np.array([2, 1] * 4, np.uint8).view(bool)),
                      np.full(8, np.float32(1.1) * np.float32(2.0), np.float32))


# ---- defect 6: a DropoutCall names the seed its output was made with ------------------------

def test_generator_calls_name_their_own_seed_under_concurrent_set_state():
    gen = fd.Generator(1)
    x = np.ones(1 << 18, np.float32)
    results, stop = [], threading.Event()

    def flip():
        k = 0
        while not stop.is_set():
            k += 1
            gen.set_state({"seed": k % 7 + 1, "stream": 1000 * k})

    def work():
        for _ in range(5):
            results.append(gen.dropout(x, 0.5))

    flipper = threading.Thread(target=flip)
    workers = [threading.Thread(target=work) for _ in range(4)]
    flipper.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    flipper.join()
    assert len(results) == 20
    for y, call in results:
        assert_bits_equal(y, fd.dropout(x, 0.5, seed=call.seed, stream=call.stream))


def test_an_exhausted_generator_restores_its_own_state():
    gen = fd.Generator(5, stream=2**64 - 1)
    assert gen.take() == (5, 2**64 - 1)
    state = gen.get_state()
    assert state == {"seed": 5, "stream": 2**64}
    again = fd.Generator(0)
    again.set_state(state)
    with pytest.raises(OverflowError):
        again.take_stream()
    with pytest.raises(ValueError, match=r"state\['stream'\]"):
        again.set_state({"seed": 5, "stream": 2**64 + 1})


# ---- smaller ones ----------------------------------------------------------------------------

def test_huge_p_is_a_value_error():
    x = np.ones(4, np.float32)
    for call in [lambda: fd.dropout(x, 10**400, seed=1), lambda: fd.effective_p(10**400),
                 lambda: fd.dropout_scale(10**400), lambda: fd.gaussian_sigma(10**400),
                 lambda: fd.dropout_mask(4, 10**400, seed=1)]:
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
            call()


def test_p_below_the_resolution_warns_and_names_bits_32():
    x = np.ones(16, np.float32)
    with pytest.warns(UserWarning, match=r"below the resolution of bits=16.*bits=32") as rec:
        y = fd.dropout(x, 1e-6, seed=1)
    assert rec[0].filename == __file__  # it points at the caller's line
    assert_bits_equal(y, x)  # nothing dropped, as the warning says
    with pytest.warns(UserWarning, match="bits=32"):
        fd.dropout_mask(16, 1e-6, seed=1)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fd.dropout(x, 1e-6, seed=1, bits=32)  # resolved: no warning
        fd.dropout(x, 0.0, seed=1)            # p = 0 is exact


def test_zero_stride_out_is_refused():
    x = np.ones(4, np.float32)
    out = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (4,), (0,))
    with pytest.raises(ValueError, match="out must not have elements that share memory"):
        fd.dropout(x, 0.5, seed=1, out=out)
    assert fd.dropout(np.ones(1, np.float32), 0.5, seed=1,
                      out=np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (1,), (0,))
                      ).shape == (1,)  # one element: nothing overlaps


def test_bad_noise_shapes_and_shapes_are_refused_at_once():
    with pytest.raises(TypeError, match="noise_shape"):
        fd.Dropout(0.5, noise_shape="ab")
    with pytest.raises(ValueError, match="noise_shape"):
        fd.Dropout(0.5, noise_shape=(2, -1))
    assert fd.Dropout(0.5, noise_shape=[None, 1]).noise_shape == (None, 1)
    for bad in ({3, 4}, {3: 1}):
        with pytest.raises(TypeError, match="shape"):
            fd.random_bits(bad, seed=1)
        with pytest.raises(TypeError, match="noise_shape"):
            fd.dropout(np.ones((3, 4), np.float32), 0.5, seed=1, noise_shape=bad)


def test_cuda_device_strings_are_checked():
    pytest.importorskip("numba.cuda")
    from fastdrop._cuda.backend import POLICY

    for bad in ("cuda:-1", "cuda:abc", "cuda:", "gpu", "cuda:1.5"):
        with pytest.raises(ValueError, match="device must be 'cuda' or 'cuda:N'"):
            POLICY.device(bad)
    with pytest.raises(ValueError, match="device must be a GPU index >= 0"):
        POLICY.device(-1)


def test_dask_arrays_point_to_fastdrop_dask():
    da = pytest.importorskip("dask.array")
    x = da.ones((8, 8), chunks=4, dtype=np.float32)
    with pytest.raises(TypeError, match="x is a Dask array: use fastdrop.dask"):
        fd.dropout(x, 0.5, seed=1)
    with pytest.raises(TypeError, match="grad is a Dask array"):
        fd.dropout_backward(x, 0.5, seed=1)


def test_philox_takes_as_many_axes_as_numpy():
    from _helpers import kat_vectors

    ctr, key, expected = kat_vectors()[2]
    c = np.array(ctr, np.uint32).reshape((1,) * 40 + (4,))
    got = fd.philox4x32(c, np.array(key, np.uint32))
    assert got.shape == (1,) * 40 + (4,) and got.reshape(-1).tolist() == expected
    with pytest.raises(ValueError, match="do not broadcast"):
        fd.philox4x32(np.zeros((3, 4), np.uint32), np.zeros((2, 2), np.uint32))


def test_dask_arrays_of_unknown_chunk_sizes_are_refused_at_graph_time():
    da = pytest.importorskip("dask.array")
    fdd = pytest.importorskip("fastdrop.dask")
    x = da.arange(10, chunks=5).astype(np.float32)
    y = x[x > 2]  # chunk sizes unknown until computed
    with pytest.raises(ValueError, match=r"unknown chunk sizes.*compute_chunk_sizes"):
        fdd.dropout(y, 0.5, seed=1)
    z = y.compute_chunk_sizes()
    np.testing.assert_array_equal(fdd.dropout(z, 0.5, seed=1).compute(),
                                  fd.dropout(z.compute(), 0.5, seed=1))


def test_jax_streams_concrete_negative_refused_traced_sign_extended():
    jax = pytest.importorskip("jax")
    fj = pytest.importorskip("fastdrop.jax")
    jnp = jax.numpy
    x = jnp.ones(64, jnp.float32)
    with pytest.raises(ValueError, match="stream must be in"):
        fj.dropout(x, 0.5, seed=1, stream=jnp.int32(-1))  # as the int -1 is
    traced = jax.jit(lambda s: fj.dropout(x, 0.5, seed=1, stream=s))(jnp.int32(-1))
    np.testing.assert_array_equal(  # documented: two's complement in 64 bits
        np.asarray(traced), fd.dropout(np.ones(64, np.float32), 0.5, seed=1, stream=2**64 - 1))


INTERRUPT = textwrap.dedent("""
    import time, numpy as np, fastdrop
    x = np.ones(1 << 29, np.float16)
    t = time.perf_counter(); fastdrop.gaussian_dropout(x[: 1 << 24], 0.5, seed=1)
    print((time.perf_counter() - t) * 32, flush=True)   # what the whole call would take
    print("ready", flush=True)
    try:
        fastdrop.gaussian_dropout(x, 0.5, seed=1)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child: POSIX")
def test_ctrl_c_stops_a_long_call_within_a_second(tmp_path):
    import signal
    import time

    path = tmp_path / "long.py"
    path.write_text(INTERRUPT)
    proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        whole = float(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read().strip()
        proc.wait(timeout=60)
        took = time.perf_counter() - sent
    finally:
        proc.kill()
    if whole < 3.0 and out == "finished":
        pytest.skip(f"the call took only {whole:.1f} s here: too short to interrupt")
    assert out == "interrupted" and took < 1.5, (out, took, whole)
