"""fastdrop's core: argument checks, contract constants, requests and routing.

The layer between the public API (``fastdrop.functional``, ``fastdrop.rng``) and the
backends (``fastdrop._cpu``, ``fastdrop._cuda``).  A public function's arguments are
parsed once here (`parse`) into an immutable, validated request (`requests`); the router
(`route`) picks the backend from the arrays' kind and hands it the request, which the
backend runs without checking anything again.

Modules: `args` (checks of scalar arguments), `contract` (docs/contract.md's numbers:
thresholds, scales, alpha and gaussian constants, draw maps), `ops` (the op and keep-source
numbers both backends use), `requests`, `parse`, `interop` (torch/JAX/DLPack CPU arrays
as NumPy views and back), `route`.
"""
