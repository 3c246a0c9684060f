"""kubetune: Kubernetes-native hyperparameter tuning.

``kubetune.core`` is the pure engine (spec, search space, samplers, early stopping, the plan);
``kubetune.kube`` is the operator's I/O edge; ``kubetune.sdk`` is what training code calls to
report metrics. ``python -m kubetune`` runs the operator.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
