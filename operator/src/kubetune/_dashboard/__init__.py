"""``kubetune dashboard``: a live, read-only web view of the studies, fed by one set of
watches (``watches`` -> ``store``) and served by ``server``; ``charts`` draws the figures that
``kubetune plot`` writes too, ``pages`` shapes what each page shows."""

__all__: list[str] = []
