"""Flax adapter: fastdrop dropout as drop-ins for Flax's own ``Dropout`` modules.

Install with ``pip install fastdrop[flax]``.

- ``fastdrop.flax.linen.Dropout``: for ``flax.linen`` (``nn.Dropout``); seeds from
  ``self.make_rng(rng_collection)``.
- ``fastdrop.flax.nnx.Dropout``: for ``flax.nnx`` (``nnx.Dropout``); seeds from the
  module's ``nnx.Rngs`` / ``RngStream`` (``rngs.dropout()``), or a key passed at call time.

A Flax model swaps its dropout with one import: ``import fastdrop.flax.linen as fnn`` and
``fnn.Dropout(...)`` where it had ``nn.Dropout(...)`` (the same for nnx). Each is a
subclass of Flax's own class, with the same arguments (rate, broadcast_dims,
deterministic, rng_collection, rngs) and the same seeding: the masks come from
``fastdrop.jax.dropout`` with the Flax key as the seed (``seed=key``: the key's 64 bits
``key_data(key)[0] << 32 | key_data(key)[1]``, stream 0), so they equal
``fastdrop.dropout(x, rate, seed=that_int, noise_shape=...)`` bit for bit.
"""
from . import linen, nnx

__all__ = ["linen", "nnx"]
