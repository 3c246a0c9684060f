"""Image augmentation on a batch, on whatever device the batch lives on.

One affine warp per image (rotation, horizontal flip, shift) through ``affine_grid`` and
``grid_sample``, so a batch is augmented in a single call on CPU or GPU. Random draws come
from torch's global generator, which the trainer seeds, so a CPU run is reproducible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name

__all__ = ["augment", "is_identity"]


def is_identity(rotation: float, hflip: bool, shift: float) -> bool:
    """True when the settings leave every image unchanged. Pure."""
    return rotation == 0.0 and not hflip and shift == 0.0


def augment(images: torch.Tensor, *, rotation: float, hflip: bool,
            shift: float) -> torch.Tensor:
    """Randomly rotate (up to ``rotation`` degrees), flip and shift each (N, C, H, W) image.

    Pixels shifted in from outside the image are 0, the raw background.
    """
    if is_identity(rotation, hflip, shift):
        return images
    n = images.shape[0]
    device = images.device
    angle = (torch.rand(n, device=device) * 2 - 1) * math.radians(rotation)
    flip = torch.ones(n, device=device)
    if hflip:
        flip = torch.where(torch.rand(n, device=device) < 0.5, -flip, flip)
    # affine_grid works in [-1, 1] coordinates, so a shift of a fraction f of the size is 2f.
    tx = (torch.rand(n, device=device) * 2 - 1) * 2 * shift
    ty = (torch.rand(n, device=device) * 2 - 1) * 2 * shift
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], dim=1), torch.stack([sin * flip, cos, ty], dim=1)],
        dim=1,
    )
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)
