"""fastdrop.torch under torch.fx's default symbolic tracer (``torch.fx.symbolic_trace``).

fx's tracer keeps torch.nn's modules as leaves and records torch's functional dropouts as
``call_function`` nodes. fastdrop's layers (whose classes live outside torch.nn) record
themselves as one ``call_module`` node and its public functions as one
``call_function`` node, so the traced GraphModule calls them at run time: its masks are
the model's, call after call (the int-seeded layers' streams advance, seed=None draws
from torch's generator), instead of one seed baked into the graph as a constant.
"""
import pickle

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.fx")

import fastdrop.torch as ft  # noqa: E402

LAYERS = {"Dropout": (ft.Dropout, (4, 8)), "Dropout1d": (ft.Dropout1d, (4, 2, 4)),
          "Dropout2d": (ft.Dropout2d, (2, 2, 2, 4)), "Dropout3d": (ft.Dropout3d, (2, 2, 1, 2, 4)),
          "AlphaDropout": (ft.AlphaDropout, (4, 8)),
          "FeatureAlphaDropout": (ft.FeatureAlphaDropout, (2, 2, 2, 4))}


class Model(torch.nn.Module):
    """A linear layer, a fastdrop layer (seeded or seed=None), and every public function
    (seeded and seed=None)."""

    def __init__(self, layer: str, seed):
        super().__init__()
        cls, self.shape = LAYERS[layer]
        self.lin = torch.nn.Linear(8, 8)
        self.drop = cls(0.4, seed=seed)

    def forward(self, x):
        y = self.drop(self.lin(x).reshape(self.shape)).reshape(4, 8)
        y = ft.dropout(y, 0.3, seed=5) + ft.dropout(y, 0.3, bits=8)
        y = ft.bias_dropout_add(y, self.lin.bias, x, 0.2, seed=2)
        z = y.reshape(2, 2, 2, 4)
        z = ft.dropout2d(z, 0.5) + ft.feature_alpha_dropout(z, 0.1, True, seed=3)
        y = z.reshape(4, 8) + ft.alpha_dropout(y, 0.1, True)
        return ft.dropout1d(y.reshape(4, 2, 4), 0.5, seed=7).reshape(4, 8) \
            + ft.dropout3d(y.reshape(1, 4, 1, 2, 4), 0.2).reshape(4, 8)


@pytest.mark.parametrize("seed", [11, None])
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_symbolic_trace_matches_the_model_call_after_call(layer, seed):
    torch.manual_seed(0)
    model = Model(layer, seed)
    torch.manual_seed(0)
    gm = torch.fx.symbolic_trace(Model(layer, seed))
    nodes = [(n.op, n.target) for n in gm.graph.nodes]
    assert ("call_module", "drop") in nodes and ("call_module", "lin") in nodes
    called = {t for op, t in nodes if op == "call_function"}
    for fn in (ft.dropout, ft.bias_dropout_add, ft.dropout1d, ft.dropout2d,
               ft.dropout3d, ft.alpha_dropout, ft.feature_alpha_dropout):
        assert fn in called, fn.__name__
    x = torch.randn(4, 8, requires_grad=True)
    runs = []
    for mod in (model, gm):
        torch.manual_seed(7)
        ys = [mod(x) for _ in range(3)]
        grads = torch.autograd.grad(sum(y.sum() for y in ys), x)[0]
        runs.append((ys, grads))
    (ys_m, g_m), (ys_g, g_g) = runs
    assert all(torch.equal(a, b) for a, b in zip(ys_m, ys_g)) and torch.equal(g_m, g_g)
    # not one mask baked into the graph: every call draws anew
    assert not torch.equal(ys_g[0], ys_g[1]) and not torch.equal(ys_g[1], ys_g[2])


def test_traced_graph_records_the_arguments_given():
    class F(torch.nn.Module):
        def forward(self, x):
            return ft.dropout(x, 0.25, seed=3, stream=2, bits=32, keep="seed")

    gm = torch.fx.symbolic_trace(F())
    (node,) = [n for n in gm.graph.nodes if n.op == "call_function"]
    assert node.target is ft.dropout
    assert node.kwargs == dict(p=0.25, seed=3, stream=2, bits=32, keep="seed")
    x = torch.randn(64)
    assert torch.equal(gm(x), ft.dropout(x, 0.25, seed=3, stream=2, bits=32, keep="seed"))
    assert "fastdrop_torch_dropout" in gm.code


def test_traced_module_pickles_and_compiles():
    torch.manual_seed(0)
    gm = torch.fx.symbolic_trace(Model("Dropout", 4))
    twin = pickle.loads(pickle.dumps(gm))
    x = torch.randn(4, 8)
    torch.manual_seed(1)
    a = gm(x)
    torch.manual_seed(1)
    b = twin(x)
    assert torch.equal(a, b)
    torch.manual_seed(2)
    c = torch.compile(twin, fullgraph=True)(x)
    torch.manual_seed(2)
    assert torch.equal(c, gm(x))


def test_eval_mode_is_the_model_s():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), ft.Dropout(0.5, seed=1, mode="classic"))
    gm = torch.fx.symbolic_trace(model).eval()   # the same submodules: eval reaches them
    x = torch.randn(4, 8)
    assert torch.equal(gm(x), model.eval()(x))


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_layer_as_the_root_of_a_trace_is_refused(layer):
    cls = LAYERS[layer][0]
    with pytest.raises(torch.fx.proxy.TraceError, match=f"fastdrop.torch.{layer} cannot "
                       "be the root of an fx trace"):
        torch.fx.symbolic_trace(cls(0.5, seed=1))


def test_non_tensor_inputs_keep_their_errors():
    for fn in (ft.dropout, ft.dropout1d, ft.dropout2d, ft.dropout3d, ft.alpha_dropout,
               ft.feature_alpha_dropout):
        with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
            fn([1.0, 2.0], 0.5)
    for cls, _ in LAYERS.values():
        with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
            cls(0.5, seed=1)([1.0, 2.0])
    x = torch.ones(2, 8)
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        ft.bias_dropout_add([1.0], None, x, 0.5)
    with pytest.raises(TypeError, match="residual must be a torch.Tensor, got list"):
        ft.bias_dropout_add(x, None, [1.0], 0.5)
    with pytest.raises(TypeError, match="bias must be a torch.Tensor or None, got list"):
        ft.bias_dropout_add(x, [1.0], x, 0.5)
