"""seed=None (fastdrop/_core/entropy.py): fresh seeds per call, never shared with a fork."""
import os
import sys

import numpy as np
import pytest

import fastdrop
from fastdrop._core import entropy


def test_fresh_bits_per_call():
    draws = {entropy.randbits(64) for _ in range(1000)}
    assert len(draws) == 1000
    assert all(0 <= d < 2**64 for d in draws)


def test_seed_none_draws_differ_on_both_paths():
    x = np.ones(4096, np.float32)
    fast = [fastdrop.dropout(x, 0.5) for _ in range(3)]            # the Cython fast path
    general = [fastdrop.dropout(x.reshape(64, 64), 0.5, noise_shape=(64, 64))
               for _ in range(3)]                                  # the request layer
    for masks in (fast, general):
        assert not np.array_equal(masks[0], masks[1])
        assert not np.array_equal(masks[1], masks[2])


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin",
                    reason="needs fork")
def test_a_forked_child_draws_other_seeds():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: its next seeds, to the parent
        try:
            os.close(r)
            os.write(w, b"".join(entropy.randbits(64).to_bytes(8, "little")
                                 for _ in range(4)))
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while len(data) < 32:
        chunk = os.read(r, 32 - len(data))
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    child = {int.from_bytes(data[8 * i:8 * i + 8], "little") for i in range(4)}
    parent = {entropy.randbits(64) for _ in range(4)}
    assert len(child) == 4 and not child & parent
