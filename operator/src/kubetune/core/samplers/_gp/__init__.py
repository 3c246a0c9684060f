"""The math behind the GP sampler: kernels, fitting, warping, acquisition and its optimiser.

Private: only ``kubetune.core.samplers.gp`` uses it. Every function here is pure.
"""

__all__: list[str] = []
