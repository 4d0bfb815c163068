"""fastdrop.torch's module family as drop-ins for torch's: the behaviours PyTorch's own nn
dropout tests check, torch's rank rules, warnings and errors, state_dict, pickling,
replace_dropout."""
import copy
import io
import itertools
import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import fastdrop  # noqa: E402
import fastdrop.torch as ft  # noqa: E402

PAIRS = [(ft.Dropout, nn.Dropout), (ft.Dropout1d, nn.Dropout1d), (ft.Dropout2d, nn.Dropout2d),
         (ft.Dropout3d, nn.Dropout3d), (ft.AlphaDropout, nn.AlphaDropout),
         (ft.FeatureAlphaDropout, nn.FeatureAlphaDropout)]
SHAPES = {ft.Dropout: (8, 16, 4, 4), ft.Dropout1d: (8, 16, 12), ft.Dropout2d: (8, 16, 4, 4),
          ft.Dropout3d: (8, 16, 2, 2, 2), ft.AlphaDropout: (8, 16, 4, 4),
          ft.FeatureAlphaDropout: (8, 16, 4, 4)}
FEATURE = (ft.Dropout1d, ft.Dropout2d, ft.Dropout3d, ft.FeatureAlphaDropout)
ALPHA = (ft.AlphaDropout, ft.FeatureAlphaDropout)
ids = [c.__name__ for c, _ in PAIRS]


@pytest.mark.parametrize("cls,base", PAIRS, ids=ids)
def test_subclasses_of_torchs_modules_with_its_constructor(cls, base):
    m = cls(0.3, True)
    assert isinstance(m, base) and m.p == 0.3 and m.inplace is True
    assert cls().p == 0.5 and cls().inplace is False
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            cls(bad)
    with pytest.raises(ValueError, match="p must be in"):  # NaN passes torch's check
        cls(float("nan"))
    with pytest.raises(ValueError, match="bits"):
        cls(0.5, bits=12)


@pytest.mark.parametrize("cls,base", PAIRS, ids=ids)
def test_mean_is_preserved_and_eval_is_identity(cls, base):
    """torch's _test_dropout: input filled with 1 - p keeps its mean within tolerance;
    eval returns the input."""
    p = 0.2
    x = torch.empty(SHAPES[cls]).fill_(1 - p)
    m = cls(p, seed=3)
    y = m(x)
    if cls in ALPHA:  # zero mean, unit variance for standard inputs instead
        z = torch.randn(64, 64, 8, 8)
        yz = cls(p, seed=3)(z)
        assert abs(yz.mean().item()) < 0.1 and abs(yz.std().item() - 1) < 0.1
    else:
        assert abs(y.mean().item() - (1 - p)) < 0.05 * (1 - p) + 0.05
        assert bool((y == 0).any()) and bool((y != 0).any())
    m.eval()
    assert m(x) is x
    m.train()
    e = torch.empty(0, *SHAPES[cls][1:])
    assert m(e) is e  # empty input: torch returns it


@pytest.mark.parametrize("cls", [c for c, _ in PAIRS], ids=ids)
def test_layouts_are_preserved(cls):
    """torch's _test_dropout_stride_mean_preserve and discontiguous tests: the output has
    the input's strides, for every permutation, and the values equal the contiguous
    input's."""
    shape = SHAPES[cls]
    base = torch.randn(*shape)
    for perm in itertools.islice(itertools.permutations(range(len(shape))), 0, None, 5):
        xp = base.permute(perm).contiguous().permute(tuple(np.argsort(perm)))
        assert torch.equal(xp, base)
        y = cls(0.4, seed=1)(xp)
        assert y.stride() == xp.stride()
        assert torch.equal(y, cls(0.4, seed=1)(base))
    if len(shape) == 4:
        cl = base.to(memory_format=torch.channels_last)
        y = cls(0.4, seed=1)(cl)
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(y, cls(0.4, seed=1)(base))
    sliced = torch.randn(*shape[:-1], 2 * shape[-1])[..., ::2]  # not dense
    assert torch.equal(cls(0.4, seed=1)(sliced), cls(0.4, seed=1)(sliced.contiguous()))


@pytest.mark.parametrize("cls", FEATURE, ids=[c.__name__ for c in FEATURE])
def test_whole_channels_are_dropped(cls):
    x = torch.ones(SHAPES[cls])
    y = cls(0.5, seed=2)(x)
    per = y.flatten(2)
    assert torch.all(per == per[..., :1])
    dropped = (per[..., 0] == 0) if cls is not ft.FeatureAlphaDropout else \
        (per[..., 0] < 0)
    assert 0 < int(dropped.sum()) < dropped.numel()


def test_p_edge_cases():
    x = torch.randn(4, 8, 3)
    for cls, _ in PAIRS:
        m = cls(0.0, seed=1)
        assert m(x) is x  # as torch: p = 0 returns the input
    assert torch.equal(ft.Dropout(1.0, seed=1)(x), torch.zeros_like(x))
    assert torch.equal(ft.Dropout2d(1.0, seed=1)(x.unsqueeze(0)), torch.zeros(1, 4, 8, 3))
    assert torch.equal(ft.AlphaDropout(1.0, seed=1)(x), torch.zeros_like(x))  # as torch
    m = ft.Dropout(0.5, seed=1)
    m.p = 1.0  # settable, as on torch's modules
    assert torch.equal(m(x), torch.zeros_like(x))
    m.p = 2.0
    with pytest.raises(ValueError, match="dropout probability"):
        m(x)


def test_rank_rules_warnings_and_errors_are_torchs():
    for fd, tm, x in [(ft.Dropout1d(0.5), nn.Dropout1d(0.5), torch.randn(3)),
                      (ft.Dropout1d(0.5), nn.Dropout1d(0.5), torch.randn(2, 3, 4, 5))]:
        with pytest.raises(RuntimeError) as ours:
            fd(x)
        with pytest.raises(RuntimeError) as theirs:
            tm(x)
        assert str(ours.value) == str(theirs.value)
    for fd, tm, x in [(ft.Dropout2d(0.5), nn.Dropout2d(0.5), torch.randn(3, 4)),
                      (ft.Dropout2d(0.5), nn.Dropout2d(0.5), torch.randn(2, 3, 4)),
                      (ft.Dropout3d(0.5), nn.Dropout3d(0.5), torch.randn(2, 3, 4))]:
        with warnings.catch_warnings(record=True) as ours:
            warnings.simplefilter("always")
            y = fd(x)
        with warnings.catch_warnings(record=True) as theirs:
            warnings.simplefilter("always")
            tm(x)
        assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
        assert y.shape == x.shape
    for m in (ft.Dropout2d(0.5), ft.FeatureAlphaDropout(0.5)):
        with pytest.raises(RuntimeError, match="Feature dropout requires at least 2"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m(torch.randn(3))
    with pytest.raises(TypeError, match="input must have dtype"):
        ft.Dropout2d(0.5)(torch.ones(2, 2, 2, 2, dtype=torch.int32))



def test_eval_p_zero_and_empty_return_any_input_as_torch():
    # torch returns the input itself before looking at its dtype or rank (feature alpha
    # dropout checks the rank on the training path only): so do the drop-ins
    for x in (torch.arange(6).reshape(2, 3), torch.ones(3, dtype=torch.complex64)):
        for fd, tm in [(ft.Dropout(0.5), nn.Dropout(0.5)),
                       (ft.Dropout2d(0.5), nn.Dropout2d(0.5)),
                       (ft.AlphaDropout(0.5), nn.AlphaDropout(0.5)),
                       (ft.FeatureAlphaDropout(0.5), nn.FeatureAlphaDropout(0.5))]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # dropout2d's rank warnings
                assert fd.eval()(x) is x and tm.eval()(x) is x
        for f, g in [(ft.dropout, nn.functional.dropout),
                     (ft.alpha_dropout, nn.functional.alpha_dropout),
                     (ft.feature_alpha_dropout, nn.functional.feature_alpha_dropout)]:
            assert f(x, 0.5, training=False) is x and g(x, 0.5, training=False) is x
            assert f(x, 0.0, training=True) is x
    x1 = torch.ones(4)   # 1-D: a feature dropout's rank error in training only
    for m in (ft.FeatureAlphaDropout(0.5), nn.FeatureAlphaDropout(0.5)):
        assert m.eval()(x1) is x1 and m.train()(torch.ones(0)).numel() == 0
    assert ft.feature_alpha_dropout(x1, 0.5, False) is x1
    assert ft.feature_alpha_dropout(x1, 0.0, True) is x1
    with pytest.raises(RuntimeError, match="Feature dropout requires at least 2"):
        ft.feature_alpha_dropout(x1, 0.5, True)
    with pytest.raises(TypeError, match="input must have dtype"):   # training: the kernel
        ft.Dropout(0.5)(torch.ones(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="input must have dtype"):   # classic eval computes
        ft.Dropout(0.5, mode="classic").eval()(torch.ones(3, dtype=torch.int64))


def test_a_bad_generator_is_a_type_error_naming_it():
    x = torch.ones(8)
    for bad in (5, "cpu", np.random.default_rng(0)):
        with pytest.raises(TypeError, match="generator must be a torch.Generator"):
            ft.Dropout(0.5, generator=bad)
        for call in (lambda: ft.dropout(x, 0.5, generator=bad),
                     lambda: ft.dropout(x, 0.5, seed=1, generator=bad),
                     lambda: ft.alpha_dropout(x, 0.5, True, generator=bad),
                     lambda: ft.dropout1d(x[None], 0.5, generator=bad),
                     lambda: ft.draw_seed(bad)):
            with pytest.raises(TypeError, match="generator must be a torch.Generator"):
                call()
    g = torch.Generator().manual_seed(1)
    assert ft.dropout(x, 0.5, generator=g).shape == x.shape


@pytest.mark.parametrize("call", [
    lambda z: ft.dropout(z, 0.5, inplace=True, seed=1),
    lambda z: ft.dropout(z, 0.5, inplace=True),
    lambda z: ft.Dropout(0.5, inplace=True)(z),
    lambda z: ft.Dropout(0.5, inplace=True, noise_shape=(None, 1))(z),
    lambda z: ft.Dropout1d(0.5, inplace=True)(z),
    lambda z: ft.alpha_dropout(z, 0.5, True, True, seed=1),
    lambda z: ft.Dropout(0.5, inplace=True, mode="classic").eval()(z),
], ids=["seeded", "torch_seed", "module", "noise_shape", "dropout1d", "alpha", "classic_eval"])
def test_in_place_refusals_are_torchs_and_write_nothing(call):
    with torch.inference_mode():
        z = torch.ones(4, 6)
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside "):
        call(z)
    assert torch.equal(z, torch.ones(4, 6))
    with torch.inference_mode():   # inside inference mode: allowed, as torch's
        w = torch.ones(4, 6)
        call(w)
        assert not torch.equal(w, torch.ones(4, 6))
    base = torch.arange(6.0)
    e = base.expand(4, 6)
    with pytest.raises(RuntimeError, match="more than one element of the written-to"):
        call(e)
    with pytest.raises(RuntimeError, match="more than one element of the written-to"):
        nn.functional.dropout(base.expand(4, 6), 0.5, True, True)   # torch's own message
    assert torch.equal(base, torch.arange(6.0))


def test_meta_device_construction_then_reset_parameters():
    # torch's meta-device initialization: to_empty leaves the seed buffer uninitialized,
    # reset_parameters (as Linear's) brings back the constructor's seed at stream 0
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4, 4), ft.Dropout(0.5, seed=123), ft.Dropout2d(0.3),
                              ft.AlphaDropout(0.2, seed=fastdrop.Generator(9)))
    model.to_empty(device="cpu")
    for m in model:
        m.reset_parameters()
    assert model[1].get_state() == {"seed": 123, "stream": 0}
    assert model[2].get_state() is None and model[3].get_state() == {"seed": 9, "stream": 0}
    x = torch.randn(3, 4)
    assert torch.equal(model[1](x), ft.Dropout(0.5, seed=123)(x))
    model[1](x)
    model[1].reset_parameters()   # a re-initialization restarts the streams
    assert model[1].get_state() == {"seed": 123, "stream": 0}
    copy.deepcopy(model[1]).reset_parameters()
    old = ft.Dropout(0.5, seed=77)
    del old.__dict__["_fd_words"]   # a layer pickled before reset_parameters existed
    old(x)
    old.reset_parameters()
    assert old.get_state() == {"seed": 77, "stream": 0}


def test_a_meta_built_model_prints_saves_and_loads_with_assign():
    # the empty-weights pattern: repr and state_dict on meta (the state a layer was built
    # with: there is no data), then load_state_dict(assign=True) of a real checkpoint
    def build():
        return nn.Sequential(nn.Linear(4, 4), ft.Dropout(0.5, seed=5), ft.Dropout(0.3))

    trained = build()
    x = torch.randn(3, 4)
    trained(x), trained(x)
    ckpt = trained.state_dict()
    with torch.device("meta"):
        model = build()
    assert "seed=5" in repr(model)
    assert model[1].get_state() == {"seed": 5, "stream": 0}
    assert model.state_dict()["1._extra_state"]["state"] == {"seed": 5, "stream": 0}
    model.load_state_dict(ckpt, assign=True)
    assert not model[1].fd_state.is_meta and model[1].get_state() == {"seed": 5, "stream": 2}
    torch.manual_seed(1)   # (the second layer's seeds: torch's)
    y = model(x)
    torch.manual_seed(1)
    assert torch.equal(y, trained(x))
    # a checkpoint of torch's dropout (no extra state) with assign=True: built words
    with torch.device("meta"):
        model = build()
    torch_ckpt = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Dropout(0.3)).state_dict()
    model.load_state_dict(torch_ckpt, assign=True)
    assert model[1].get_state() == {"seed": 5, "stream": 0}
    assert model(x).shape == (3, 4)


def test_module_type_keeps_the_seed_words_int64():
    # Module.type(dtype) casts every buffer; the seed buffer stays int64 (and its words)
    model = nn.Sequential(nn.Linear(4, 4), ft.Dropout(0.5, seed=5))
    x = torch.randn(3, 4, dtype=torch.float64)
    model.type(torch.float64)
    assert model[1].fd_state.dtype == torch.int64
    assert model[1].get_state() == {"seed": 5, "stream": 0}
    assert torch.equal(model[1](x), ft.Dropout(0.5, seed=5)(x))
    with torch.device("meta"):
        meta = ft.Dropout(0.5, seed=5)
    meta.type(torch.float32)
    assert meta.fd_state.dtype == torch.int64 and meta.fd_state.is_meta

def test_unbatched_inputs_equal_a_batch_of_one():
    for cls, shape in [(ft.Dropout1d, (6, 5)), (ft.Dropout3d, (6, 2, 2, 2))]:
        x = torch.randn(shape)
        y = cls(0.5, seed=4)(x)
        assert y.shape == x.shape
        assert torch.equal(y, cls(0.5, seed=4)(x.unsqueeze(0))[0])
    x = torch.randn(6, 5)
    xi = x.clone()
    assert ft.Dropout1d(0.5, True, seed=4)(xi) is xi and xi.shape == x.shape
    assert torch.equal(xi, ft.Dropout1d(0.5, seed=4)(x))


def test_inplace_rules():
    x = torch.randn(4, 6)
    for cls in (ft.Dropout, ft.Dropout1d):
        xi = x.clone()
        assert cls(0.5, True, seed=1)(xi) is xi
        assert torch.equal(xi, cls(0.5, seed=1)(x))
    leaf = torch.randn(4, 6, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        ft.Dropout(0.5, True)(leaf)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        nn.Dropout(0.5, True)(leaf)  # the same as torch's
    xa = x.clone()
    assert ft.AlphaDropout(0.5, True, seed=1)(xa) is not xa  # ignored, as torch's module
    assert torch.equal(xa, x)
    xf = x.clone()
    assert ft.alpha_dropout(xf, 0.5, True, True, seed=1) is xf  # the functional form isn't
    assert torch.equal(xf, ft.alpha_dropout(x, 0.5, True, seed=1))


def test_functional_signatures_are_torchs():
    import inspect

    import torch.nn.functional as F

    for ours, theirs in [(ft.dropout, F.dropout), (ft.dropout1d, F.dropout1d),
                         (ft.dropout2d, F.dropout2d), (ft.dropout3d, F.dropout3d),
                         (ft.alpha_dropout, F.alpha_dropout),
                         (ft.feature_alpha_dropout, F.feature_alpha_dropout)]:
        a = list(inspect.signature(ours).parameters.values())[:4]
        b = list(inspect.signature(theirs).parameters.values())
        assert [(p.name, p.default) for p in a] == [(p.name, p.default) for p in b]
    x = torch.ones(5)
    assert ft.alpha_dropout(x, 0.5) is x  # training=False by default, as torch
    with pytest.raises(ValueError, match="dropout probability"):
        ft.dropout(x, 1.5)


# ---- seeds, state_dict, pickling -------------------------------------------------------------


def test_state_dict_replays_a_resumed_run():
    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 8), ft.Dropout(0.5, seed=11), nn.Linear(8, 8),
                             ft.Dropout2d(0.3, seed=12))

    x = torch.randn(2, 8, 8)
    a = make()
    for _ in range(3):
        a(x)
    sd = a.state_dict()
    assert sd["1._extra_state"] == {"version": 1, "source": "seed",
                                    "state": {"seed": 11, "stream": 3}}
    expected = [a(x) for _ in range(2)]
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    b = make()
    b.load_state_dict(torch.load(buf))
    assert all(torch.equal(b(x), e) for e in expected)
    # a layer seeded from torch records that, and refuses another source's state
    c = ft.Dropout(0.5)
    assert c.state_dict()["_extra_state"] == {"version": 1, "source": "torch", "state": None}
    with pytest.raises(ValueError, match="whose seeds come from 'seed'"):
        c.load_state_dict(ft.Dropout(0.5, seed=1).state_dict())
    with pytest.raises(ValueError, match="extra state"):
        b[1].set_extra_state({"seed": 1})
    assert b[1].get_state() == {"seed": 11, "stream": 5}  # unchanged by the failures


@pytest.mark.parametrize("strict", [True, False])
def test_a_checkpoint_of_torch_s_dropout_loads_into_fastdrop_s(strict):
    # torch's dropout layers have no state: their checkpoints have no `_extra_state`
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 8),
                          nn.Dropout2d(0.3), nn.AlphaDropout(0.1))
    sd = plain.state_dict()
    model = nn.Sequential(nn.Linear(8, 8), ft.Dropout(0.5, seed=11), nn.Linear(8, 8),
                          ft.Dropout2d(0.3, seed=12), ft.AlphaDropout(0.1))
    model[1](torch.ones(8))                      # stream 1 now
    res = model.load_state_dict(sd, strict=strict)
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert torch.equal(model[0].weight, plain[0].weight)
    assert model[1].get_state() == {"seed": 11, "stream": 1}   # kept, not reset
    replaced = copy.deepcopy(plain)
    assert [name for name, _ in ft.replace_dropout(replaced, seed=3)] == ["1", "3", "4"]
    assert replaced.load_state_dict(sd, strict=strict).missing_keys == []
    # a missing weight is still reported, and the saved state of a fastdrop layer loads
    del sd["2.weight"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "2.weight"'):
        model.load_state_dict(sd)
    other = nn.Sequential(nn.Linear(8, 8), ft.Dropout(0.5, seed=11))
    other[1](torch.ones(8))
    other[1](torch.ones(8))
    model2 = nn.Sequential(nn.Linear(8, 8), ft.Dropout(0.5, seed=11))
    model2.load_state_dict(other.state_dict(), strict=strict)
    assert model2[1].get_state() == {"seed": 11, "stream": 2}
    # the other way, torch reports the fastdrop layer's entry (documented)
    res = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5)).load_state_dict(
        other.state_dict(), strict=False)
    assert res.unexpected_keys == ["1._extra_state"]


def test_deep_copy_pickle_and_transformer_clones():
    layer = ft.Dropout(0.25, seed=5)
    t = torch.ones(64)
    layer(t)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert isinstance(clone, ft.Dropout) and clone.get_state() == layer.get_state()
        assert torch.equal(clone(t), copy.deepcopy(layer)(t))
    enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1)
    ft.replace_dropout(enc, seed=3)
    enc.self_attn.dropout = 0.0  # torch's attention dropout: a float, not a module
    stack = nn.TransformerEncoder(enc, num_layers=2, enable_nested_tensor=False)
    assert isinstance(stack.layers[1].dropout1, ft.Dropout)
    buf = io.BytesIO()
    torch.save(stack, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    x = torch.randn(4, 2, 16)
    assert torch.equal(loaded(x), stack(x))


def test_torch_seeds_and_manual_seed():
    def run(seed):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(32, 32), ft.Dropout(0.5), nn.Linear(32, 4))
        x = torch.randn(8, 32)
        return torch.cat([model(x), model(x)])

    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))
    # the seed words are draw_seed's
    m = ft.Dropout(0.5)
    torch.manual_seed(7)
    y = m(torch.ones(100))
    torch.manual_seed(7)
    s = ft.draw_seed()
    assert m.last_call == (s, 0)
    assert torch.equal(y, ft.dropout(torch.ones(100), 0.5, seed=s))


def test_a_shared_fastdrop_generator():
    gen = fastdrop.Generator(7)
    a, b = ft.Dropout(0.5, seed=gen), ft.Dropout2d(0.5, seed=gen)
    a(torch.ones(4)), b(torch.ones(1, 2, 2, 2))
    assert a.last_call == (7, 0) and b.last_call == (7, 1)
    assert a.state_dict()["_extra_state"]["state"] == {"seed": 7, "stream": 2}


# ---- replace_dropout -------------------------------------------------------------------------


def test_replace_dropout_of_a_module_shared_under_one_parent():
    d = nn.Dropout(0.3)
    seq = nn.Sequential(nn.Linear(4, 4), d, nn.Linear(4, 4), d)
    names = [n for n, _ in ft.replace_dropout(seq, seed=2)]
    assert names == ["1"] and seq[1] is seq[3] and isinstance(seq[3], ft.Dropout)
    md = nn.ModuleDict({"a": d, "b": d})
    ft.replace_dropout(md)
    assert md["a"] is md["b"] and isinstance(md["b"], ft.Dropout)


def test_replace_dropout_swaps_every_torch_dropout():
    shared = nn.Dropout(0.3)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1, inplace=True), shared,
                          nn.Sequential(nn.Dropout2d(0.2), nn.AlphaDropout(0.4), shared),
                          nn.FeatureAlphaDropout(0.5), nn.Dropout1d(0.6), nn.Dropout3d(0.7))
    model[3].eval()
    replaced = ft.replace_dropout(model, bits=32)
    names = [n for n, _ in replaced]
    assert names == ["1", "2", "3.0", "3.1", "4", "5", "6"]  # the shared one once
    assert model[2] is model[3][2] and isinstance(model[2], ft.Dropout)
    for (_, old), new in zip(replaced, [model[1], model[2], model[3][0], model[3][1],
                                        model[4], model[5], model[6]]):
        assert type(new).__name__ == type(old).__name__ and isinstance(new, type(old))
        assert new.p == old.p and new.inplace == old.inplace
        assert new.training == old.training and new.bits == 32
    assert not model[3][0].training and model[1].training
    assert ft.replace_dropout(model) == []  # nothing left
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        ft.replace_dropout(object())
    fresh = nn.Sequential(nn.Dropout(0.1))
    with pytest.raises(ValueError, match="keep"):
        ft.replace_dropout(fresh, keep="bad")
    assert type(fresh[0]) is nn.Dropout  # nothing replaced


def test_replace_dropout_gives_layers_distinct_streams():
    model = nn.Sequential(nn.Dropout(0.5), nn.Dropout(0.5))
    ft.replace_dropout(model, seed=9)
    assert model[0].get_state() == {"seed": 9, "stream": 0}
    assert model[1].get_state() == {"seed": 9, "stream": 2**32}
    x = torch.ones(256)
    assert not torch.equal(model[0](x), model[1](x))


def test_replace_dropout_in_a_transformer_layer_trains():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True)
    assert [n for n, _ in ft.replace_dropout(layer)] == ["dropout", "dropout1", "dropout2"]
    x = torch.randn(2, 5, 16)
    layer(x).sum().backward()
    assert layer.linear1.weight.grad is not None
    layer.eval()
    with torch.no_grad():  # eval: the dropouts are identities (torch's fast path may run)
        assert torch.allclose(layer(x), layer(x))


@pytest.mark.parametrize("seed", [None, 5])
def test_checkpoint_recompute_draws_the_forward_mask(seed):
    """torch.utils.checkpoint(use_reentrant=False) recomputes the layer in the backward:
    the gradient equals the one without checkpointing (same mask), for an int seed and
    for seed=None (docs/adapters.md)."""
    from torch.utils.checkpoint import checkpoint

    torch.manual_seed(0)
    lin = nn.Linear(64, 64)
    x = torch.randn(8, 64, requires_grad=True)
    grads, outs = [], []
    for use_checkpoint in (True, False):
        d = ft.Dropout(0.5, seed=seed)
        torch.manual_seed(1)
        f = (lambda a: d(lin(a)))
        y = checkpoint(f, x, use_reentrant=False) if use_checkpoint else f(x)
        y.sum().backward()
        grads.append(x.grad.clone())
        outs.append(y.detach())
        x.grad = None
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(grads[0], grads[1])
    assert not torch.equal(grads[0], lin.weight.sum(0).expand(8, 64))  # a mask was used
