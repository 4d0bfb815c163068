"""Generator (fresh stream per call, saved and restored state) and the Dropout layer."""

import numpy as np
import pytest

import fastdrop as fd
from _helpers import assert_bits_equal, in_threads, make_x


def test_each_call_takes_a_fresh_stream():
    gen = fd.Generator(42)
    x = make_x((100, 30), np.float32)
    y0, c0 = gen.dropout(x, 0.5)
    y1, c1 = gen.dropout(x, 0.5)
    assert (c0.stream, c1.stream) == (0, 1) and c0.seed == c1.seed == 42
    assert_bits_equal(y0, fd.dropout(x, 0.5, seed=42, stream=0))
    assert_bits_equal(y1, fd.dropout(x, 0.5, seed=42, stream=1))
    assert not np.array_equal(y0, y1)
    assert gen.next_stream == 2


def test_call_backward_regenerates_the_mask():
    gen = fd.Generator(7, stream=100)
    x = make_x((8, 3, 5), np.float64)
    g = make_x((8, 3, 5), np.float64, seed=1)
    y, call = gen.dropout(x, 0.3, noise_shape=(8, 3, 1))
    _, mask = fd.dropout(x, 0.3, seed=7, stream=100, noise_shape=(8, 3, 1), return_mask=True)
    assert_bits_equal(call.backward(g), fd.dropout_backward(g, 0.3, mask=mask,
                                                            noise_shape=(8, 3, 1)))
    np.testing.assert_array_equal(call.mask((8, 3, 1)), mask)
    ya, ca = gen.alpha_dropout(x, 0.2)
    assert_bits_equal(ca.backward(g), fd.alpha_dropout_backward(g, 0.2, seed=7, stream=101))
    b = make_x((5,), np.float64, seed=3, specials=False)
    yb, cb = gen.bias_dropout_add(x, b, x, 0.4)
    assert_bits_equal(yb, fd.bias_dropout_add(x, b, x, 0.4, seed=7, stream=102))
    dx, db, dr = cb.backward(g)
    assert_bits_equal(dx, fd.dropout_backward(g, 0.4, seed=7, stream=102))


def test_state_save_and_restore_replays_the_same_masks():
    gen = fd.Generator(123)
    x = make_x((64,), np.float32)
    gen.dropout(x, 0.5)
    state = gen.get_state()
    first = [gen.dropout(x, 0.5)[0] for _ in range(3)]
    gen.set_state(state)
    again = [gen.dropout(x, 0.5)[0] for _ in range(3)]
    for a, b in zip(first, again):
        assert_bits_equal(a, b)
    other = fd.Generator(0)
    other.set_state(state)
    assert_bits_equal(other.dropout(x, 0.5)[0], first[0])
    with pytest.raises(ValueError):
        gen.set_state({"seed": 1})
    with pytest.raises(ValueError, match="seed"):
        gen.set_state({"seed": -1, "stream": 0})


def test_inference_takes_no_stream():
    gen = fd.Generator(1)
    x = make_x((10,), np.float32)
    y, call = gen.dropout(x, 0.5, training=False)
    assert y is x and call is None and gen.next_stream == 0


def test_streams_are_unique_across_threads():
    gen = fd.Generator(5)
    taken = in_threads(lambda: [gen.take_stream() for _ in range(2000)])
    assert sorted(taken) == list(range(8000))


def test_random_seed_when_none():
    assert fd.Generator().seed != fd.Generator().seed  # 2^-64 chance of a false failure


def test_layer_forward_backward_and_modes():
    layer = fd.Dropout(0.25, seed=9)
    x = make_x((16, 20), np.float32)
    g = make_x((16, 20), np.float32, seed=2)
    y = layer(x, training=True)
    assert_bits_equal(y, fd.dropout(x, 0.25, seed=9, stream=0))
    assert_bits_equal(layer.backward(g), fd.dropout_backward(g, 0.25, seed=9, stream=0))
    y2 = layer(x)  # second call: next stream
    assert_bits_equal(y2, fd.dropout(x, 0.25, seed=9, stream=1))
    assert_bits_equal(layer.backward(g), fd.dropout_backward(g, 0.25, seed=9, stream=1))
    assert layer(x, training=False) is x
    assert layer.effective_rate == fd.effective_p(0.25) == 0.25
    assert layer.scale == fd.dropout_scale(0.25)
    classic = fd.Dropout(0.1, mode="classic", seed=1)
    assert classic.scale == 1.0 and classic.effective_rate == fd.effective_p(0.1)
    assert_bits_equal(classic(x, training=False),
                      (x * np.float32(1 - fd.effective_p(0.1))).astype(np.float32))


def test_layer_spatial_and_shared_generator():
    gen = fd.Generator(3)
    a, b = fd.Dropout(0.5, seed=gen), fd.Dropout(0.5, seed=gen, noise_shape=(None, None, 1, 1))
    x = np.ones((2, 4, 3, 3), np.float32)
    a(x)
    yb = b(x)
    assert gen.next_stream == 2
    assert all(len(np.unique(yb[i, c])) == 1 for i in range(2) for c in range(4))
    assert b.get_config()["noise_shape"] == (None, None, 1, 1)


def test_layer_errors():
    with pytest.raises(RuntimeError, match="training call"):
        fd.Dropout(0.5, seed=1).backward(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="p must be"):
        fd.Dropout(1.5)
    with pytest.raises(ValueError, match="mode"):
        fd.Dropout(0.5, mode="other")
    with pytest.raises(ValueError, match="bits"):
        fd.Dropout(0.5, bits=12)


def test_generators_and_layers_pickle_and_deep_copy():
    """A copy keeps the seed and the next stream, so it replays what the original draws
    next (a threading.Lock made pickling fail: issue 15)."""
    import copy
    import pickle

    for clone_of in (lambda g: pickle.loads(pickle.dumps(g)), copy.deepcopy):
        gen = fd.Generator(5, stream=7)
        gen.take_stream()
        clone = clone_of(gen)
        assert clone.get_state() == {"seed": 5, "stream": 8}
        assert clone.take() == gen.take() == (5, 8)
        clone.take_stream()  # the copy's lock and counter are its own
        assert gen.next_stream == 9 and clone.next_stream == 10
    x = np.ones(64, np.float32)
    layer = fd.Dropout(0.3, seed=9)
    layer(x)
    twin = pickle.loads(pickle.dumps(layer))
    assert_bits_equal(twin(x), layer(x))
    assert_bits_equal(twin.backward(x), layer.backward(x))


@pytest.mark.parametrize("bad", [
    lambda g, x: g.dropout(x, 1.5),
    lambda g, x: g.dropout(x, 0.5, bits=24),
    lambda g, x: g.dropout(x, 0.5, out=np.empty(x.shape, np.float64)),
    lambda g, x: g.alpha_dropout(x, -0.1),
    lambda g, x: g.gaussian_dropout(x, 1.0),
    lambda g, x: g.bias_dropout_add(x, None, x[:, :1], 0.5),
    lambda g, x: g.dropout_mask((-1,), 0.5),
    lambda g, x: g.random_bits(4, bits=7),
    lambda g, x: g.uniform(4, dtype=np.int32),
    lambda g, x: g.standard_normal(4, dtype=np.float16),
], ids=["p", "bits", "out", "alpha_p", "gaussian_p", "bda_shape", "mask_shape",
        "random_bits", "uniform", "standard_normal"])
def test_a_call_that_raises_takes_no_stream(bad):
    # bad input changes nothing: the generator's next stream stays, so the next good call
    # draws what a fresh generator's first call draws
    gen = fd.Generator(1234)
    x = make_x((6, 5), np.float32)
    with pytest.raises((TypeError, ValueError)):
        bad(gen, x)
    assert gen.get_state() == {"seed": 1234, "stream": 0}
    y, call = gen.dropout(x, 0.5)
    assert call.stream == 0
    assert_bits_equal(y, fd.Generator(1234).dropout(x, 0.5)[0])


def test_bias_dropout_add_call_records_whether_there_was_a_bias():
    gen = fd.Generator(3)
    for x in (np.float32(2.0) + np.zeros((), np.float32), make_x((4, 3), np.float32)):
        g = np.ones_like(x)
        y, call = gen.bias_dropout_add(x, None, np.zeros_like(x), 0.5)
        assert call.has_bias is False
        dx, db, dr = call.backward(g)
        assert db is None
        want = fd.bias_dropout_add_backward(g, 0.5, seed=3, stream=call.stream,
                                            has_bias=False)
        assert_bits_equal(dx, want[0])
    x = make_x((4, 3), np.float32)
    y, call = gen.bias_dropout_add(x, np.ones(3, np.float32), x, 0.5)
    assert call.has_bias is True and call.backward(np.ones_like(x))[1].shape == (3,)
    # a call made by hand (no has_bias): a bias, as before
    by_hand = fd.DropoutCall("bias_dropout_add", 3, call.stream, 0.5)
    assert by_hand.backward(np.ones_like(x))[1].shape == (3,)
    assert gen.dropout(x, 0.5)[1].has_bias is None


@pytest.mark.parametrize("call", [
    lambda g, x: g.dropout(x, 0.5, training="no"),
    lambda g, x: g.dropout(x, 0.5, training=None),
    lambda g, x: g.dropout(x, 0.5, training=0),
    lambda g, x: g.dropout(x, 0.5, training=False, n_threads=0),
    lambda g, x: g.dropout(x, 0.5, training=False, bits=7),
    lambda g, x: g.alpha_dropout(x, 0.5, training=False, bits=7),
    lambda g, x: g.alpha_dropout(x, 0.5, training=False, noise_shape=(3,)),
    lambda g, x: g.alpha_dropout(x, 0.5, training=False, n_threads=-3),
    lambda g, x: g.gaussian_dropout(x, 0.5, training=False, n_threads=0),
    lambda g, x: fd.Dropout(0.5, seed=1)(x, training="no"),
], ids=["training_str", "training_none", "training_int", "infer_threads", "infer_bits",
        "alpha_infer_bits", "alpha_infer_noise", "alpha_infer_threads", "gauss_infer_threads",
        "layer_training"])
def test_arguments_are_checked_as_the_functions_check_them(call):
    # at inference too: the operations' arguments are those of fastdrop.dropout and its
    # twins, with the same errors; a truthy training is not a bool
    gen = fd.Generator(1)
    x = make_x((8,), np.float32)
    with pytest.raises((TypeError, ValueError)) as e:
        call(gen, x)
    assert any(w in str(e.value) for w in ("training", "n_threads", "bits", "noise_shape"))
    assert gen.get_state() == {"seed": 1, "stream": 0}


def test_dropout_call_kinds_are_checked():
    for kind in ("Gaussian", "gauss", "bogus", 42):
        with pytest.raises(ValueError, match="kind must be one of"):
            fd.DropoutCall(kind, 1, 0, 0.5)
    g = np.ones(8, np.float32)
    call = fd.DropoutCall("gaussian", 1, 0, 0.5)
    assert_bits_equal(call.backward(g), fd.gaussian_dropout_backward(g, 0.5, seed=1))
