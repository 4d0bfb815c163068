"""fastdrop.keras on one Keras backend: the cases `test_keras.py` runs once per backend.

Not collected by the suite (no ``test_`` prefix): Keras fixes its backend when it is first
imported, so `test_keras.py` runs this file in a child ``python -m pytest`` with
``KERAS_BACKEND`` set to jax, torch or numpy (and tensorflow where it is installed). Run it
by hand the same way::

    KERAS_BACKEND=torch python -m pytest tests/adapters/keras_layer_cases.py -q

The cases follow Keras's own layer tests (keras/src/layers/regularization/*_test.py):
Keras's ``run_layer_test`` (output shape, weights, seed generators, masking, the
serialization round trip, symbolic and eager calls, a training step, mixed precision),
rescaling, noise shapes, spatial masks, invalid arguments; and fastdrop's: every layer
equals the public function for the Keras seed state's (seed, stream), eager, under
``jax.jit`` / ``tf.function`` and inside ``model.fit``, gradients included.
"""
import math
import os

import numpy as np
import pytest

BACKEND = os.environ.get("KERAS_BACKEND")
if BACKEND is None:
    pytest.skip("run by test_keras.py with KERAS_BACKEND set", allow_module_level=True)

if BACKEND == "tensorflow":  # optional (CI does not install it): skip without it
    pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import fastdrop  # noqa: E402
import fastdrop.keras as fk  # noqa: E402

from _helpers import BFLOAT16, assert_bits_equal, make_x  # noqa: E402

assert keras.backend.backend() == BACKEND, (keras.backend.backend(), BACKEND)
CAN_TRAIN = BACKEND in ("jax", "torch", "tensorflow")
DIFFERENTIABLE = BACKEND in ("jax", "torch", "tensorflow")


def to_np(y):
    """A NumPy array of y's own dtype (torch bfloat16 through its bits: Keras's
    convert_to_numpy would widen it to float32)."""
    if BACKEND == "torch":
        import torch

        if isinstance(y, torch.Tensor) and y.dtype == torch.bfloat16:
            return y.detach().cpu().view(torch.int16).numpy().view(BFLOAT16)
    return keras.ops.convert_to_numpy(y)


def ref_dropout(noise_shape=None, bits=16):
    return lambda x, rate, seed, stream: fastdrop.dropout(
        x, rate, seed=seed, stream=stream, noise_shape=noise_shape, bits=bits)


def ref_alpha(noise_shape=None, bits=16):
    return lambda x, rate, seed, stream: fastdrop.alpha_dropout(
        x, rate, seed=seed, stream=stream, noise_shape=noise_shape, bits=bits)


def ref_gaussian(x, rate, seed, stream):
    return fastdrop.gaussian_dropout(x, rate, seed=seed, stream=stream)


def ref_noise(x, stddev, seed, stream):
    c = np.float64 if x.dtype == np.float64 else np.float32
    z = fastdrop.standard_normal(x.shape, seed=seed, stream=stream, dtype=c)
    return (x.astype(c) + c(stddev) * z).astype(x.dtype)


# (id, layer class, constructor arguments, input shape, the fastdrop twin)
CASES = [
    ("dropout", fk.Dropout, dict(rate=0.3), (4, 6, 5), ref_dropout()),
    ("dropout-bits32", fk.Dropout, dict(rate=0.3, bits=32), (4, 6, 5), ref_dropout(bits=32)),
    ("dropout-noise-shape", fk.Dropout, dict(rate=0.4, noise_shape=(None, 1, None)),
     (4, 6, 5), ref_dropout((None, 1, None))),
    ("spatial1d", fk.SpatialDropout1D, dict(rate=0.4), (4, 6, 5), ref_dropout((None, 1, None))),
    ("spatial2d-last", fk.SpatialDropout2D, dict(rate=0.4, data_format="channels_last"),
     (3, 4, 5, 6), ref_dropout((None, 1, 1, None))),
    ("spatial2d-first", fk.SpatialDropout2D, dict(rate=0.4, data_format="channels_first"),
     (3, 4, 5, 6), ref_dropout((None, None, 1, 1))),
    ("spatial3d-last", fk.SpatialDropout3D, dict(rate=0.4, data_format="channels_last"),
     (2, 3, 4, 2, 5), ref_dropout((None, 1, 1, 1, None))),
    ("spatial3d-first", fk.SpatialDropout3D, dict(rate=0.4, data_format="channels_first"),
     (2, 3, 4, 2, 5), ref_dropout((None, None, 1, 1, 1))),
    ("alpha", fk.AlphaDropout, dict(rate=0.2), (4, 6, 5), ref_alpha()),
    ("alpha-noise-shape", fk.AlphaDropout, dict(rate=0.2, noise_shape=[None, 1, 5]),
     (4, 6, 5), ref_alpha((None, 1, 5))),
    ("gaussian", fk.GaussianDropout, dict(rate=0.3), (4, 6, 5), ref_gaussian),
    ("noise", fk.GaussianNoise, dict(stddev=0.3), (4, 6, 5), ref_noise),
]
IDS = [c[0] for c in CASES]


def amount(kwargs):
    return kwargs.get("rate", kwargs.get("stddev"))


# ---- Keras's own layer test --------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_testing():
    testing = pytest.importorskip("keras.src.testing")
    case = testing.TestCase()
    case.setUp()
    return case


# one case per layer (and both data formats of the spatial layers between 2D and 3D):
# the training check compiles a model.fit on jax; test_fit_uses_the_fastdrop_noise trains
# every case
LAYER_CASES = [c for c in CASES if c[0] in ("dropout", "spatial1d", "spatial2d-first",
                                            "spatial3d-last", "alpha", "gaussian", "noise")]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_keras_run_layer_test(keras_testing, case, training):
    """Keras's run_layer_test, as Keras's tests call it for its own layers: output shape,
    no weights, one seed generator, masking, get_config / serialize round trip, symbolic
    call, eager call, a training step (model.fit) and mixed precision."""
    _, cls, kwargs, shape, _ = case
    # input_data rather than input_shape: Keras would draw the input with keras.random,
    # a compilation of its own on jax
    keras_testing.run_layer_test(
        cls, init_kwargs=kwargs, input_data=make_x(shape, np.float32, specials=False),
        call_kwargs={"training": training},
        expected_output_shape=shape, expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0, expected_num_seed_generators=1,
        expected_num_losses=0, supports_masking=True, assert_built_after_instantiation=True,
        run_training_check=training, run_mixed_precision_check=training)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_is_the_keras_layer_and_has_no_weights(case):
    _, cls, kwargs, shape, _ = case
    layer = cls(**kwargs, seed=5)
    keras_cls = getattr(keras.layers, cls.__name__)
    assert isinstance(layer, keras_cls) and cls is not keras_cls
    assert layer.built and layer.weights == [] and layer.supports_masking
    assert layer.supports_jit == (BACKEND != "tensorflow")  # XLA cannot run the host call
    assert [v.path for v in layer.non_trainable_variables] == [layer.seed_generator.state.path]
    assert layer.compute_output_shape((None,) + shape[1:]) == (None,) + shape[1:]
    unknown = (None,) * (len(shape) - 1) + shape[-1:]
    assert layer.compute_output_shape(unknown) == unknown
    zero = cls(**{**kwargs, "rate" if "rate" in kwargs else "stddev": 0})
    assert not hasattr(zero, "seed_generator")  # rate 0: no generator, as Keras


# ---- the numbers: equal to fastdrop for the seed state's (seed, stream) -------------------


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_equals_fastdrop_for_the_seed_state(case, dtype):
    """Call n of a layer with Keras seed s equals the fastdrop function with seed=s,
    stream=n, bit for bit (the mapping of fastdrop.keras's docstring)."""
    _, cls, kwargs, shape, ref = case
    layer = cls(**kwargs, seed=2**31 - 3, dtype=dtype)
    x = make_x(shape, np.float32).astype(BFLOAT16 if dtype == "bfloat16" else dtype)
    for n in range(3):
        assert fk.seed_stream(layer.seed_generator) == (2**31 - 3, n)
        y = to_np(layer(x, training=True))
        assert_bits_equal(y, ref(x, amount(kwargs), 2**31 - 3, n))
    assert fk.seed_stream(layer.seed_generator) == (2**31 - 3, 3)


def test_seed_stream_mapping():
    gen = keras.random.SeedGenerator(123)
    assert fk.seed_stream(gen) == (123, 0)
    assert fk.seed_stream(gen.next()) == (123, 0)
    assert fk.seed_stream(gen.state) == (123, 1)
    assert fk.seed_stream(np.array([-1, -2], np.int32)) == (2**32 - 1, 2**32 - 2)
    with pytest.raises(TypeError, match="state"):
        fk.seed_stream(np.zeros(3, np.uint32))
    with pytest.raises(TypeError, match="state"):
        fk.seed_stream(np.zeros(2, np.float32))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_seedless_layers_follow_set_random_seed(case):
    """seed=None: Keras draws the seed from Python's random at construction, so
    keras.utils.set_random_seed reproduces the draws (of every layer: GaussianDropout and
    GaussianNoise too); different seeds differ."""
    _, cls, kwargs, shape, ref = case
    x = make_x(shape, np.float32, specials=False)
    outs, seeds = [], []
    for s in (7, 7, 8):
        keras.utils.set_random_seed(s)
        layer = cls(**kwargs)
        seeds.append(fk.seed_stream(layer.seed_generator)[0])
        outs.append(to_np(layer(x, training=True)))
    assert_bits_equal(outs[0], outs[1])
    assert seeds[0] == seeds[1] != seeds[2] and 1 <= seeds[0] <= 10**9
    assert not np.array_equal(outs[0], outs[2])
    assert_bits_equal(outs[0], ref(x, amount(kwargs), seeds[0], 0))


def test_two_layers_with_the_same_seed_draw_the_same_masks():
    """As Keras's layers: the seed, not the layer, names the stream sequence."""
    x = np.ones((4, 32), np.float32)
    a, b = fk.Dropout(0.5, seed=3), fk.Dropout(0.5, seed=3)
    np.testing.assert_array_equal(to_np(a(x, training=True)), to_np(b(x, training=True)))
    c = fk.Dropout(0.5, seed=4)
    assert not np.array_equal(to_np(a(x, training=True)), to_np(c(x, training=True)))


# ---- statistics, as Keras's tests ---------------------------------------------------------


def test_dropout_rescaling():
    y = to_np(fk.Dropout(0.5, seed=1337)(np.ones((20, 500)), training=True))
    assert abs(y.mean() - 1.0) < 0.02 and y.max() == 2.0
    assert abs((y == 0).mean() - 0.5) < 0.02 and set(np.unique(y)) == {0.0, 2.0}


@pytest.mark.parametrize("layer,shape", [
    (lambda: fk.SpatialDropout1D(0.5, seed=1337), (100, 3, 100)),
    (lambda: fk.SpatialDropout2D(0.5, "channels_first", seed=1337), (100, 100, 2, 2)),
    (lambda: fk.SpatialDropout3D(0.5, "channels_last", seed=1337), (100, 2, 1, 2, 100))],
    ids=["1d", "2d-first", "3d-last"])
def test_spatial_rescaling(layer, shape):
    """Mean 1 at rate 0.5 over 10**4 feature maps: kept maps are scaled by 2."""
    y = to_np(layer()(np.ones(shape, np.float32), training=True))
    assert abs(y.mean() - 1.0) < 0.03 and set(np.unique(y)) == {0.0, 2.0}


def test_alpha_gaussian_noise_statistics():
    ones = np.ones((20, 500), np.float32)
    y = to_np(fk.AlphaDropout(0.3, seed=1337)(ones, training=True))
    assert abs(y.std() - 1.0) < 0.1 and len(np.unique(y)) == 2
    y = to_np(fk.GaussianDropout(0.3, seed=1337)(ones, training=True))
    assert abs(y.std() - math.sqrt(0.3 / 0.7)) < 0.02 and abs(y.mean() - 1) < 0.02
    y = to_np(fk.GaussianNoise(0.3, seed=1337)(ones, training=True))
    assert abs(y.std() - 0.3) < 0.02 and abs(y.mean() - 1) < 0.02


# ---- noise shapes and spatial masks -------------------------------------------------------


@pytest.mark.parametrize("cls", [fk.Dropout, fk.AlphaDropout])
@pytest.mark.parametrize("noise_shape", [(None, 1, None), (20, 1, 10), [None, 1, 10]])
def test_partial_noise_shape(cls, noise_shape):
    x = np.ones((20, 5, 10), np.float32)
    layer = cls(0.5, noise_shape=noise_shape, seed=2)
    assert layer.noise_shape == tuple(noise_shape)
    y = to_np(layer(x, training=True))
    for t in range(1, 5):
        np.testing.assert_array_equal(y[:, 0, :], y[:, t, :])
    assert len(np.unique(y[:, 0, :])) == 2  # something is dropped, something kept
    ref = fastdrop.dropout if cls is fk.Dropout else fastdrop.alpha_dropout
    assert_bits_equal(y, ref(x, 0.5, seed=2, stream=0, noise_shape=noise_shape))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first", None])
@pytest.mark.parametrize("cls,ndim", [(fk.SpatialDropout1D, 3), (fk.SpatialDropout2D, 4),
                                      (fk.SpatialDropout3D, 5)])
def test_spatial_masks_are_constant_over_the_spatial_axes(cls, ndim, data_format):
    if cls is fk.SpatialDropout1D:
        if data_format is not None:
            pytest.skip("SpatialDropout1D has no data_format (as Keras's)")
        layer, channels_first = cls(0.5, seed=9), False
    else:
        layer = cls(0.5, data_format=data_format, seed=9)
        resolved = data_format or keras.config.image_data_format()
        assert layer.data_format == resolved
        channels_first = resolved == "channels_first"
    shape = (6, 7) + (3,) * (ndim - 2) if channels_first else (6,) + (3,) * (ndim - 2) + (7,)
    y = to_np(layer(np.ones(shape, np.float32), training=True))
    spatial = tuple(range(2, ndim)) if channels_first else tuple(range(1, ndim - 1))
    first = y[tuple(slice(0, 1) if k in spatial else slice(None) for k in range(ndim))]
    np.testing.assert_array_equal(y, np.broadcast_to(first, y.shape))
    assert set(np.unique(first)) == {0.0, 2.0}  # whole maps dropped, whole maps kept


def test_spatial_input_rank_is_checked():
    with pytest.raises(ValueError):
        fk.SpatialDropout2D(0.5)(np.ones((2, 3, 4), np.float32), training=True)


# ---- inference ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inference_is_identity(case):
    _, cls, kwargs, shape, _ = case
    layer = cls(**kwargs, seed=1)
    x = make_x(shape, np.float32)
    for call in (lambda: layer(x), lambda: layer(x, training=False)):
        assert_bits_equal(to_np(call()), x)
    assert fk.seed_stream(layer.seed_generator) == (1, 0)  # no stream taken
    zero = cls(**{**kwargs, "rate" if "rate" in kwargs else "stddev": 0.0})
    assert_bits_equal(to_np(zero(x, training=True)), x)
    model = keras.Sequential([keras.Input(shape[1:]), cls(**kwargs)])
    assert_bits_equal(to_np(model.predict(x, verbose=0)), x)


# ---- invalid arguments: ValueError at construction, as Keras -------------------------------


RATE_MSG = "Invalid value received for argument `rate`. Expected a float value between 0 and 1."
RATE_LAYERS = [fk.Dropout, fk.SpatialDropout1D, fk.SpatialDropout2D, fk.SpatialDropout3D,
               fk.AlphaDropout, fk.GaussianDropout]


@pytest.mark.parametrize("cls", RATE_LAYERS)
@pytest.mark.parametrize("rate", [-0.5, 1.5, float("nan")])
def test_invalid_rate(cls, rate):
    with pytest.raises(ValueError, match=RATE_MSG):
        cls(rate=rate)


@pytest.mark.parametrize("cls", RATE_LAYERS)
def test_rate_of_the_wrong_type(cls):
    with pytest.raises(TypeError, match="`rate`"):
        cls(rate="0.5")
    with pytest.raises(TypeError, match="`rate`"):
        cls(rate=None)


def test_gaussian_rate_one_and_noise_stddev():
    with pytest.raises(ValueError, match="`rate`.*infinite variance"):
        fk.GaussianDropout(1.0)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="Invalid value received for argument `stddev`"):
            fk.GaussianNoise(bad)
    with pytest.raises(TypeError, match="`stddev`"):
        fk.GaussianNoise("0.1")
    ones = np.ones((2, 8), np.float32)  # rate 1 drops everything, as Keras's
    np.testing.assert_array_equal(to_np(fk.Dropout(1.0, seed=1)(ones, training=True)), 0 * ones)


@pytest.mark.parametrize("cls", [fk.Dropout, fk.AlphaDropout])
@pytest.mark.parametrize("noise_shape,msg", [
    ("Invalid", "Expected a tuple or list of integers"),
    (5, "Expected an iterable of integers"),
    ((20, 1.5, 10), "Expected all elements to be integers or None"),
    ((20, -1, 10), "Expected all dimensions to be positive integers or None"),
    ((20, 0, 10), "Expected all dimensions to be positive integers or None"),
])
def test_invalid_noise_shape(cls, noise_shape, msg):
    with pytest.raises(ValueError, match="Invalid value received for argument `noise_shape`. "
                       + msg):
        cls(0.5, noise_shape=noise_shape)


@pytest.mark.parametrize("cls", [fk.Dropout, fk.SpatialDropout1D, fk.SpatialDropout2D,
                                 fk.SpatialDropout3D, fk.AlphaDropout])
def test_invalid_bits_and_seed(cls):
    with pytest.raises(ValueError, match="bits"):
        cls(0.5, bits=12)
    with pytest.raises(ValueError, match="seed"):
        cls(0.5, seed="1")


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("dropout", "gaussian", "noise")],
                         ids=["dropout", "gaussian", "noise"])
def test_seeds_are_32_bits_on_every_backend(case):
    """A seed is any int in [0, 2**32) on every backend (torch's int32 state included, and
    in the config as given); outside it, a ValueError naming the seed at construction."""
    _, cls, kwargs, shape, ref = case
    x = make_x(shape, np.float32)
    for seed in (0, 2**31 + 5, 2**32 - 1):
        layer = cls(**kwargs, seed=seed)
        assert layer.get_config()["seed"] == seed
        assert_bits_equal(to_np(layer(x, training=True)), ref(x, amount(kwargs), seed, 0))
    for bad in (-1, 2**32, 2**40):
        with pytest.raises(ValueError, match=r"`seed`.*\[0, 2\*\*32\)"):
            cls(**kwargs, seed=bad)
    with pytest.raises(ValueError, match="seed"):
        cls(**kwargs, seed=1.5)


def test_invalid_data_format():
    with pytest.raises(ValueError, match="data_format"):
        fk.SpatialDropout2D(0.5, data_format="channels_middle")


def test_unsupported_backend_is_named(monkeypatch):
    layer = fk.Dropout(0.5, seed=1)
    monkeypatch.setattr(keras.backend, "backend", lambda: "openvino")
    with pytest.raises(NotImplementedError, match="openvino"):
        layer.call(np.ones((2, 2), np.float32), training=True)


# ---- masking, dynamic shapes --------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_masks_pass_through(case):
    """supports_masking: the input's mask is the output's (compute_mask, and a Masking
    layer's mask reaching the model's output)."""
    _, cls, kwargs, shape, _ = case
    layer = cls(**kwargs, seed=1)
    mask = np.arange(np.prod(shape[:-1])).reshape(shape[:-1]) % 3 != 0
    got = layer.compute_mask(np.ones(shape, np.float32), keras.ops.convert_to_tensor(mask))
    np.testing.assert_array_equal(to_np(got), mask)
    if len(shape) == 3:
        inp = keras.Input((None, shape[-1]))
        out = cls(**kwargs, seed=1)(keras.layers.Masking(0.0)(inp), training=True)
        assert out._keras_mask is not None and tuple(out._keras_mask.shape) == (None, None)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dynamic_shapes(case):
    """keras.Input with None dimensions: symbolic shapes, then calls of two shapes."""
    _, cls, kwargs, shape, ref = case
    inp = keras.Input((None,) * (len(shape) - 2) + shape[-1:])
    layer = cls(**kwargs, seed=17)
    out = layer(inp, training=True)
    assert tuple(out.shape) == (None,) * (len(shape) - 1) + shape[-1:]
    model = keras.Model(inp, out)
    for n, s in enumerate([shape, (shape[0] + 1,) + tuple(d + 1 for d in shape[1:-1])
                           + shape[-1:]]):
        x = make_x(s, np.float32, seed=n)
        assert_bits_equal(to_np(model(x, training=True)), ref(x, amount(kwargs), 17, n))


# ---- serialization and saving -------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_round_trip(case):
    _, cls, kwargs, _, _ = case
    layer = cls(**kwargs, seed=4, name="the_layer")
    config = layer.get_config()
    assert config["seed"] == 4 and config["name"] == "the_layer"
    assert ("bits" in config) == (cls not in (fk.GaussianDropout, fk.GaussianNoise))
    revived = cls.from_config(config)
    assert type(revived) is cls and revived.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"fastdrop>{cls.__name__}"
    again = keras.saving.deserialize_keras_object(serialized)
    assert type(again) is cls and again.get_config() == config


def test_model_save_and_load_keeps_the_layers_and_their_streams(tmp_path):
    """A .keras file: the classes, their configs, and the seed generators' states (a loaded
    model draws the next streams of the saved one)."""
    x = make_x((4, 6, 5), np.float32)
    inp = keras.Input((None, 5))
    h = inp
    for _, cls, kwargs, shape, _ in CASES:
        if len(shape) == 3:
            h = cls(**kwargs, seed=3)(h)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
    model(x, training=True)
    model(x, training=True)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    for a, b in zip(model.layers[1:-1], loaded.layers[1:-1]):
        assert a.get_config() == b.get_config()
        assert fk.seed_stream(b.seed_generator) == fk.seed_stream(a.seed_generator) == (3, 2)
    assert_bits_equal(to_np(loaded(x, training=True)), to_np(model(x, training=True)))
    assert_bits_equal(to_np(loaded(x)), to_np(model(x)))
    # weights saved with Keras's own layers (no seed state) load too
    keras_model = keras.Sequential([keras.Input((5,)), keras.layers.Dropout(0.5, seed=1),
                                    keras.layers.Dense(2)])
    ours = keras.Sequential([keras.Input((5,)), fk.Dropout(0.5, seed=1), keras.layers.Dense(2)])
    keras_model.save_weights(tmp_path / "k.weights.h5")
    ours.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_array_equal(to_np(ours.layers[-1].kernel),
                                  to_np(keras_model.layers[-1].kernel))
    assert fk.seed_stream(ours.layers[0].seed_generator) == (1, 0)
    # the reverse is refused by Keras (the documented cost of saving the seed state)
    ours.save_weights(tmp_path / "o.weights.h5")
    with pytest.raises(ValueError, match="expected 0 variables, but received 1"):
        keras_model.load_weights(tmp_path / "o.weights.h5")


# ---- training: model.fit, jit, gradients --------------------------------------------------


def mean_loss(y_true, y_pred):
    return keras.ops.mean(y_pred)


# the cases by input shape: one model (one compilation on jax) per shape
FIT_GROUPS = {shape: [c for c in CASES if c[3] == shape] for shape in dict.fromkeys(
    c[3] for c in CASES)}


@pytest.mark.skipif(not CAN_TRAIN, reason="Keras's numpy backend cannot train")
@pytest.mark.parametrize("shape", list(FIT_GROUPS), ids=lambda s: f"{len(s)}d")
def test_fit_uses_the_fastdrop_noise(shape):
    """One SGD step of mean(sum_i Dense_i(layer_i(x))), every case of this input shape a
    branch with a zero kernel: each kernel becomes minus the mean of its layer's output,
    which must be fastdrop's for (seed, stream 0); a second epoch takes stream 1."""
    cases = FIT_GROUPS[shape]
    inp = keras.Input((None,) * (len(shape) - 2) + shape[-1:])
    layers = [cls(**kwargs, seed=21) for _, cls, kwargs, _, _ in cases]
    denses = [keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
              for _ in cases]
    out = keras.layers.Add()([d(layer(inp)) for d, layer in zip(denses, layers)])
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=mean_loss)
    x = make_x(shape, np.float32, specials=False)
    y = np.zeros(shape[:-1] + (1,), np.float32)
    model.fit(x, y, batch_size=shape[0], epochs=1, verbose=0, shuffle=False)
    for (case_id, _, kwargs, _, ref), layer, dense in zip(cases, layers, denses):
        h = ref(x, amount(kwargs), 21, 0)
        expected = -h.reshape(-1, shape[-1]).mean(axis=0, dtype=np.float64)
        np.testing.assert_allclose(to_np(dense.kernel)[:, 0], expected, rtol=1e-5,
                                   atol=1e-6, err_msg=case_id)
        assert fk.seed_stream(layer.seed_generator) == (21, 1), case_id
    model.fit(x, y, batch_size=shape[0], epochs=1, verbose=0, shuffle=False)
    assert all(fk.seed_stream(layer.seed_generator) == (21, 2) for layer in layers)
    assert sum(map(len, FIT_GROUPS.values())) == len(CASES)  # every case trains


GRAD_CASES = [c for c in CASES if c[0] in ("dropout", "spatial2d-first", "alpha",
                                           "alpha-noise-shape", "gaussian", "noise")]


def backward_ref(case_id, kwargs, g, seed, stream):
    rate = amount(kwargs)
    if case_id.startswith("alpha"):
        ns = kwargs.get("noise_shape")
        return fastdrop.alpha_dropout_backward(g, rate, seed=seed, stream=stream,
                                               noise_shape=None if ns is None else tuple(ns))
    if case_id == "gaussian":
        return fastdrop.gaussian_dropout_backward(g, rate, seed=seed, stream=stream)
    if case_id == "noise":
        return g
    ns = (None, None, 1, 1) if case_id == "spatial2d-first" else None
    return fastdrop.dropout_backward(g, rate, seed=seed, stream=stream, noise_shape=ns)


@pytest.mark.skipif(not DIFFERENTIABLE, reason="no autodiff on this backend")
@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradient_equals_fastdrop_backward(case):
    case_id, cls, kwargs, shape, ref = case
    layer = cls(**kwargs, seed=8)
    x = make_x(shape, np.float32, specials=False)
    g = make_x(shape, np.float32, seed=1, specials=False)
    if BACKEND == "jax":
        import jax

        state = [v.value for v in layer.non_trainable_variables]

        def f(x, state):
            y, new_state = layer.stateless_call([], state, x, training=True)
            return (y * g).sum(), (y, new_state)

        (_, (y, new_state)), dx = jax.jit(jax.value_and_grad(f, has_aux=True))(x, state)
        assert fk.seed_stream(new_state[0]) == (8, 1)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=True)
        dx = tape.gradient(y, xt, output_gradients=tf.constant(g))
    else:
        import torch

        xt = torch.tensor(x, requires_grad=True)
        y = layer(xt, training=True)
        y.backward(torch.tensor(g))
        dx = xt.grad
    assert_bits_equal(to_np(y), ref(x, amount(kwargs), 8, 0))
    assert_bits_equal(to_np(dx), backward_ref(case_id, kwargs, g, 8, 0))


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit")
@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_jit_equals_fastdrop_and_advances_the_state(case):
    # one case per code path (every case runs jitted in test_fit_uses_the_fastdrop_noise)
    """Keras's JAX training path: stateless_call under jax.jit, the seed state traced."""
    import jax

    _, cls, kwargs, shape, ref = case
    layer = cls(**kwargs, seed=2**31 + 11)
    step = jax.jit(lambda x, state: layer.stateless_call([], state, x, training=True))
    state = [v.value for v in layer.non_trainable_variables]
    x = make_x(shape, np.float32)
    for n in range(3):
        y, state = step(x, state)
        assert_bits_equal(to_np(y), ref(x, amount(kwargs), 2**31 + 11, n))
        assert fk.seed_stream(state[0]) == (2**31 + 11, n + 1)
    assert step._cache_size() == 1  # the stream is traced: one compilation


@pytest.mark.skipif(BACKEND != "torch", reason="torch autograd")
def test_torch_double_backward():
    import torch

    for layer in (fk.AlphaDropout(0.3, seed=2), fk.GaussianDropout(0.3, seed=2)):
        x = torch.tensor(make_x((3, 7), np.float64, specials=False), requires_grad=True)

        def f(x):  # the same stream on every call: a fixed function
            layer.seed_generator.state.assign(np.array([2, 5], np.int32))
            return layer.call(x, training=True)

        assert torch.autograd.gradcheck(f, (x,))
        assert torch.autograd.gradgradcheck(f, (x,))
        assert_bits_equal(f(x).detach().numpy(),
                          (fastdrop.alpha_dropout if isinstance(layer, fk.AlphaDropout)
                           else fastdrop.gaussian_dropout)(x.detach().numpy(), 0.3, seed=2,
                                                           stream=5))


@pytest.mark.skipif(BACKEND != "torch", reason="torch.compile")
@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("dropout", "alpha", "gaussian",
                                                               "noise")],
                         ids=["dropout", "alpha", "gaussian", "noise"])
def test_torch_compile_equals_fastdrop_and_advances_the_state(case):
    # Keras's jit_compile=True on torch is torch.compile: every layer runs (gaussian
    # dropout's host call as a graph break) with fastdrop's bits and the next stream
    import torch

    _, cls, kwargs, shape, ref = case
    layer = cls(**kwargs, seed=77)
    step = torch.compile(lambda t: layer(t, training=True))
    x = make_x(shape, np.float32, specials=False)
    for n in range(3):
        y = step(torch.tensor(x))
        assert_bits_equal(to_np(y), ref(x, amount(kwargs), 77, n))
        assert fk.seed_stream(layer.seed_generator) == (77, n + 1)


@pytest.mark.skipif(BACKEND != "torch", reason="torch's meta-device shape inference")
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_inside_a_layer_without_compute_output_shape(case):
    # Keras's torch backend infers such a layer's output by calling it on meta tensors
    # (the seed state there too): the fastdrop layer answers with the shape, no data read
    _, cls, kwargs, shape, ref = case

    class Block(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.drop = cls(**kwargs, seed=5)

        def call(self, x):
            return self.drop(x, training=True)   # Monte Carlo dropout

    block = Block()
    model = keras.Sequential([keras.Input(shape[1:]), block])
    assert model.output_shape == (None,) + shape[1:]
    x = make_x(shape, np.float32, specials=False)
    assert_bits_equal(to_np(model(x)), ref(x, amount(kwargs), 5, 0))


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8"])
def test_gaussian_noise_of_integers_is_float_as_keras(dtype):
    # Keras adds float noise of the compute dtype to a non-float input (which it does not
    # cast): the result is of that dtype, not rounded back to integers
    x = np.arange(1, 9, dtype=dtype).reshape(2, 4)
    layer = fk.GaussianNoise(1.0, seed=3)
    y = layer(x, training=True)
    theirs = keras.layers.GaussianNoise(1.0, seed=3)(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    assert keras.backend.standardize_dtype(y.dtype) == \
        keras.backend.standardize_dtype(theirs.dtype) or BACKEND == "numpy"
    z = fastdrop.standard_normal(x.shape, seed=3, stream=0, dtype=np.float32)
    assert_bits_equal(to_np(y), x.astype(np.float32) + np.float32(1.0) * z)
    sym = keras.Sequential([keras.Input((4,), dtype=dtype), fk.GaussianNoise(1.0)])
    assert keras.backend.standardize_dtype(sym.outputs[0].dtype) == "float32"


def test_a_subclass_with_weights_saves_and_loads_them(tmp_path):
    # a subclass's own weights go through Keras's saving next to the seed state
    class Scaled(fk.Dropout):
        def build(self, shape):
            self.scale = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x, training=False):
            return super().call(x, training=training) * self.scale

    model = keras.Sequential([keras.Input((3,)), Scaled(0.5, seed=4)])
    model.layers[0].scale.assign(np.array([2.0, 3.0, 4.0], np.float32))
    model.layers[0](np.ones((2, 3), np.float32), training=True)   # stream 0 taken
    path = str(tmp_path / "w.weights.h5")
    model.save_weights(path)
    fresh = keras.Sequential([keras.Input((3,)), Scaled(0.5, seed=4)])
    fresh.load_weights(path)
    np.testing.assert_array_equal(to_np(fresh.layers[0].scale), [2.0, 3.0, 4.0])
    assert fk.seed_stream(fresh.layers[0].seed_generator) == (4, 1)
    model.save(str(tmp_path / "m.keras"))
    back = keras.models.load_model(str(tmp_path / "m.keras"), custom_objects={"Scaled": Scaled})
    np.testing.assert_array_equal(to_np(back.layers[0].scale), [2.0, 3.0, 4.0])


# ---- tensorflow: tf.function, the traced seed state, XLA, higher derivatives --------------


tf_only = pytest.mark.skipif(BACKEND != "tensorflow", reason="tensorflow")


@tf_only
@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_tf_function_reads_the_seed_state_when_it_runs(case):
    """Keras's TF training path: the layer inside a tf.function, its SeedGenerator state a
    tf.Variable. One trace, and each run takes the next stream (the state is read when
    the step runs, not frozen at tracing): steps 0, 1, 2 equal fastdrop's streams 0, 1, 2;
    None dimensions (an input_signature) keep their static shape."""
    import tensorflow as tf

    _, cls, kwargs, shape, ref = case
    layer = cls(**kwargs, seed=2**31 + 11)
    spec = tf.TensorSpec((None,) * (len(shape) - 1) + shape[-1:], tf.float32)
    step = tf.function(lambda x: layer(x, training=True), input_signature=[spec])
    assert step.get_concrete_function().structured_outputs.shape.as_list() == spec.shape
    for n, s in enumerate([shape, (shape[0] + 1,) + shape[1:], shape]):
        x = make_x(s, np.float32, seed=n)
        assert_bits_equal(to_np(step(x)), ref(x, amount(kwargs), 2**31 + 11, n))
        assert fk.seed_stream(layer.seed_generator) == (2**31 + 11, n + 1)
    assert step.experimental_get_tracing_count() == 1


@tf_only
def test_tf_function_steps_differ_and_replay_with_set_random_seed():
    import tensorflow as tf

    x = np.ones((16, 32), np.float32)

    def two_steps():
        layer = fk.Dropout(0.5)  # seed-less: drawn from Python's random
        step = tf.function(lambda x: layer(x, training=True))
        return [to_np(step(x)) for _ in range(2)]

    keras.utils.set_random_seed(3)
    a = two_steps()
    keras.utils.set_random_seed(3)
    b = two_steps()
    assert not np.array_equal(a[0], a[1])
    for u, v in zip(a, b):
        assert_bits_equal(u, v)


@tf_only
def test_tf_xla_is_refused_by_name_and_keras_falls_back():
    """XLA cannot compile the host call: a tf.function(jit_compile=True) raises a
    NotImplementedError naming the layer and the remedy at tracing; Keras's
    compile(jit_compile=True) falls back to False (supports_jit=False) and trains."""
    import tensorflow as tf

    layer = fk.AlphaDropout(0.3, seed=1)
    with pytest.raises(NotImplementedError, match="AlphaDropout.*XLA.*jit_compile=False"):
        tf.function(lambda x: layer(x, training=True), jit_compile=True)(
            np.ones((2, 3), np.float32))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              fk.Dropout(0.5, seed=1), keras.layers.Dense(1)])
    with pytest.warns(UserWarning, match="jit_compile"):
        model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    assert model.jit_compile is False
    model.fit(np.ones((8, 4), np.float32), np.ones((8, 1), np.float32), batch_size=4,
              epochs=1, verbose=0)
    assert fk.seed_stream(model.layers[1].seed_generator) == (1, 2)  # two steps


@tf_only
def test_tf_export_and_tf_data(tmp_path):
    """model.export (a SavedModel of the inference graph: no host call in it) serves the
    model's predictions; the layer maps a tf.data pipeline (a graph of its own)."""
    import tensorflow as tf

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4),
                              fk.Dropout(0.5, seed=1), fk.GaussianNoise(0.2, seed=2),
                              keras.layers.Dense(1)])
    x = make_x((3, 5), np.float32, specials=False)
    model.export(str(tmp_path / "exported"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "exported"))  # keep it: it owns the weights
    served = loaded.serve(x)
    np.testing.assert_allclose(to_np(served), to_np(model(x)), rtol=1e-6)
    layer = fk.Dropout(0.5, seed=3)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(3).map(lambda t: layer(t, training=True))
    assert_bits_equal(next(iter(ds)).numpy(), fastdrop.dropout(x, 0.5, seed=3, stream=0))


@tf_only
@pytest.mark.parametrize("cls,backward", [
    (fk.Dropout, fastdrop.dropout_backward), (fk.AlphaDropout, fastdrop.alpha_dropout_backward),
    (fk.GaussianDropout, fastdrop.gaussian_dropout_backward)])
def test_tf_second_derivative(cls, backward):
    """The gradient's own gradient (with respect to the incoming gradient) is the backward
    kernel again, with the same stream: nested GradientTapes, as tf users take them."""
    import tensorflow as tf

    layer = cls(0.3, seed=2)
    x = tf.constant(make_x((3, 7), np.float64, specials=False))
    dy = tf.constant(make_x((3, 7), np.float64, seed=1, specials=False))
    w = make_x((3, 7), np.float64, seed=2, specials=False)
    with tf.GradientTape() as outer:
        outer.watch(dy)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = layer(x, training=True)
        dx = inner.gradient(y, x, output_gradients=dy)
    ddy = outer.gradient(dx, dy, output_gradients=tf.constant(w))
    assert_bits_equal(to_np(dx), backward(to_np(dy), 0.3, seed=2, stream=0))
    assert_bits_equal(to_np(ddy), backward(w, 0.3, seed=2, stream=0))


# ---- the docs -----------------------------------------------------------------------------


def test_docstring_examples_run():
    """fastdrop.keras's examples, on this backend (tests/api/test_docs.py runs the other
    modules' examples in-process, where Keras's backend cannot be chosen)."""
    import doctest

    tests = doctest.DocTestFinder(exclude_empty=True).find(fk, "fastdrop.keras")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    for t in sorted(tests, key=lambda t: (t.lineno or 0, t.name)):
        runner.run(t, out=out.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(out)
    assert result.attempted >= 30


def test_public_docstrings_have_numpydoc_sections():
    import inspect
    import re

    problems = []
    for name in fk.__all__:
        obj = getattr(fk, name)
        doc = inspect.getdoc(obj) or ""
        sections = set(re.findall(r"^\s*([A-Z][A-Za-z ]+)\n\s*-{3,}\s*$", doc, re.M))
        need = {"Parameters", "Returns", "Raises", "Examples"}
        if need - sections:
            problems.append(f"{name}: no {', '.join(sorted(need - sections))}")
    assert problems == []


def test_docs_adapters_keras_block_runs(tmp_path, monkeypatch):
    """docs/adapters.md's Keras example, on this backend (tests/api/test_docs.py skips it:
    it would fix the suite process's Keras backend)."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "adapters.md").read_text()
    section = text.split("\n## Keras\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "fk.Dropout" in block
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/adapters.md (Keras)", "exec"), {"__name__": "__docs__"})
