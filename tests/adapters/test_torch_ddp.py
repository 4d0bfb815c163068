"""fastdrop.torch under DistributedDataParallel (2 CPU processes, gloo): per-rank int seeds
survive DDP's buffer broadcast once the seed buffers are in its ignore list
(`ddp_local_seeds`), and each rank's masks are its own seed's, bit for bit."""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")
ROOT = pathlib.Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import os, sys, torch, torch.distributed as dist, torch.multiprocessing as mp
    import fastdrop, fastdrop.torch as ft

    def worker(rank, initfile, local, q):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method="file://" + initfile, rank=rank,
                                world_size=2)
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.5),
                                    torch.nn.Linear(16, 16), ft.Dropout(0.5, seed=7 + rank))
        ft.replace_dropout(model, seed=1000 + rank)   # the torch layer: seed 1000 + rank
        if local:
            assert ft.ddp_local_seeds(model) == ["1.fd_state", "3.fd_state"]
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        x = torch.ones(4, 8)
        masks = []
        for step in range(3):
            out = ddp(x)
            out.sum().backward()
            masks.append((out != 0).flatten().tolist())
        q.put((rank, model[1].get_state(), model[3].get_state(), masks))
        dist.destroy_process_group()

    if __name__ == "__main__":
        tmp = sys.argv[1]
        for local in (True, False):
            q = mp.get_context("spawn").SimpleQueue()
            init = os.path.join(tmp, f"init{int(local)}")
            mp.spawn(worker, args=(init, local, q), nprocs=2, join=True)
            (r0, a0, b0, m0), (r1, a1, b1, m1) = sorted([q.get(), q.get()])
            print(local, a0, a1, b0, b1, [m0[i] == m1[i] for i in range(3)])
            if local:   # each rank keeps its own seeds; three streams taken
                assert a0 == {"seed": 1000, "stream": 3} and a1 == {"seed": 1001, "stream": 3}
                assert b0 == {"seed": 7, "stream": 3} and b1 == {"seed": 8, "stream": 3}
                assert not any(m0[i] == m1[i] for i in range(3))
            else:       # DDP's broadcast: rank 0's seeds on every rank (why it exists)
                assert a1["seed"] == 1000 and b1["seed"] == 7
                assert all(m0[i] == m1[i] for i in range(3))
        print("ok")
""")


def test_per_rank_seeds_under_ddp(tmp_path):
    script = tmp_path / "ddp_seeds.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.strip().endswith("ok"), proc.stdout
