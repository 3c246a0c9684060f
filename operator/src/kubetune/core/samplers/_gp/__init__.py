"""The math behind the GP sampler: kernels, fitting, warping, acquisition and its optimiser.

Private: only the GP samplers (``kubetune.core.samplers.gp`` and ``mogp``) use it.
Every function here is pure.
"""

__all__: list[str] = []
