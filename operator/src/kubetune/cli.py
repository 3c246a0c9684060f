"""The ``kubetune`` command (also a kubectl plugin: ``kubectl kubetune ...``).

    kubetune get [STUDY] [-n NS | -A] [-o table|json] [--limit N]
    kubetune watch STUDY [-n NS] [--interval S] [--timeout S]
    kubetune plot STUDY -o report.html|report.png [-n NS]
    kubetune run STUDY.yaml --local [--parallel N] [--journal PATH]
    kubetune dashboard [-n NS ...] [--port N] [--address A] [--no-browser]

``get``, ``watch`` and ``plot`` read the cluster (KUBECONFIG, the in-cluster service account, or
~/.kube/config), or with ``--journal PATH`` the journal of a local run. ``run --local`` runs a
study file on this machine with the operator's own planning, sampling and early stopping.

Exit status: 0 done (a watched or local study that Succeeded), 1 an error, or a study that
Failed (or, watched, is Invalid), 2 a usage error, 3 a watched study is Suspended, 124
``watch --timeout`` ran out, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubetune._cli.cluster import ClusterReader
    from kubetune._cli.views import StudyView

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubetune",
        description="Watch, compare and plot TuningStudies, or run one without a cluster.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def source_args(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("-n", "--namespace",
                         help="the study's namespace (default: the kubeconfig context's)")
        cmd.add_argument("--journal", type=Path, metavar="PATH",
                         help="read a local run's journal instead of the cluster")

    get = sub.add_parser("get", help="list studies, or show one study's leaderboard",
                         description="Without STUDY, list the studies; with it, show its "
                                     "trials sorted by objective.")
    get.add_argument("study", nargs="?", metavar="STUDY")
    source_args(get)
    get.add_argument("-A", "--all-namespaces", action="store_true",
                     help="list the studies of every namespace")
    get.add_argument("-o", "--output", choices=["table", "json"], default="table")
    get.add_argument("--limit", type=int, default=50,
                     help="trials shown in the leaderboard (0: all; default 50)")

    watch = sub.add_parser("watch", help="live progress of a study until it ends")
    watch.add_argument("study", nargs="?", metavar="STUDY")
    source_args(watch)
    watch.add_argument("--interval", type=float, default=2.0, help="seconds between frames")
    watch.add_argument("--timeout", type=float, default=None,
                       help="give up after this many seconds (exit 124)")

    plot = sub.add_parser("plot", help="write an HTML report or a PNG of a study")
    plot.add_argument("study", nargs="?", metavar="STUDY")
    source_args(plot)
    plot.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                      help="report.html (self-contained) or report.png "
                           "(needs the plot extra: kaleido)")

    run = sub.add_parser("run", help="run a study file on this machine, without Kubernetes",
                         description="Run the trials of STUDY.yaml as local processes, with the "
                                     "operator's sampler, early stopping and budget. Results "
                                     "go to a journal; running again resumes.")
    run.add_argument("file", type=Path, metavar="STUDY.yaml")
    run.add_argument("--local", action="store_true", required=True,
                     help="run here (the only mode: in a cluster, `kubectl apply -f` it)")
    run.add_argument("--parallel", type=int, default=None, metavar="N",
                     help="trials at a time (default: the study's budget.parallelism)")
    run.add_argument("--journal", type=Path, metavar="PATH",
                     help="the journal file (default: .kubetune/<study>.jsonl)")
    dash = sub.add_parser("dashboard", help="serve a live web dashboard of the studies",
                          description="Serve the studies' live dashboard on ADDRESS:PORT, "
                                      "read-only, with the kubeconfig's credentials.")
    dash.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                      help="show this namespace's studies (repeatable; default: every "
                           "namespace)")
    dash.add_argument("--port", type=int, default=0,
                      help="the port to listen on (default: a free one)")
    dash.add_argument("--address", default="127.0.0.1",
                      help="the address to listen on (default 127.0.0.1: this machine only)")
    dash.add_argument("--no-browser", action="store_true", help="do not open a browser")
    return p


class _UsageError(Exception):
    pass


def _reader() -> ClusterReader:
    from kubetune._cli.cluster import ClusterReader

    return ClusterReader()


def _view_source(args: argparse.Namespace) -> Callable[[], StudyView]:
    """A callable returning the study's view now, from the journal or the cluster."""
    if args.journal is not None:
        from kubetune._cli import journal

        return lambda: journal.live_view(args.journal)
    if not args.study:
        raise _UsageError(f"{args.command}: name the study (kubetune {args.command} STUDY), or "
                          "pass --journal PATH for a local run")
    reader = _reader()
    namespace = args.namespace or reader.namespace
    return lambda: reader.view(namespace, args.study)


def _width() -> int:
    return shutil.get_terminal_size((120, 24)).columns


def _get(args: argparse.Namespace) -> int:
    from kubetune._cli import render, report

    now = time.time()
    if args.study is None and args.journal is None:
        reader = _reader()
        namespace = None if args.all_namespaces else (args.namespace or reader.namespace)
        studies = reader.studies(namespace)
        if args.output == "json":
            print(json.dumps(studies, indent=2))
        else:
            print(render.studies_table(studies, now, namespaces=args.all_namespaces))
        return 0
    view = _view_source(args)()
    if args.output == "json":
        print(json.dumps(report.ranked_data(view), indent=2))
        return 0
    print(render.study_header(view))
    print()
    print(render.leaderboard_table(view, now, limit=args.limit or None, width=_width()))
    return 0


def _watch(args: argparse.Namespace) -> int:
    from kubetune._cli.watch import watch

    return watch(_view_source(args), interval=args.interval, timeout=args.timeout,
                 width=_width())


def _plot(args: argparse.Namespace) -> int:
    from kubetune._cli import importance, png, report
    from kubetune.core import spec as specs

    suffix = args.output.suffix.lower()
    if suffix not in (".html", ".htm", ".png"):
        raise _UsageError(f"plot -o {args.output}: write a .html or a .png file")
    view = _view_source(args)()
    imp = None
    if view.spec is not None:
        imp = importance.importances(specs.space_of(view.spec), view.trials,
                                     minimize=view.minimize)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        png.png_report(view, args.output, imp)
    else:
        args.output.write_text(report.html_report(view, time.time(), imp), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from kubetune._cli import local

    if args.parallel is not None and args.parallel < 1:
        raise _UsageError(f"--parallel {args.parallel}: run at least 1 trial at a time")
    return local.run_local(args.file, parallel=args.parallel, journal_path=args.journal)


def _dashboard(args: argparse.Namespace) -> int:
    from kubetune._dashboard.main import run_dashboard

    if not 0 <= args.port <= 65535:
        raise _UsageError(f"--port {args.port}: give a port from 1 to 65535, or 0 for a free one")
    return run_dashboard(host=args.address, port=args.port, namespaces=args.namespace,
                         open_browser=not args.no_browser)


_COMMANDS = {"get": _get, "watch": _watch, "plot": _plot, "run": _run, "dashboard": _dashboard}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]); returns the exit status."""
    args = _parser().parse_args(argv)
    from kubetune._cli.errors import CommandError
    from kubetune.core.spec import SpecError

    try:
        return _COMMANDS[args.command](args)
    except _UsageError as e:
        print(f"kubetune: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SpecError as e:
        print(f"kubetune: invalid study spec:\n{e}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (`kubetune get | head`): stop quietly, as SIGPIPE would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (CommandError, OSError) as e:  # OSError: a file that cannot be read or written
        print(f"kubetune: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
