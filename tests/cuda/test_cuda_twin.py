"""The GPU backend against the slow twin, function by function: the CPU twin test's table
of cases (tests/api/test_twin.py), a deterministic sample of each function's cases, run by the
GPU backend alone (fastdrop._core.route.on_backend) on device copies of the arrays.  A new
public function or a new case gets its GPU test here for free."""
import numpy as np
import pytest

from _cuda_util import host, require_cuda, to_dev

cuda, D = require_cuda()

import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "api"))
import test_twin as T  # noqa: E402  (tests/api/test_twin.py: the table of cases)

#: pure functions of p and bits (no backend) and the CPU-only unpack_mask
NO_GPU = {"effective_p", "dropout_scale", "gaussian_sigma", "unpack_mask"}
GPU_NAMES = [n for n in T.TWINNED if n not in NO_GPU]
PER_NAME = 96  # cases per function (the simulator runs every thread in Python)


def _sample(cases):
    step = max(1, len(cases) // PER_NAME)
    return cases[::step]


def _to_device(args, kwargs):
    memo = {}  # the same host array -> the same device array (out=x stays in place)

    def dev(v):
        if isinstance(v, np.ndarray):
            if id(v) not in memo:
                memo[id(v)] = to_dev(v)
            return memo[id(v)]
        return v
    return [dev(a) for a in args], {k: dev(v) for k, v in kwargs.items()}


def _role(result, args, kwargs):
    for i, a in enumerate(args):
        if result is a:
            return f"arg{i}"
    for k, v in kwargs.items():
        if result is v:
            return k
    return None


@pytest.mark.parametrize("name", GPU_NAMES)
def test_gpu_backend_equals_the_twin(name):
    ran = 0
    for c in _sample(T.CASES[name]):
        made = c.make()
        if made is None:
            continue
        args, kwargs = made
        if any(isinstance(a, (list, tuple)) and name == "philox4x32" for a in args):
            continue  # Python lists of words: a CPU convenience
        exp, t_args, t_kwargs = T._twin(name, c)
        d_args, d_kwargs = _to_device(args, kwargs)
        got = getattr(D, name)(*d_args, **d_kwargs)
        where = f"{name}[{c.id}] on the GPU"
        got_t = got if isinstance(got, tuple) else (got,)
        exp_t = exp if isinstance(exp, tuple) else (exp,)
        assert len(got_t) == len(exp_t), where
        for k, (g, e) in enumerate(zip(got_t, exp_t)):
            if e is not None:
                assert D.is_cuda_array(g), f"{where} result[{k}]: {type(g).__name__}"
            T._same_bits(None if g is None else host(g), e, f"{where} result[{k}]")
            assert _role(g, d_args, d_kwargs) == _role(e, t_args, t_kwargs), \
                f"{where} result[{k}]: returns {_role(g, d_args, d_kwargs)}, the twin " \
                f"{_role(e, t_args, t_kwargs)}"
        for k, v in d_kwargs.items():  # out= written as the twin writes it
            if k == "out" and v is not None:
                T._same_bits(host(v), np.asarray(t_kwargs["out"]), f"{where} out after")
        ran += 1
    assert ran >= min(8, len(T.CASES[name])), f"{name}: only {ran} cases ran"
