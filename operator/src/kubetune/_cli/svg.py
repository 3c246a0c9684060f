"""A few pieces of SVG for the HTML report: scales with readable ticks, axes, and a colour ramp.
Pure: each function returns text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Scale", "axes", "color", "esc", "fmt", "nice_ticks", "svg"]

# Viridis at five stops: perceptually even, readable for the colour-blind and in greyscale.
_RAMP = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def fmt(v: float) -> str:
    """A tick label: short, without trailing zeros."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.4g}"


def color(frac: float) -> str:
    """The ramp at ``frac`` in [0, 1] (0 dark purple, 1 yellow) as ``#rrggbb``."""
    f = min(1.0, max(0.0, frac)) * (len(_RAMP) - 1)
    i = min(int(f), len(_RAMP) - 2)
    t = f - i
    rgb = (round(a + (b - a) * t) for a, b in zip(_RAMP[i], _RAMP[i + 1], strict=True))
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round values (1, 2 or 5 times a power of ten apart) within [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9)
    out = []
    k = first
    while k * step <= hi + step * 1e-9:
        out.append(round(k * step, 12))
        k += 1
    return out


@dataclass(frozen=True)
class Scale:
    """Maps data values in [lo, hi] to pixels in [a, b], linearly or on a log axis."""

    lo: float
    hi: float
    a: float
    b: float
    log: bool = False

    @classmethod
    def fit(cls, values: Iterable[float], a: float, b: float, *, allow_log: bool = True,
            pad: float = 0.04) -> Scale:
        """A scale for ``values``: log when all are positive and span over two decades."""
        vs = [v for v in values if math.isfinite(v)]
        if not vs:
            return cls(0.0, 1.0, a, b)
        lo, hi = min(vs), max(vs)
        if allow_log and lo > 0 and hi / lo >= 100:
            return cls(math.log10(lo), math.log10(hi), a, b, log=True)._padded(pad)
        if hi == lo:
            lo, hi = lo - (abs(lo) or 1.0) * 0.5, hi + (abs(hi) or 1.0) * 0.5
        return cls(lo, hi, a, b)._padded(pad)

    def _padded(self, pad: float) -> Scale:
        span = self.hi - self.lo
        return Scale(self.lo - span * pad, self.hi + span * pad, self.a, self.b, self.log)

    def __call__(self, v: float) -> float:
        x = math.log10(v) if self.log else v
        if self.log and v <= 0:
            x = self.lo
        return self.a + (x - self.lo) / ((self.hi - self.lo) or 1.0) * (self.b - self.a)

    def ticks(self, n: int = 5) -> list[float]:
        if not self.log:
            return nice_ticks(self.lo, self.hi, n)
        decades = range(math.ceil(self.lo - 1e-9), math.floor(self.hi + 1e-9) + 1)
        out = [10.0 ** d for d in decades]
        if len(out) < 2:  # less than a decade shown: plain round values inside it
            return [v for v in nice_ticks(10 ** self.lo, 10 ** self.hi, n) if v > 0]
        return out


def axes(x: Scale, y: Scale, *, xlabel: str, ylabel: str, x_ticks: Sequence[float] | None = None,
         integer_x: bool = False) -> str:
    """Both axes with ticks, grid lines and labels, for a plot area bounded by the scales."""
    x0, x1, y0, y1 = x.a, x.b, y.a, y.b
    parts = [f'<g class="axes"><line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y0:.1f}"/>',
             f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x0:.1f}" y2="{y1:.1f}"/>']
    for v in x_ticks if x_ticks is not None else x.ticks():
        if integer_x and v != int(v):
            continue
        px = x(v)
        parts.append(f'<line class="grid" x1="{px:.1f}" y1="{y0:.1f}" x2="{px:.1f}" '
                     f'y2="{y1:.1f}"/><text x="{px:.1f}" y="{y0 + 14:.1f}" '
                     f'text-anchor="middle">{esc(fmt(v))}</text>')
    for v in y.ticks():
        py = y(v)
        parts.append(f'<line class="grid" x1="{x0:.1f}" y1="{py:.1f}" x2="{x1:.1f}" '
                     f'y2="{py:.1f}"/><text x="{x0 - 5:.1f}" y="{py + 4:.1f}" '
                     f'text-anchor="end">{esc(fmt(v))}</text>')
    parts.append(f'<text class="label" x="{(x0 + x1) / 2:.1f}" y="{y0 + 32:.1f}" '
                 f'text-anchor="middle">{esc(xlabel)}</text>')
    parts.append(f'<text class="label" transform="translate({x0 - 46:.1f},{(y0 + y1) / 2:.1f}) '
                 f'rotate(-90)" text-anchor="middle">{esc(ylabel)}</text></g>')
    return "".join(parts)


def svg(width: int, height: int, body: Iterable[str], *, cls: str, points: int | None = None
        ) -> str:
    """An inline ``<svg>``; ``points`` (the data points drawn) is kept as ``data-points``."""
    extra = f' data-points="{points}"' if points is not None else ""
    return (f'<svg class="{esc(cls)}" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" xmlns="http://www.w3.org/2000/svg"{extra}>'
            + "".join(body) + "</svg>")
