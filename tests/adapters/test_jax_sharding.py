"""fastdrop.jax over 2 host devices (a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=2): under jit with inputs sharded over an
Explicit mesh (a shard_map rule) or an Auto mesh (custom_partitioning) each device runs its
shard as the block of the global array, the result equals the unsharded one bit for bit
and keeps the input's sharding, with no all-gather; export keeps the plain custom call;
inside shard_map, shard_block does the same by hand (any mesh)."""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax")
HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    import fastdrop as fd, fastdrop.jax as fj
    from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
    assert jax.device_count() == 2, jax.devices()

    import re
    from fastdrop._cpu import _xla
    assert fj.lowering_route() == "xla_ffi"

    def shards(f, x):
        # the x shapes of the fastdrop custom calls in the per-device program (and its
        # text: each device computes its origin from its index, a partition-id)
        text = f.lower(x).compile().as_text()
        calls = [ln for ln in text.splitlines() if 'custom_call_target="fastdrop_' in ln]
        assert calls, text[-3000:]
        return [re.search(r"= [a-z0-9]+\\[([0-9,]*)\\]", ln).group(1) for ln in calls], text

    def same(a, b):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), (a, b)

    K = dict(seed=2**40 + 5, stream=3)
    xn = (np.arange(48, dtype=np.float32).reshape(8, 6) - 20) / 7
    w = np.cos(np.arange(48, dtype=np.float32)).reshape(8, 6)
    mesh = jax.make_mesh((2,), ("d",), axis_types=(AxisType.Explicit,))
    for spec, shard in [(P("d", None), (4, 6)), (P(None, "d"), (8, 3))]:
        x = jax.device_put(xn, NamedSharding(mesh, spec))
        cases = [
            (lambda x: fj.dropout(x, 0.3, **K, noise_shape=(None, 1)),
             fd.dropout(xn, 0.3, **K, noise_shape=(None, 1))),
            (lambda x: fj.alpha_dropout(x, 0.3, **K), fd.alpha_dropout(xn, 0.3, **K)),
            (lambda x: fj.gaussian_dropout(x, 0.3, **K), fd.gaussian_dropout(xn, 0.3, **K)),
            (lambda x: fj.bias_dropout_add(x, jnp.ones(6, jnp.float32), x, 0.3, **K),
             fd.bias_dropout_add(xn, np.ones(6, np.float32), xn, 0.3, **K)),
            (jax.grad(lambda x: (fj.dropout(x, 0.3, **K) * w).sum()),
             fd.dropout_backward(w, 0.3, **K)),
            (lambda x: jax.jvp(lambda v: fj.gaussian_dropout(v, 0.3, **K), (x,), (x,))[1],
             fd.gaussian_dropout(xn, 0.3, **K)),
        ]
        for f, expected in cases:
            before = _xla.calls()
            with jax.set_mesh(mesh):  # as JAX asks of explicit sharding (grad needs it)
                y = jax.jit(f)(x)
                seen, text = shards(jax.jit(f), x)
            same(y, expected)
            assert y.sharding.spec == spec, (y.sharding, spec)
            want = ",".join(map(str, shard))
            assert seen and all(s == want for s in seen), (seen, want)
            assert "partition-id" in text  # each device's origin from its own index
            assert _xla.calls() - before >= 2  # one call per device (at least)
        # the bias's gradient: a replicated bias next to a sharded x has its gradient
        # summed over the shards (float32 sums of per-shard float64 sums: close, not
        # bitwise, when x's rows are split)
        b = jnp.full(6, 0.5, jnp.float32)
        with jax.set_mesh(mesh):
            gb = jax.jit(jax.grad(lambda b, x: (fj.bias_dropout_add(x, b, x, 0.3, **K) * w)
                                  .sum()))(b, x)
        np.testing.assert_allclose(np.asarray(gb), fd.bias_dropout_add_backward(
            w, 0.3, **K)[1], rtol=1e-6)
        print("explicit", spec, "ok")

    # shard_map by hand, on an Auto mesh too (where plain jit gathers to one device)
    for axis_type in (AxisType.Explicit, AxisType.Auto):
        mesh = jax.make_mesh((2,), ("d",), axis_types=(axis_type,))
        x = jax.device_put(xn, NamedSharding(mesh, P("d", None)))

        def per_shard(x):
            return fj.dropout(x, 0.3, **K, block=fj.shard_block(x, (8, 6), ("d", None)))

        sm = jax.shard_map(per_shard, mesh=mesh, in_specs=P("d", None), out_specs=P("d", None))
        y = jax.jit(sm)(x)
        same(y, fd.dropout(xn, 0.3, **K))
        seen, _ = shards(jax.jit(sm), x)
        assert all(s == "4,6" for s in seen), seen
        g = jax.jit(jax.grad(lambda x: (sm(x) * w).sum()))(x)
        same(g, fd.dropout_backward(w, 0.3, **K))
        rows = NamedSharding(mesh, P("d", None))
        assert y.sharding.is_equivalent_to(rows, 2), y.sharding
        assert g.sharding.is_equivalent_to(rows, 2), g.sharding
        print("shard_map", axis_type, "ok")

    # Auto mesh axes (jax.sharding.Mesh's default) under plain jit: custom_partitioning
    def run(f, *a):
        # compiled once: (the result, the x shapes of the fastdrop custom calls on each
        # device, whether the program all-gathers)
        c = jax.jit(f).lower(*a).compile()
        text = c.as_text()
        found = [re.search(r"operand_layout_constraints=\\{[a-z0-9]+\\[([0-9,]*)\\]", ln).group(1)
                 for ln in text.splitlines() if 'custom_call_target="fastdrop_' in ln]
        assert found and "CustomSPMDPartitioning" not in text, text[-3000:]
        return c(*a), found, "all-gather" in text

    devs = np.array(jax.devices())
    for mesh, spec, shard in [(Mesh(devs, ("x",)), P("x", None), "4,6"),
                              (Mesh(devs, ("x",)), P(None, "x"), "8,3"),
                              (Mesh(devs.reshape(1, 2), ("a", "b")), P(None, ("a", "b")), "8,3"),
                              (Mesh(devs.reshape(2, 1), ("a", "b")), P("b", "a"), "8,3")]:
        assert mesh.axis_types == (AxisType.Auto,) * len(mesh.axis_names)
        sh = NamedSharding(mesh, spec)
        x, wx = jax.device_put(xn, sh), jax.device_put(w, sh)
        r = jax.device_put(2 * xn, NamedSharding(mesh, P(*reversed(spec))))  # resharded
        cases = [
            (lambda x, w: fj.dropout(x, 0.3, **K, noise_shape=(None, 1)),
             fd.dropout(xn, 0.3, **K, noise_shape=(None, 1))),
            (lambda x, w: fj.dropout(x, 0.3, **K, block=((2**32 - 3, 1), (2**32 + 9, 7))),
             fd.dropout(xn, 0.3, **K, block=((2**32 - 3, 1), (2**32 + 9, 7)))),
            (lambda x, w: fj.alpha_dropout(x, 0.3, **K), fd.alpha_dropout(xn, 0.3, **K)),
            (lambda x, w: fj.gaussian_dropout(x, 0.3, **K), fd.gaussian_dropout(xn, 0.3, **K)),
            (lambda x, w: fj.bias_dropout_add(x, jnp.ones(6, jnp.float32), w + r, 0.3, **K),
             fd.bias_dropout_add(xn, np.ones(6, np.float32), w + 2 * xn, 0.3, **K)),
            (jax.grad(lambda x, w: (fj.dropout(x, 0.3, **K) * w).sum()),
             fd.dropout_backward(w, 0.3, **K)),
            (lambda x, w: jax.jvp(lambda v: fj.alpha_dropout(v, 0.3, **K), (x,), (w,))[1],
             fd.alpha_dropout_backward(w, 0.3, **K)),
            (lambda x, w: jax.vmap(lambda v, s: fj.gaussian_dropout(v, 0.3, seed=9, stream=s))(
                x, jnp.arange(8)),
             np.stack([fd.gaussian_dropout(xn[i], 0.3, seed=9, stream=i) for i in range(8)])),
        ]
        for i, (f, expected) in enumerate(cases):
            y, seen, gathered = run(f, x, wx)
            same(y, expected)
            assert y.sharding.is_equivalent_to(sh, 2), (i, y.sharding, spec)
            assert all(s == shard for s in seen) and not gathered, (i, seen, shard)
        # bias_dropout_add_backward: split along the columns only (dbias sums whole rows,
        # in NumPy's order); rows split are gathered. Both bitwise.
        (dx, db, _), seen, gathered = run(
            lambda g: fj.bias_dropout_add_backward(g, 0.3, **K), x)
        dxe, dbe, _ = fd.bias_dropout_add_backward(xn, 0.3, **K)
        same(dx, dxe)
        same(db, dbe)
        assert gathered == (shard == "4,6"), (seen, gathered)  # rows split: gathered
        gb = jax.jit(jax.grad(lambda b, x, w: (fj.bias_dropout_add(x, b, x, 0.3, **K) * w)
                              .sum()))(jnp.full(6, 0.5, jnp.float32), x, wx)
        same(gb, fd.bias_dropout_add_backward(w, 0.3, **K)[1])
        print("auto", spec, "ok")

    mesh = Mesh(devs, ("x",))
    rows = NamedSharding(mesh, P("x", None))
    x = jax.device_put(xn, rows)
    f = lambda x: fj.dropout(x, 0.3, **K)
    # eagerly, a sharded x runs per shard too; replicated and uneven inputs run whole
    y = f(x)
    same(y, fd.dropout(xn, 0.3, **K))
    assert y.sharding.is_equivalent_to(rows, 2), y.sharding
    y, seen, _ = run(f, jax.device_put(xn, NamedSharding(mesh, P())))
    same(y, fd.dropout(xn, 0.3, **K))
    assert y.sharding.is_fully_replicated and seen == ["8,6"], (y.sharding, seen)
    y, seen, _ = run(lambda x: f(jax.lax.with_sharding_constraint(x[:7], rows)), x)
    same(y, fd.dropout(xn[:7], 0.3, **K))  # 7 rows over 2 devices: whole
    assert seen == ["7,6"], seen
    # jax.export: the plain custom call (custom_partitioning's partitioner is a host
    # callback, which export cannot serialize); the round trip gives the same bits
    for fun, expected in [(f, fd.dropout(xn, 0.3, **K)),
                          (jax.grad(lambda x: (f(x) * x).sum()), 2 * fd.dropout(xn, 0.3, **K))]:
        exp = jax.export.export(jax.jit(fun, in_shardings=rows, out_shardings=rows),
                                disabled_checks=fj.export_checks())(
            jax.ShapeDtypeStruct(xn.shape, xn.dtype, sharding=rows))
        text = exp.mlir_module()
        assert "fastdrop_dropout" in text and "CustomSPMDPartitioning" not in text
        y = jax.export.deserialize(exp.serialize()).call(x)
        same(y, expected)
        assert y.sharding.is_equivalent_to(rows, 2), y.sharding
    print("auto misc ok")

    # eager placement, as JAX ops place their results: a committed x's device (committed),
    # a replicated x's devices (replicated), the default device for an uncommitted x;
    # and under jax.disable_jit a sharded x still runs (the lowering, with jit on)
    one = jax.device_put(xn, jax.devices()[1])
    for f, expected in [(lambda x: fj.dropout(x, 0.3, **K), fd.dropout(xn, 0.3, **K)),
                        (lambda x: fj.bias_dropout_add_backward(x, 0.3, **K)[1],
                         fd.bias_dropout_add_backward(xn, 0.3, **K)[1])]:
        y = f(one)
        same(y, expected)
        assert y.devices() == {jax.devices()[1]} and y.committed, y.sharding
        assert y.devices() == jax.jit(f)(one).devices()
        y = f(jnp.asarray(xn))
        assert y.devices() == {jax.devices()[0]} and not y.committed
        rep = jax.device_put(xn, NamedSharding(mesh, P()))
        y = f(rep)
        same(y, expected)
        assert y.sharding.is_fully_replicated and len(y.devices()) == 2, y.sharding
    with jax.disable_jit():
        y = fj.dropout(x, 0.3, **K)
        same(y, fd.dropout(xn, 0.3, **K))
        assert y.sharding.is_equivalent_to(rows, 2), y.sharding
        same(fj.dropout(one, 0.3, **K), fd.dropout(xn, 0.3, **K))
    print("placement ok")
""")


def test_sharded_over_two_host_devices():
    path = [str(ROOT), str(HERE.parent)] + [
        p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(path))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert proc.stdout.count(" ok") == 10, proc.stdout
