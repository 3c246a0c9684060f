"""``kubetune dashboard``: the watches, the store and the web server, wired together.

Locally it reads with the user's kubeconfig and listens on 127.0.0.1 (a free port unless one
is given), then opens the browser; in a cluster (the chart's ``dashboard.enabled``) the same
server runs with its service account, on the address the chart gives it.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import webbrowser
from collections.abc import Sequence

from kubetune._cli.errors import CommandError
from kubetune._dashboard import server, watches
from kubetune._dashboard.store import Store

__all__ = ["run_dashboard"]


def run_dashboard(*, host: str, port: int, namespaces: Sequence[str] = (),
                  open_browser: bool = True) -> int:
    """Serve until interrupted; returns the exit status."""
    from kubernetes.config import ConfigException

    try:
        api = watches.api_client()
    except ConfigException as e:
        raise CommandError(f"no cluster to read: {e}; set KUBECONFIG or ~/.kube/config "
                           "(or run inside a cluster with a service account)") from None
    store = Store()
    dashboard = server.Dashboard(store, functools.partial(watches.pod_log, api))
    store.on_change = dashboard.changed
    feed = watches.Watches(api, store, namespaces or None)

    def ready(url: str) -> None:
        scope = ", ".join(namespaces) if namespaces else "every namespace"
        print(f"kubetune dashboard: {url} (studies of {scope}; Ctrl-C stops it)", flush=True)
        feed.start()
        if open_browser:
            webbrowser.open(url)

    try:
        asyncio.run(server.serve(dashboard, host, port, ready))
    except KeyboardInterrupt:
        return 0
    finally:
        feed.stop()
        print("kubetune dashboard: stopped", file=sys.stderr)
    return 0
