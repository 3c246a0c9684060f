"""The parts of the ``kubetune`` command (``kubetune.cli``): reading studies from a cluster or a
local journal, rendering them as text, HTML and PNG, and running a study on this machine.

Private: ``kubetune.cli`` is the public entry point. The pure modules (``views``, ``render``,
``svg``, ``report``, ``importance``) take plain values and return values; ``cluster``,
``journal``, ``local`` and ``watch`` do the I/O.
"""

__all__: list[str] = []
