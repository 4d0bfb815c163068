"""Dropout on a Dask array bigger than you want in memory, chunk by chunk, and the proof
that the chunking does not change a single bit.

    python examples/dask_chunked.py            # 2**28 float32 elements (1 GiB), lazily
    python examples/dask_chunked.py --log2n 34 # 64 GiB: more than this machine's memory

The input is generated chunk by chunk (fastdrop.uniform with block offsets, so it is
itself chunk-invariant), dropped out under two different chunkings, and compared element
by element in a streaming reduction: no chunking ever holds the whole array.
"""
import argparse
import time

import dask
import dask.array as da
import numpy as np

import fastdrop
import fastdrop.dask as fdd


def make_input(n_rows: int, n_cols: int, chunks) -> da.Array:
    """Uniform [0, 1) floats, element (i, j) = draw i * n_cols + j of stream 99."""
    template = da.empty((n_rows, n_cols), dtype=np.float32, chunks=chunks)

    def one(block, block_info=None):
        (r0, r1), (c0, c1) = block_info[0]["array-location"]
        rows = [fastdrop.uniform(c1 - c0, seed=1, stream=99, offset=r * n_cols + c0)
                for r in range(r0, r1)]
        return np.stack(rows) if rows else np.empty((0, c1 - c0), np.float32)

    return da.map_blocks(one, template, dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=26)
    args = parser.parse_args()
    n_cols = 2**12
    n_rows = 2 ** args.log2n // n_cols
    a = fdd.dropout(make_input(n_rows, n_cols, (n_rows // 8, n_cols)), 0.3, seed=7, stream=1)
    b = fdd.dropout(make_input(n_rows, n_cols, (n_rows // 32, n_cols // 4)), 0.3, seed=7,
                    stream=1).rechunk(a.chunks)
    t = time.perf_counter()
    same, kept = dask.compute(da.all(a == b), da.mean(a != 0))
    print(f"{n_rows} x {n_cols} float32 ({n_rows * n_cols * 4 / 2**30:.2f} GiB), "
          f"chunks {a.chunksize} vs {(n_rows // 32, n_cols // 4)}: identical={bool(same)}, "
          f"kept fraction={float(kept):.6f} (expected {1 - fastdrop.effective_p(0.3):.6f}), "
          f"{time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
