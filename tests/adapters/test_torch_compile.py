"""fastdrop.torch under torch.compile and torch.export: no graph breaks, no recompiles,
the same bits as eager. Small models and few steps (compiling is slow on a shared CPU)."""
import copy

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch._dynamo.testing import CompileCounterWithBackend  # noqa: E402

import fastdrop.torch as ft  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_dynamo():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    torch._dynamo.reset()
    try:
        yield
    finally:
        torch._dynamo.reset()
        torch.set_num_threads(previous)


def mlp(seed=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), ft.Dropout(0.2, seed=seed),
                         nn.Linear(32, 32), ft.Dropout(0.1), nn.Linear(32, 4))


def encoder_layer():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
    ft.replace_dropout(layer, seed=5)
    return layer


@pytest.mark.parametrize("make,shape", [(mlp, (8, 16)), (encoder_layer, (2, 8, 32))],
                         ids=["mlp", "transformer_encoder_layer"])
def test_explain_reports_no_graph_break(make, shape):
    model = make()
    explanation = torch._dynamo.explain(model)(torch.randn(shape))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("make,shape", [(mlp, (8, 16)), (encoder_layer, (2, 8, 32))],
                         ids=["mlp", "transformer_encoder_layer"])
def test_ten_training_steps_compile_once(make, shape):
    model = make()
    counter = CompileCounterWithBackend("aot_eager")
    step_model = torch.compile(model, backend=counter, fullgraph=True)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    x = torch.randn(shape)
    seeded = [m for m in model.modules() if isinstance(m, ft.Dropout) and m.get_state()]
    before = [m.get_state()["stream"] for m in seeded]
    for _ in range(10):
        opt.zero_grad()
        step_model(x).square().mean().backward()
        opt.step()
    assert counter.frame_count == 1  # compiled once: no recompile over 10 steps
    assert seeded and [m.get_state()["stream"] for m in seeded] == [b + 10 for b in before]


def test_compiled_steps_equal_eager_bit_for_bit():
    eager, compiled = mlp(), mlp()
    compiled[4] = ft.Dropout(0.1, seed=4)  # seeded, so both runs draw the same masks
    eager[4] = ft.Dropout(0.1, seed=4)
    step = torch.compile(compiled, backend="aot_eager", fullgraph=True)
    x = torch.randn(8, 16)
    for _ in range(3):
        ye, yc = eager(x), step(x)
        assert torch.equal(ye, yc)
        ye.sum().backward()
        yc.sum().backward()
    assert torch.equal(eager[0].weight.grad, compiled[0].weight.grad)
    assert eager[2].get_state() == compiled[2].get_state() == {"seed": 3, "stream": 3}


def test_compiled_keep_mask_and_noise_shape_equal_eager():
    def make():
        return nn.Sequential(nn.Linear(6, 6), ft.Dropout(0.4, seed=1, keep="mask"),
                             ft.Dropout(0.3, seed=2, noise_shape=(None, 1)))

    eager, compiled = make(), make()
    compiled.load_state_dict(eager.state_dict())
    step = torch.compile(compiled, backend="aot_eager", fullgraph=True)
    x = torch.randn(5, 6)
    for _ in range(2):
        ye, yc = eager(x), step(x)
        assert torch.equal(ye, yc)
        ye.sum().backward()
        yc.sum().backward()
    assert torch.equal(eager[0].weight.grad, compiled[0].weight.grad)


def test_inductor_forward_and_backward_equal_eager():
    eager = nn.Sequential(nn.Linear(8, 8), ft.Dropout(0.3, seed=2), ft.AlphaDropout(0.2, seed=1))
    compiled = copy.deepcopy(eager)
    step = torch.compile(compiled, fullgraph=True)  # inductor
    x = torch.randn(4, 8)
    for _ in range(2):
        ye, yc = eager(x), step(x)
        assert torch.equal(ye, yc)
        ye.sum().backward()
        yc.sum().backward()
    assert torch.equal(eager[0].weight.grad, compiled[0].weight.grad)
    # seeds from torch's generator: the backward uses the forward's mask
    x = torch.ones(64, requires_grad=True)
    y = torch.compile(ft.Dropout(0.5), fullgraph=True)(x)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach()) and 0 < int((y == 0).sum()) < 64


def test_a_seed_tensor_argument_does_not_recompile():
    counter = CompileCounterWithBackend("aot_eager")

    @torch.compile(backend=counter, fullgraph=True)
    def f(x, s):
        return ft.dropout(x, 0.5, seed=s) + ft.dropout2d(x, 0.5, seed=s)

    x = torch.ones(2, 3, 4, 4)
    outs = [f(x, ft.seed_tensor(9, i)) for i in range(4)]
    assert counter.frame_count == 1
    for i, y in enumerate(outs):
        expected = ft.dropout(x, 0.5, seed=9, stream=i) + ft.dropout2d(x, 0.5, seed=9, stream=i)
        assert torch.equal(y, expected)


def test_exported_program_runs_and_matches_eager():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), ft.Dropout(0.2, seed=3),
                          nn.Linear(32, 4), ft.FeatureAlphaDropout(0.1, seed=8))
    reference = copy.deepcopy(model)
    x = torch.randn(8, 16)
    program = torch.export.export(model, (x,))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert {"fastdrop.dropout.default", "fastdrop.alpha_dropout.default"} <= targets
    run = program.module()
    for _ in range(2):  # the stream buffer advances inside the exported program
        assert torch.equal(run(x), reference(x))
    with torch.no_grad():
        exported_eval = torch.export.export(copy.deepcopy(reference).eval(), (x,))
    assert torch.equal(exported_eval.module()(x), reference.eval()(x))


@pytest.mark.parametrize("seed", [None, 3], ids=["torch_seeds", "own_seed"])
def test_compiled_autograd_of_an_eager_forward(seed):
    # an eager training call (the lean Function) whose backward runs under compiled
    # autograd: dynamo traces the Function's Python backward (the operator), with the same
    # gradients as the eager backward and no recompile as the seeds change
    counter = CompileCounterWithBackend("eager")
    lin, drop = nn.Linear(8, 8), ft.Dropout(0.5, seed=seed)
    twin = ft.Dropout(0.5, seed=seed)
    twin.load_state_dict(drop.state_dict())
    for step in range(5):
        x = torch.randn(4, 8)
        torch.manual_seed(step)
        lin.zero_grad()
        drop(lin(x)).square().sum().backward()
        want = lin.weight.grad.clone()
        torch.manual_seed(step)
        lin.zero_grad()
        y = twin(lin(x)).square().sum()
        with torch._dynamo.compiled_autograd._enable(torch.compile(backend=counter)):
            y.backward()
        assert torch.equal(lin.weight.grad, want)
    assert 1 <= counter.frame_count <= 2   # (the second: the sizes made dynamic)
