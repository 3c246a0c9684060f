"""plotly.js for kubetune's charts: the bundle the ``plotly`` package ships, with only the trace
types our charts draw registered.

The full bundle registers about 47 trace types when it is evaluated (maps, 3-D, finance...),
and that evaluation is most of a first page load: about 0.9 s of a browser's main thread,
against about 0.35 s with only ``TRACES`` (benchmarks/bench_dashboard.py). plotly.js is built by
esbuild: every source file becomes a lazily run CommonJS wrapper, and the bundle's index ends in
one ``register([...])`` call that runs the trace modules in it. Leaving a trace module out of
that call leaves its code in the file, unrun. The text is otherwise the package's own.

Each entry of the call is matched to the trace type it registers by reading the module it runs
(and the modules that one runs, a few levels deep) for plotly.js's trace declaration
(``moduleType: "trace", name: ...``). Entries that declare no trace (components, such as world
calendars) are kept. When the bundle does not have that shape (another bundler, a changed
wrapper) the whole bundle is served, and that is logged once.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Collection
from pathlib import Path

__all__ = ["TRACES", "bundle", "package_bundle", "registered", "trim"]

log = logging.getLogger("kubetune.dashboard")

# The trace types kubetune's figures use (``charts``, ``_cli/pareto_plot``); scatter is part
# of plotly.js's core and always there.
TRACES = frozenset({"scatter", "bar", "parcoords"})

_REGISTER = re.compile(r"\.register\(\[((?:[\w$]+\(\),)*[\w$]+\(\))\]\)")
_TRACE = re.compile(r'moduleType:"trace",name:"(\w+)"|name:"(\w+)",moduleType:"trace"')
_CALL = re.compile(r"([\w$]+)\(\)")
_DEPTH = 3  # a trace's lib entry runs its index, which may run the module that declares it


def package_bundle() -> str:
    """plotly.min.js as the ``plotly`` package ships it."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path.read_text(encoding="utf-8")


def registered(text: str) -> list[tuple[str, frozenset[str]]] | None:
    """The entries of the bundle's register call, each with the trace types its module
    declares (empty for a component); None when the bundle does not have esbuild's shape."""
    calls = list(_REGISTER.finditer(text))
    if len(calls) != 1:
        return None
    entries = [e[:-2] for e in calls[0].group(1).split(",")]
    first = re.search(r"(?:var |,)" + re.escape(entries[0]) + r"=([\w$]+)\(\(", text)
    if first is None:
        return None
    starts = [(m.start(), m.group(1)) for m in re.finditer(
        r"(?:var |,)([\w$]+)=" + re.escape(first.group(1)) + r"\(\(", text)]
    where = {name: i for i, (_, name) in enumerate(starts)}

    def body(name: str) -> str:
        i = where[name]
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        return text[starts[i][0]:end]

    def traces(name: str, depth: int) -> frozenset[str]:
        own = body(name)
        found = {a or b for a, b in _TRACE.findall(own)}
        if found or depth == _DEPTH:
            return frozenset(found)
        return frozenset().union(*(traces(c, depth + 1) for c in _CALL.findall(own)
                                   if c in where and c != name))

    if any(e not in where for e in entries):
        return None
    return [(e, traces(e, 0)) for e in entries]


def trim(text: str, keep: Collection[str]) -> str | None:
    """The bundle with only the trace types in ``keep`` registered (and every component);
    None when its shape is not known or a kept type (other than scatter) is not found in it
    exactly once."""
    entries = registered(text)
    if entries is None:
        return None
    wanted = set(keep) - {"scatter"}
    for trace in wanted:
        if sum(trace in names for _, names in entries) != 1:
            return None
    kept = [e for e, names in entries if not names or names & wanted]
    call = _REGISTER.search(text)
    assert call is not None  # registered() found exactly one
    return text[:call.start(1)] + ",".join(f"{e}()" for e in kept) + text[call.end(1):]


@functools.cache
def bundle() -> bytes:
    """What the dashboard serves and ``kubetune plot`` inlines: the package's plotly.js with
    only ``TRACES`` registered, or the whole of it (logged) when it cannot be trimmed."""
    text = package_bundle()
    trimmed = trim(text, TRACES)
    if trimmed is None:
        version = re.search(r"plotly\.js v([\w.+-]+)", text[:500])
        log.warning("plotly.js %s from the plotly package does not have the shape kubetune "
                    "trims (one esbuild register call); serving the whole bundle, whose "
                    "evaluation makes a page's first load about 0.6 s slower",
                    version.group(1) if version else "(no version)")
        return text.encode("utf-8")
    return trimmed.encode("utf-8")
