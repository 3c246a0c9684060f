"""The dashboard's web server (aiohttp): pages, JSON, a server-sent-event stream and pod logs,
all from the ``Store`` that one set of watches keeps. It never writes to the cluster.

Routes (relative, so the server can sit behind a path prefix):
  /                                  the studies
  /studies/{ns}/{name}               one study
  /logs/{ns}/{pod}                   a trial pod's output, as text
  /api/studies                       the studies list as JSON
  /api/studies/{ns}/{name}           a study page's data (charts, conditions, events)
  /api/studies/{ns}/{name}/trials    the trial table, ?sort=KEY&desc=1, a page at a time
  /api/studies/{ns}/{name}/importance  parameter importances (computed off the event loop)
  /api/stream                        server-sent events: which studies changed
  /static/...                        the page's script and style, and plotly.js from the
                                     plotly package (no CDN)
  /healthz
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import logging
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from kubetune._cli import importance as importances
from kubetune._cli import views
from kubetune._dashboard import charts, incremental, pages, plotlyjs
from kubetune._dashboard.store import Store, StudyKey
from kubetune.core import spec as specs
from kubetune.kube import errors

__all__ = ["COALESCE_SECONDS", "Dashboard", "serve"]

log = logging.getLogger("kubetune.dashboard")

COALESCE_SECONDS = 0.5  # changes within this are sent to viewers as one message
_KEEPALIVE_SECONDS = 15.0
_STATIC = resources.files("kubetune._dashboard") / "static"


@functools.cache
def _gzipped(name: str) -> bytes:
    data = plotlyjs.bundle() if name == "plotly.min.js" else (_STATIC / name).read_bytes()
    return gzip.compress(data, 6)


_TYPES = {".js": "application/javascript", ".css": "text/css", ".html": "text/html"}


def _log_failure(future: asyncio.Future[None]) -> None:
    """A background read that failed: logged; the next request reads again and says why."""
    if not future.cancelled() and future.exception() is not None:
        log.error("reading a study in the background failed", exc_info=future.exception())


def _json(data: Any) -> web.Response:
    return web.Response(body=json.dumps(data, separators=(",", ":"), allow_nan=False),
                        content_type="application/json")


class Dashboard:
    """The web app over ``store``; ``read_log(namespace, pod)`` reads a pod's output."""

    def __init__(self, store: Store, read_log: Callable[[str, str], str], *,
                 title: str = "kubetune"):
        self.store = store
        self.read_log = read_log
        self.title = title
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._pending: set[StudyKey] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pages: dict[StudyKey, tuple[int, Any, Any]] = {}  # version, view, pods
        self._importance: dict[StudyKey, tuple[int, Any]] = {}
        self._readers: dict[str, incremental.StudyReader] = {}  # by study UID
        self._reading = threading.Lock()

    # --- change fan-out -----------------------------------------------------------------------

    def changed(self, keys: set[StudyKey]) -> None:
        """Called by the store from a watch thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._mark, keys)

    def _mark(self, keys: set[StudyKey]) -> None:
        self._pending |= keys
        if self._flush is None:
            assert self._loop is not None
            self._flush = self._loop.call_later(COALESCE_SECONDS, self._send)

    def _send(self) -> None:
        self._flush = None
        keys, self._pending = self._pending, set()
        message = {"version": self.store.version,
                   "studies": sorted(f"{ns}/{name}" for ns, name in keys)}
        for queue in self._subscribers:
            if queue.qsize() < 100:  # a stalled viewer misses updates, it does not grow memory
                queue.put_nowait(message)
        # Read the changed studies' trials now, off the loop, so the viewers who ask next find
        # them read (only what changed is read again: see ``incremental``).
        assert self._loop is not None
        self._loop.run_in_executor(None, self._warm, keys).add_done_callback(_log_failure)

    def _warm(self, keys: set[StudyKey]) -> None:
        for key in keys:
            with contextlib.suppress(web.HTTPNotFound):  # deleted meanwhile
                self._view(key)

    # --- data ---------------------------------------------------------------------------------

    def _view(self, key: StudyKey) -> tuple[views.StudyView, dict[int, str]]:
        snap = self.store.snapshot(key)
        if snap is None:
            raise web.HTTPNotFound(text=f"no TuningStudy {key[1]!r} in namespace {key[0]!r} "
                                        "(or not visible to the dashboard's credentials)")
        with self._reading:
            cached = self._pages.get(key)
            if cached is not None and cached[0] == snap.version:
                return cached[1], cached[2]
            if len(self._readers) > 2 * len(self.store.studies()) + 8:  # deleted studies
                live = {s["metadata"]["uid"] for s in self.store.studies()}
                self._readers = {u: r for u, r in self._readers.items() if u in live}
                self._pages.clear()
            reader = self._readers.setdefault(snap.study["metadata"]["uid"],
                                              incremental.StudyReader())
            view = reader.view(snap.study, snap.jobs, snap.pods, snap.events)
            self._pages[key] = (snap.version, view, reader.pods)
            return view, reader.pods

    async def _view_async(self, key: StudyKey) -> tuple[views.StudyView, dict[int, str]]:
        return await asyncio.get_running_loop().run_in_executor(None, self._view, key)

    @staticmethod
    def _key(request: web.Request) -> StudyKey:
        return request.match_info["ns"], request.match_info["name"]

    # --- handlers -----------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        return self._page("index.html", "./")

    async def study(self, request: web.Request) -> web.Response:
        return self._page("study.html", "../../")

    def _page(self, name: str, root: str) -> web.Response:
        text = (_STATIC / name).read_text(encoding="utf-8")
        return web.Response(text=text.replace("{{root}}", root), content_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        allowed = {"plotly.min.js", "app.js", "app.css"}
        if name not in allowed:
            raise web.HTTPNotFound()
        headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding",
                   "Cache-Control": "public, max-age=86400" if name == "plotly.min.js"
                   else "no-cache"}
        return web.Response(body=_gzipped(name), headers=headers,
                            content_type=_TYPES[Path(name).suffix])

    async def studies(self, request: web.Request) -> web.Response:
        now = time.time()
        return _json({"studies": [pages.study_summary(s, now) for s in self.store.studies()],
                      "problems": sorted(self.store.problems.values())})

    async def study_data(self, request: web.Request) -> web.Response:
        key = self._key(request)
        view, _ = await self._view_async(key)
        snap = self.store.snapshot(key)
        now = time.time()
        summary = pages.study_summary(snap.study if snap else {}, now)
        data = await asyncio.get_running_loop().run_in_executor(
            None, pages.study_page, view, summary, now)
        data["problems"] = sorted(self.store.problems.values())
        return _json(data)

    async def trials(self, request: web.Request) -> web.Response:
        view, pods = await self._view_async(self._key(request))
        sort = request.query.get("sort", "rank")
        desc = request.query.get("desc", "0") in ("1", "true")
        try:
            limit = int(request.query.get("limit", pages.MAX_ROWS))
        except ValueError:
            raise web.HTTPBadRequest(text="limit: give a whole number of rows") from None
        return _json(pages.trial_rows(view, pods, time.time(), sort=sort, descending=desc,
                                      limit=limit))

    async def importance(self, request: web.Request) -> web.Response:
        key = self._key(request)
        view, _ = await self._view_async(key)
        if view.spec is None:
            return _json({"figure": None, "empty": charts.empty_message(view, "importance")})
        succeeded = sum(1 for t in view.trials if t.has_value and t.state.value == "Succeeded")
        cached = self._importance.get(key)
        if cached is None or cached[0] != succeeded:
            space = specs.space_of(view.spec)
            result = await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(importances.importances, space, view.trials,
                                        minimize=view.minimize))
            cached = (succeeded, result)
            self._importance[key] = cached
        result = cached[1]
        note = None if result is None else (
            f"From a Gaussian-process surrogate of {result.trials} succeeded trials; main "
            f"effects explain {result.main_effects:.0%} of its variance, interactions the rest.")
        return _json({"figure": charts.importance(result), "note": note,
                      "empty": None if result else charts.empty_message(view, "importance")})

    async def logs(self, request: web.Request) -> web.Response:
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        try:
            text = await asyncio.get_running_loop().run_in_executor(None, self.read_log, ns, pod)
        except errors.NotFound:
            raise web.HTTPNotFound(text=f"pod {pod} in {ns} is gone: its output went with it; "
                                        "the trial's result stays on its Job") from None
        except errors.ApiError as e:
            raise web.HTTPBadGateway(text=f"reading the log of pod {pod} in {ns}: {e}") from None
        return web.Response(text=text or "(no output yet)\n",
                            headers={"Cache-Control": "no-cache"})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            await resp.write(b"retry: 2000\n\n")
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), _KEEPALIVE_SECONDS)
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")
                    continue
                await resp.write(f"event: change\ndata: {json.dumps(message)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the viewer left
        finally:
            self._subscribers.discard(queue)
        return resp

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/studies/{ns}/{name}", self.study)
        app.router.add_get("/logs/{ns}/{pod}", self.logs)
        app.router.add_get("/api/studies", self.studies)
        app.router.add_get("/api/studies/{ns}/{name}", self.study_data)
        app.router.add_get("/api/studies/{ns}/{name}/trials", self.trials)
        app.router.add_get("/api/studies/{ns}/{name}/importance", self.importance)
        app.router.add_get("/api/stream", self.stream)
        app.router.add_get("/static/{file}", self.static)
        app.router.add_get("/healthz", self.healthz)

        async def started(app: web.Application) -> None:
            self._loop = asyncio.get_running_loop()

        async def closing(app: web.Application) -> None:
            if self._flush is not None:
                self._flush.cancel()

        app.on_startup.append(started)
        app.on_shutdown.append(closing)
        return app


async def serve(dashboard: Dashboard, host: str, port: int,
                ready: Callable[[str], None] | None = None) -> None:
    """Serve until cancelled; ``ready(url)`` is called once the socket listens."""
    runner = web.AppRunner(dashboard.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    if ready is not None:
        ready(f"http://{host}:{bound}/")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
