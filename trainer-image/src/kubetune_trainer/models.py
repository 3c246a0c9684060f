"""The two model families the trainer tunes: an MLP and a small CNN.

``build_model`` is a pure constructor: it builds the network from the hyperparameters and the
data's shape; the weights come from torch's global generator, which the trainer seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

__all__ = ["build_model", "count_parameters"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
_POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def _mlp(in_features: int, n_classes: int, depth: int, width: int, activation: str,
         dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    size = in_features
    for i in range(depth):
        if i > 0 and dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(size, width), _ACTIVATIONS[activation]()]
        size = width
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(size, n_classes))
    return nn.Sequential(*layers)


def _cnn(shape: tuple[int, int, int], n_classes: int, depth: int, width: int,
         activation: str, dropout: float, pooling: str) -> nn.Sequential:
    channels, height, wide = shape
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [
            nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            _ACTIVATIONS[activation](),
        ]
        channels = width
        # Pool while the feature map is at least 2x2, so deep nets on small images still work.
        if height >= 2 and wide >= 2:
            layers.append(_POOLS[pooling](kernel_size=2))
            height, wide = height // 2, wide // 2
    layers.append(nn.Flatten())
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(channels * height * wide, n_classes))
    return nn.Sequential(*layers)


def build_model(params: Mapping[str, Any], sample_shape: tuple[int, ...],
                n_classes: int) -> nn.Module:
    """The network for ``params`` on samples of ``sample_shape``: (D,) or (C, H, W)."""
    depth, width = int(params["depth"]), int(params["width"])
    activation, dropout = str(params["activation"]), float(params["dropout"])
    if params["model"] == "cnn":
        if len(sample_shape) != 3:
            raise ValueError(
                f"model=cnn needs image data (N, C, H, W), but the samples have shape "
                f"{sample_shape}; use model=mlp, or give x as (N, H, W) or (N, C, H, W)"
            )
        c, h, w = sample_shape
        return _cnn((c, h, w), n_classes, depth, width, activation, dropout,
                    str(params["pooling"]))
    in_features = 1
    for size in sample_shape:
        in_features *= int(size)
    return _mlp(in_features, n_classes, depth, width, activation, dropout)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable weights. Pure."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
