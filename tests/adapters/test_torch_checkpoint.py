"""fastdrop.torch.checkpoint: the recompute replays the forward's masks (fastdrop/_torch_replay.py)."""
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.checkpoint import checkpoint as torch_checkpoint  # noqa: E402

import fastdrop  # noqa: E402
import fastdrop.torch as ft  # noqa: E402


def _layers(source):
    if source == "int":
        return [ft.Dropout(0.5, seed=3), ft.Dropout(0.3, seed=4, noise_shape=(None, 1)),
                ft.Dropout2d(0.5, seed=5)]
    if source == "generator":
        g = fastdrop.Generator(9)
        return [ft.Dropout(0.5, seed=g), ft.Dropout(0.3, seed=g, noise_shape=(None, 1)),
                ft.Dropout2d(0.5, seed=g)]
    return [ft.Dropout(0.5), ft.Dropout(0.3, noise_shape=(None, 1)), ft.Dropout2d(0.5)]


def _model(source):
    torch.manual_seed(0)
    lin1, lin2 = nn.Linear(16, 16), nn.Linear(16, 16)
    d1, d2, d3 = _layers(source)

    def region(v):
        # d1's output is saved by lin2 (its weight gradient needs it), so a recompute with
        # another mask changes the gradient
        h = lin2(d1(lin1(v)))
        h = d2(h)
        return d3(h.reshape(2, 4, 4, 4)).reshape(8, 16)
    return region, (lin1, lin2), (d1, d2, d3)


def _run(source, ckpt, steps=2, **kw):
    region, lins, drops = _model(source)
    x = torch.randn(8, 16, requires_grad=True)
    outs = []
    for _ in range(steps):
        torch.manual_seed(11)  # the same torch generator state for seed=None
        y = ckpt(region, x, **kw) if ckpt is not None else region(x)
        (y * torch.arange(16.0)).sum().backward()
        outs.append((y.detach().clone(), x.grad.clone(), lins[0].weight.grad.clone(),
                     lins[1].weight.grad.clone()))
        x.grad = None
        for m in lins:
            m.zero_grad()
    states = [d.get_state() for d in drops]
    return outs, states


@pytest.mark.parametrize("source", ["int", "generator", "none"])
@pytest.mark.parametrize("use_reentrant", [False, True])
def test_checkpoint_equals_the_run_without_it(source, use_reentrant):
    plain, states = _run(source, None)
    ck, ck_states = _run(source, ft.checkpoint, use_reentrant=use_reentrant)
    for a, b in zip(plain, ck):
        for u, v in zip(a, b):
            assert torch.equal(u, v)
    assert ck_states == states  # one stream per call, as without checkpointing
    assert not torch.equal(plain[0][0], plain[1][0]) or source == "none"


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_torchs_checkpoint_alone_takes_another_stream(use_reentrant):
    # the control: torch's own checkpoint does not know the int-seeded layers' counters,
    # so the recompute draws the next stream and the weight gradient differs
    plain, states = _run("int", None, steps=1)
    with pytest.warns(RuntimeWarning, match="ran inside a backward pass") as rec:
        ck, ck_states = _run("int", torch_checkpoint, steps=1, use_reentrant=use_reentrant)
    assert torch.equal(plain[0][0], ck[0][0])  # the forward itself is the same
    assert not torch.equal(plain[0][3], ck[0][3])  # lin2's weight gradient is not
    assert ck_states != states
    # ... and each of the three layers said so, naming the code that called it
    assert len([w for w in rec if "backward pass" in str(w.message)]) == 3
    assert all(w.filename == __file__ for w in rec if "backward pass" in str(w.message))


@pytest.mark.parametrize("source", ["int", "generator"])
def test_torchs_checkpoint_warns_once_per_seeded_layer(source):
    import warnings
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        _run(source, torch_checkpoint, steps=3, use_reentrant=False)
    said = [str(w.message) for w in rec if "backward pass" in str(w.message)]
    assert len(said) == 3 and "Use fastdrop.torch.checkpoint" in said[0]


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_torchs_checkpoint_with_seed_none_is_exact_and_silent(use_reentrant):
    # seed=None draws from torch's generator, whose state torch's checkpoint restores
    import warnings
    plain, _ = _run("none", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ck, _ = _run("none", torch_checkpoint, use_reentrant=use_reentrant)
    for a, b in zip(plain, ck):
        for u, v in zip(a, b):
            assert torch.equal(u, v)


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_fastdrops_checkpoint_is_silent(use_reentrant):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run("int", ft.checkpoint, use_reentrant=use_reentrant)
        _run("generator", ft.checkpoint, use_reentrant=use_reentrant)
        _run("int", None)    # and no checkpoint at all


def test_nested_checkpoints():
    torch.manual_seed(0)
    lin = nn.Linear(8, 8)
    inner_d, outer_d = ft.Dropout(0.5, seed=1), ft.Dropout(0.5, seed=2)

    def inner(v):
        return lin(inner_d(v))

    def outer(v, ck):
        h = ck(inner, v, use_reentrant=True) if ck else inner(v)
        return lin(outer_d(h))

    grads = []
    for ck in (None, ft.checkpoint):
        inner_d.set_state({"seed": 1, "stream": 0})
        outer_d.set_state({"seed": 2, "stream": 0})
        x = torch.randn(4, 8, generator=torch.Generator().manual_seed(5), requires_grad=True)
        y = ft.checkpoint(outer, x, ck, use_reentrant=True) if ck else outer(x, None)
        y.sum().backward()
        grads.append((x.grad, lin.weight.grad.clone(), inner_d.get_state(),
                      outer_d.get_state()))
        lin.zero_grad()
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.equal(grads[0][1], grads[1][1])
    assert grads[0][2:] == grads[1][2:]


def test_a_recompute_in_another_order_raises():
    a, b = ft.Dropout(0.5, seed=1), ft.Dropout(0.5, seed=2)
    lin = nn.Linear(8, 8)
    calls = [0]

    def region(v):
        calls[0] += 1
        first, second = (a, b) if calls[0] == 1 else (b, a)
        return lin(second(lin(first(v))))

    y = ft.checkpoint(region, torch.randn(4, 8, requires_grad=True), use_reentrant=True)
    with pytest.raises(RuntimeError, match="another order"):
        y.sum().backward()


def test_outside_a_region_nothing_is_recorded():
    from fastdrop import _torch_replay
    d = ft.Dropout(0.5, seed=1)
    y = ft.checkpoint(lambda v: d(v) * 2, torch.randn(4, requires_grad=True),
                      use_reentrant=False)
    y.sum().backward()
    assert _torch_replay.active == 0
    d(torch.randn(4))
    assert d.last_call == (1, 1)


@pytest.mark.filterwarnings("ignore:.*context_fn")
def test_compiled_checkpoint_saves_the_seeds():
    # under torch.compile the seeds come from fastdrop::take_stream on the layer's buffer;
    # fastdrop.torch.checkpoint's policy saves them, so the recompute uses the forward's
    runs = []
    for ck in (None, ft.checkpoint):
        torch.manual_seed(0)
        lin1, lin2 = nn.Linear(16, 16), nn.Linear(16, 16)
        d = ft.Dropout(0.5, seed=3)

        def region(v):
            return lin2(d(lin1(v)))

        def f(v, ck=ck):
            return ck(region, v, use_reentrant=False) if ck else region(v)
        cf = torch.compile(f, fullgraph=True, backend="aot_eager")
        x = torch.randn(8, 16, generator=torch.Generator().manual_seed(1), requires_grad=True)
        out = []
        for _ in range(2):
            y = cf(x)
            (y * torch.arange(16.0)).sum().backward()
            out.append((y.detach().clone(), lin2.weight.grad.clone(), x.grad.clone()))
            lin2.zero_grad()
            x.grad = None
        runs.append((out, d.get_state()))
    for a, b in zip(runs[0][0], runs[1][0]):
        for u, v in zip(a, b):
            assert torch.equal(u, v)
    assert runs[0][1] == runs[1][1] == {"seed": 3, "stream": 2}
    assert not torch.equal(runs[0][0][0][0], runs[0][0][1][0])  # two streams, two masks
