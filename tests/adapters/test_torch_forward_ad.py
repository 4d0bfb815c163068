"""fastdrop.torch under forward-mode AD (``torch.autograd.forward_ad``), outside torch.func.

Inside a dual level every call takes the Functions with a jvp (those torch.func uses): the
tangent of y = D x (+ the affine parts of alpha dropout and bias-dropout-add) is the same
map applied to x's tangent. Before, the lean path and the classic eager Functions either
raised NotImplementedError or, with no graph recorded, returned y with no tangent at all.
Every function here is affine in x for a fixed mask, so f(x + t) - f(x) (float64) is an
independent oracle for the tangent; torch.func.jvp must give the same bits.
"""
import pytest

torch = pytest.importorskip("torch")
import torch.autograd.forward_ad as fwAD  # noqa: E402

import fastdrop.torch as ft  # noqa: E402

CASES = {
    "dropout": lambda a: ft.dropout(a, 0.5, seed=1),
    "dropout seed=None": lambda a: ft.dropout(a, 0.5),
    "dropout bits=32 keep=seed": lambda a: ft.dropout(a, 0.3, seed=2, bits=32, keep="seed"),
    "dropout classic": lambda a: ft.dropout(a, 0.5, seed=1, mode="classic"),
    "dropout noise_shape": lambda a: ft.dropout(a.reshape(4, 8), 0.5, seed=1,
                                                noise_shape=(4, 1)).reshape(32),
    "dropout in place": lambda a: ft.dropout(a * 1, 0.5, seed=1, inplace=True),
    "Dropout": lambda a: ft.Dropout(0.5, seed=1)(a),
    "Dropout seed=None": lambda a: ft.Dropout(0.5)(a),
    "Dropout in place": lambda a: ft.Dropout(0.5, seed=1, inplace=True)(a * 1),
    "Dropout2d": lambda a: ft.Dropout2d(0.5, seed=1)(a.reshape(2, 4, 2, 2)).reshape(32),
    "dropout1d": lambda a: ft.dropout1d(a.reshape(2, 4, 4), 0.5, seed=3).reshape(32),
    "alpha_dropout": lambda a: ft.alpha_dropout(a, 0.5, True, seed=1),
    "AlphaDropout": lambda a: ft.AlphaDropout(0.2, seed=1)(a),
    "FeatureAlphaDropout": lambda a: ft.FeatureAlphaDropout(0.2, seed=1)(
        a.reshape(2, 4, 4)).reshape(32),
    "bias_dropout_add": lambda a: ft.bias_dropout_add(a.reshape(4, 8), a[:8] * 2,
                                                      a.reshape(4, 8) * 3, 0.5,
                                                      seed=1).reshape(32),
}


def _dual(f, x, t):
    with fwAD.dual_level():
        y = f(fwAD.make_dual(x, t))
        primal, tangent = fwAD.unpack_dual(y)
    return primal, tangent


@pytest.mark.parametrize("requires_grad", [False, True], ids=["no graph", "graph"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_the_tangent_is_the_map_applied_to_the_tangent(name, requires_grad):
    f = CASES[name]
    x = torch.randn(32, dtype=torch.float64, requires_grad=requires_grad)
    t = torch.randn(32, dtype=torch.float64)
    torch.manual_seed(5)
    primal, tangent = _dual(f, x, t)
    assert tangent is not None, "the tangent was dropped"
    torch.manual_seed(5)
    plain = f(x.detach())
    torch.manual_seed(5)
    moved = f(x.detach() + t)
    assert torch.equal(primal.detach(), plain)   # the primal is the ordinary call's
    assert torch.allclose(tangent, moved - plain, rtol=1e-12, atol=1e-12)
    torch.manual_seed(5)
    _, jt = torch.func.jvp(f, (x.detach(),), (t,))
    assert torch.equal(tangent, jt)
    if requires_grad:   # the graph is still recorded: reverse mode works on the primal
        (g,) = torch.autograd.grad(primal.sum(), x)
        assert g.shape == x.shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_tangents_of_every_dtype(dtype):
    x, t = torch.randn(64).to(dtype), torch.randn(64).to(dtype)
    primal, tangent = _dual(lambda a: ft.dropout(a, 0.5, seed=9), x, t)
    assert tangent.dtype == dtype and torch.equal(tangent, ft.dropout(t, 0.5, seed=9))
    assert torch.equal(primal, ft.dropout(x, 0.5, seed=9))


def test_outside_a_dual_level_calls_take_the_lean_path_again():
    from fastdrop import _torch_ops as ops
    x = torch.randn(64)
    with fwAD.dual_level():
        assert ops.dual_level_active() and ops.lean_code(x) == -1
        assert ops.entry("dropout", x) is ops._FUNC_DROPOUT
    assert not ops.dual_level_active() and ops.lean_code(x) == 0
    assert ops.entry("dropout", x) is ops._EAGER_DROPOUT and ops.plain_eager(x)
