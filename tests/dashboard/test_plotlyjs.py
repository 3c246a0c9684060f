"""plotly.js trimmed to the trace types kubetune draws: which register entries stay, that the
rest of the text is the package's own, and that a bundle of another shape is served whole."""

from __future__ import annotations

import logging

import pytest
from kubetune._dashboard import plotlyjs

# esbuild's shape, small: lazily run modules, lib entries that run a trace's index (directly,
# or through a module that adds to it), and one register call.
FAKE = (
    'var W=(e,t)=>()=>(t||e((t={exports:{}}).exports,t),t.exports);'
    'var A=W((x,y)=>{"use strict";y.exports={moduleType:"trace",name:"bar",plot:1}});'
    'var a=W((x,y)=>{"use strict";y.exports=A()});'
    'var P=W((x,y)=>{y.exports={name:"pie",moduleType:"trace"}}),'
    'Q=W((x,y)=>{"use strict";var z=P();z.plot=2;y.exports=z});'
    'var b=W((x,y)=>{"use strict";y.exports=Q()});'
    'var c=W((x,y)=>{y.exports={moduleType:"component",name:"calendars"}});'
    'var R=W((x,y)=>{var r={register:function(){}};r.register([a(),b(),c()]);y.exports=r});'
)


def test_entries_are_matched_to_the_traces_they_register():
    assert plotlyjs.registered(FAKE) == [
        ("a", frozenset({"bar"})), ("b", frozenset({"pie"})), ("c", frozenset())]


def test_trim_keeps_the_wanted_traces_and_every_component():
    trimmed = plotlyjs.trim(FAKE, {"scatter", "bar"})
    assert trimmed == FAKE.replace("[a(),b(),c()]", "[a(),c()]")


@pytest.mark.parametrize(("text", "keep"), [
    (FAKE, {"bar", "parcoords"}),  # a wanted trace the bundle does not have
    (FAKE.replace("r.register(", "r.use("), {"bar"}),  # no register call
    (FAKE + FAKE[FAKE.index("r.register("):], {"bar"}),  # two
    (FAKE.replace("var a=W(", "var a=V("), {"bar"}),  # an entry that is no module
])
def test_a_bundle_of_another_shape_is_not_trimmed(text: str, keep: set[str]):
    assert plotlyjs.trim(text, keep) is None


def test_the_package_bundle_is_trimmed_to_our_traces_and_otherwise_unchanged():
    full = plotlyjs.package_bundle()
    entries = plotlyjs.registered(full)
    assert entries is not None and len(entries) > 20
    for trace in plotlyjs.TRACES - {"scatter"}:
        assert sum(trace in names for _, names in entries) == 1
    trimmed = plotlyjs.bundle().decode("utf-8")
    kept = plotlyjs.registered(trimmed)
    assert kept is not None
    assert set().union(*(names for _, names in kept)) == plotlyjs.TRACES - {"scatter"}
    # Only the register call differs.
    cut = full.index(".register([")
    assert trimmed[:cut] == full[:cut]
    tail = full[full.index("])", cut):]
    assert trimmed.endswith(tail)


def test_an_untrimmable_bundle_is_served_whole_and_logged(monkeypatch, caplog):
    monkeypatch.setattr(plotlyjs, "package_bundle", lambda: "/* plotly.js v9.9.9 */ var x;")
    plotlyjs.bundle.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="kubetune.dashboard"):
            assert plotlyjs.bundle() == b"/* plotly.js v9.9.9 */ var x;"
        assert "plotly.js 9.9.9" in caplog.text and "whole bundle" in caplog.text
    finally:
        plotlyjs.bundle.cache_clear()
