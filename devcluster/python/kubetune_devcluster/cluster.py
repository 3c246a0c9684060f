"""Start and stop devcluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, the
node agent, real nodes (kubelet + containerd + runc, :mod:`kubetune_devcluster.node`) and addons
(Kueue, JobSet: :mod:`kubetune_devcluster.addons`), as local processes on loopback, with their
state under one directory.

Every process gets its own session (so ``make cluster-up`` can return) and its own log file
under ``<state>/logs``; ``<state>/cluster.json`` records their pids and ports, which is all that
``down`` and the test fixture need.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kubetune.kube.processes import pid_alive

from kubetune_devcluster import addons as addons_mod
from kubetune_devcluster import images as images_mod
from kubetune_devcluster import node as node_mod
from kubetune_devcluster import pki as pki_mod

__all__ = [
    "AGENT_TAINT",
    "ClusterConfig",
    "ClusterState",
    "binaries_dir",
    "down",
    "load_state",
    "restart",
    "up",
]

KUBE_VERSION = "v1.37.2"
# The apiserver insists on a non-loopback advertise address. This one is in TEST-NET-1
# (RFC 5737), reserved for documentation: nothing is ever there and nothing dials it, since the
# endpoint reconciler that would publish it is off.
ADVERTISE_ADDRESS = "192.0.2.1"
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
"""


# The agent's nodes carry this label ("true"), and in a cluster with real nodes also this
# NoSchedule taint: pods run in containers unless they tolerate it and select an agent node, as
# the agent's own tests do.
AGENT_TAINT = "devcluster.kubetune.dev/process-agent"


@dataclass(frozen=True)
class ClusterConfig:
    """What to start. ``nodes`` are the node agent's (pods as host processes), ``real_nodes``
    run a kubelet each, with ``images`` (names in :data:`images.IMAGES`) imported. Node
    resources apply to every agent node; a real node has the machine's. ``addons`` are
    controllers started with the cluster (names in :data:`addons.ADDONS`)."""

    state_dir: Path
    nodes: int = 1
    node_cpu: str = "8"
    node_memory: str = "32Gi"
    node_gpus: int = 4
    node_pods: int = 110
    real_nodes: int = 0
    images: tuple[str, ...] = ("toy-trainer",)
    addons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.addons) - set(addons_mod.ADDONS))
        if unknown:
            raise ValueError(f"devcluster: unknown addon(s) {unknown} (DEVCLUSTER_ADDONS); "
                             f"known: {sorted(addons_mod.ADDONS)}")

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(f"devcluster-node-{i}" for i in range(self.nodes))

    @property
    def real_node_names(self) -> tuple[str, ...]:
        return tuple(f"devcluster-real-{i}" for i in range(self.real_nodes))

    @classmethod
    def from_env(cls, state_dir: Path) -> ClusterConfig:
        env = os.environ
        return cls(
            state_dir=state_dir,
            nodes=int(env.get("DEVCLUSTER_NODES", 1)),
            node_cpu=env.get("DEVCLUSTER_NODE_CPU", "8"),
            node_memory=env.get("DEVCLUSTER_NODE_MEMORY", "32Gi"),
            node_gpus=int(env.get("DEVCLUSTER_NODE_GPUS", 4)),
            real_nodes=int(env.get("DEVCLUSTER_REAL_NODES", 0)),
            images=tuple(n for n in env.get("DEVCLUSTER_IMAGES", "toy-trainer").split(",") if n),
            addons=tuple(n for n in env.get("DEVCLUSTER_ADDONS", "").split(",") if n),
        )


@dataclass
class ClusterState:
    """What ``up`` started: enough for ``down``, the tests and the node agent."""

    state_dir: str
    apiserver_port: int
    etcd_port: int
    pids: dict[str, int] = field(default_factory=dict)
    node_ports: dict[str, int] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)  # so ``restart`` can start it again
    real_nodes: dict[str, list[int]] = field(default_factory=dict)  # name: kubelet, healthz ports

    @property
    def root(self) -> Path:
        return Path(self.state_dir)

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"


def binaries_dir() -> Path:
    """Where devcluster/build.sh caches the binaries (building them if they are missing)."""
    override = os.environ.get("KUBETUNE_DEVCLUSTER_BIN")
    if override:
        return Path(override)
    script = Path(__file__).resolve().parents[2] / "build.sh"
    out = subprocess.run(
        ["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout.strip()
    return Path(out.splitlines()[-1]) / "bin"


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    """A kubeconfig with one cluster, one client-certificate user and one context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "devcluster", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}
        ],
        "contexts": [{"name": "devcluster", "context": {"cluster": "devcluster", "user": user}}],
        "current-context": "devcluster",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _component_env(name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
    # Keep Go programs away from any proxy: only loopback is ever dialled.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    if name == "node-agent":
        env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(state: ClusterState, name: str, argv: list[str],
           env: dict[str, str] | None = None) -> None:
    state.argv[name] = argv
    state.pids[name] = _spawn(name, argv, state.root, env or _component_env(name))
    _save(state)


def _spawn(name: str, argv: list[str], state_dir: Path, env: dict | None = None) -> int:
    log = open(state_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=state_dir,
        env=env,
    )
    log.close()
    return proc.pid



def _get(url: str, ctx: ssl.SSLContext, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def _wait(what: str, check, timeout: float, state: ClusterState, names: list[str]) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for name in names:
            pid = state.pids.get(name)
            if pid and not pid_alive(pid):
                raise RuntimeError(
                    f"devcluster: {name} exited while waiting for {what}; "
                    f"its log:\n{tail_log(state, name)}"
                )
        try:
            ok, last = check()
            if ok:
                return
        except OSError as e:
            last = str(e)
        time.sleep(0.2)
    raise TimeoutError(f"devcluster: {what} not ready after {timeout:.0f} s: {last}")


def tail_log(state: ClusterState, name: str, lines: int = 40) -> str:
    path = state.log_dir / f"{name}.log"
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def admin_ssl_context(state: ClusterState) -> ssl.SSLContext:
    p = pki_mod.Pki(state.root / "pki")
    ctx = ssl.create_default_context(cafile=str(p.ca))
    ctx.load_cert_chain(str(p.cert("admin")), str(p.key("admin")))
    return ctx


def load_state(state_dir: Path) -> ClusterState | None:
    path = state_dir / "cluster.json"
    if not path.exists():
        return None
    return ClusterState(**json.loads(path.read_text()))


def is_healthy(state: ClusterState) -> bool:
    """Whether every process is alive and the apiserver answers /readyz."""
    if not all(pid_alive(pid) for pid in state.pids.values()):
        return False
    try:
        code, _ = _get(f"{state.server}/readyz", admin_ssl_context(state), timeout=3)
    except OSError:
        return False
    return code == 200


def up(config: ClusterConfig, *, timeout: float = 120.0) -> ClusterState:
    """Start devcluster and wait until it serves; a healthy running cluster is reused, with the
    addons it lacks started."""
    root = config.state_dir.resolve()
    existing = load_state(root)
    if existing is not None:
        if is_healthy(existing):
            addons_mod.up(existing, config.addons, timeout=timeout)
            _refresh_images(existing, config)
            return existing
        down(root)
    bins = binaries_dir()
    archives = _real_node_images(config, bins)
    started = time.monotonic()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    p = pki_mod.issue_pki(root / "pki", nodes=config.node_names + config.real_node_names,
                          service_ip=SERVICE_IP)
    ports = _free_ports(4 + 2 * config.nodes + 2 * config.real_nodes)
    etcd_port, etcd_peer, api_port, kcm_port = ports[:4]
    sched_port = _free_ports(1)[0]
    node_ports = dict(zip(config.node_names, ports[4 : 4 + config.nodes], strict=True))
    state = ClusterState(
        state_dir=str(root), apiserver_port=api_port, etcd_port=etcd_port,
        node_ports=node_ports, config={k: str(v) for k, v in asdict(config).items()},
    )
    real_ports = ports[4 + 2 * config.nodes:]
    for i, name in enumerate(config.real_node_names):
        state.real_nodes[name] = real_ports[2 * i : 2 * i + 2]
    server = state.server
    write_kubeconfig(state.kubeconfig, server, p.ca, p.cert("admin"), p.key("admin"), "admin")
    for name in ("controller-manager", "scheduler"):
        write_kubeconfig(root / f"{name}.kubeconfig", server, p.ca, p.cert(name), p.key(name), name)
    (root / "audit-policy.yaml").write_text(AUDIT_POLICY)
    _start(state, "etcd", [
        str(bins / "etcd"), "--name=devcluster", f"--data-dir={root / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
        f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
        f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
        f"--initial-cluster=devcluster=http://127.0.0.1:{etcd_peer}",
        "--listen-metrics-urls=", "--unsafe-no-fsync", "--log-level=warn",
    ])
    _wait("etcd", lambda: (_etcd_ok(etcd_port), "etcd /health"), 30, state, ["etcd"])

    _start(state, "kube-apiserver", [
        str(bins / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1", f"--secure-port={api_port}",
        f"--advertise-address={ADVERTISE_ADDRESS}", "--endpoint-reconciler-type=none",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--tls-cert-file={p.cert('apiserver')}", f"--tls-private-key-file={p.key('apiserver')}",
        f"--client-ca-file={p.ca}", f"--requestheader-client-ca-file={p.ca}",
        "--requestheader-allowed-names=devcluster-front-proxy",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={p.sa_pub}",
        f"--service-account-signing-key-file={p.sa_key}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction,ServiceAccount",
        f"--kubelet-client-certificate={p.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={p.key('apiserver-kubelet-client')}",
        f"--kubelet-certificate-authority={p.ca}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--audit-policy-file={root / 'audit-policy.yaml'}",
        f"--audit-log-path={root / 'audit.log'}", "--audit-log-maxsize=200",
        "--allow-privileged=true", f"--cert-dir={root / 'pki' / 'apiserver-generated'}",
        "--profiling=false", "-v=1",
    ])
    ctx = admin_ssl_context(state)
    _wait("kube-apiserver /readyz", lambda: _ready(server, ctx), timeout, state,
          ["etcd", "kube-apiserver"])

    _start(state, "kube-controller-manager", [
        str(bins / "kube-controller-manager"),
        f"--kubeconfig={root / 'controller-manager.kubeconfig'}",
        f"--authentication-kubeconfig={root / 'controller-manager.kubeconfig'}",
        f"--authorization-kubeconfig={root / 'controller-manager.kubeconfig'}",
        f"--service-account-private-key-file={p.sa_key}", f"--root-ca-file={p.ca}",
        "--use-service-account-credentials=true", "--controllers=*", "--leader-elect=false",
        f"--cluster-signing-cert-file={p.ca}", f"--cluster-signing-key-file={p.key('ca')}",
        "--bind-address=127.0.0.1", f"--secure-port={kcm_port}",
        f"--cert-dir={root / 'pki' / 'kcm-generated'}", "--profiling=false", "-v=1",
        # Each controller's client may send 100 requests a second, and the Job controller
        # syncs 50 Jobs at once (client-go's 20 a second and the default 5 syncs hold it to
        # about five trials a second: benchmarks/bench_scale.py).
        "--kube-api-qps=100", "--kube-api-burst=200", "--concurrent-job-syncs=50",
    ])
    _start(state, "kube-scheduler", [
        str(bins / "kube-scheduler"),
        f"--kubeconfig={root / 'scheduler.kubeconfig'}",
        f"--authentication-kubeconfig={root / 'scheduler.kubeconfig'}",
        f"--authorization-kubeconfig={root / 'scheduler.kubeconfig'}",
        "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={sched_port}",
        f"--cert-dir={root / 'pki' / 'scheduler-generated'}", "--profiling=false", "-v=1",
    ])
    if config.nodes:
        _start(state, "node-agent", [
            sys.executable, "-m", "kubetune_devcluster", "agent", "--state-dir", str(root),
        ])
    if state.real_nodes:
        node_mod.install_api_access_policy(ctx, server, api_port)
    for node in real_nodes(state, bins):
        _start_real_node(state, node, ctx, archives)
    _wait("nodes Ready",
          lambda: _nodes_ready(server, ctx, config.node_names + config.real_node_names),
          timeout, state, list(state.pids))
    addons_mod.up(state, config.addons, timeout=timeout)
    (root / "startup-seconds").write_text(f"{time.monotonic() - started:.2f}\n")
    return state


def _real_node_images(config: ClusterConfig, bins: Path) -> list[Path]:
    """Check that real nodes can run here, and build (or find) the images they get."""
    if not config.real_nodes:
        return []
    missing = node_mod.missing_requirements(bins)
    if missing:
        raise node_mod.NodeUnavailableError(
            "devcluster: this machine cannot run a real node; missing:\n  - "
            + "\n  - ".join(missing)
            + "\n(the node agent needs none of these: DEVCLUSTER_REAL_NODES=0)")
    unknown = sorted(set(config.images) - set(images_mod.IMAGES))
    if unknown:
        raise ValueError(f"DEVCLUSTER_IMAGES: unknown image(s) {unknown}; "
                         f"known: {sorted(images_mod.IMAGES)}")
    return [images_mod.pause_archive(bins / "pause", node_mod.SANDBOX_IMAGE),
            *(images_mod.build(images_mod.IMAGES[name]) for name in config.images)]


def _refresh_images(state: ClusterState, config: ClusterConfig) -> None:
    """A reused cluster's real nodes get ``config.images`` as the checkout builds them now (an
    edit under operator/src makes new ones); an archive a node already holds is not imported
    again."""
    if not state.real_nodes or not config.real_nodes:
        return
    bins = binaries_dir()
    archives = _real_node_images(config, bins)[1:]
    for node in real_nodes(state, bins):
        for archive in archives:
            node.import_image(archive)


def real_nodes(state: ClusterState, bins: Path | None = None) -> list[node_mod.RealNode]:
    bins = bins or binaries_dir()
    return [node_mod.RealNode(cluster_root=state.root, name=name, index=i, bin_dir=bins,
                              server=state.server, kubelet_port=ports[0], healthz_port=ports[1])
            for i, (name, ports) in enumerate(sorted(state.real_nodes.items()))]


def _start_real_node(state: ClusterState, node: node_mod.RealNode, ctx: ssl.SSLContext,
                     archives: list[Path]) -> None:
    """containerd, the sandbox image, the kubelet, our cloud provider's part, the images."""
    node_mod.record_sysctls(state.root)
    node.write_files(sys.executable)
    _start(state, f"containerd-{node.name}", node.containerd_argv(), node.env())
    node.wait_containerd()
    node.import_image(archives[0])
    _start(state, f"kubelet-{node.name}", node.kubelet_argv(), node.env())
    node.initialize(ctx)
    gpus = int(state.config.get("node_gpus", 0))
    if gpus and node.index == 0:  # see node.DEVICE_PLUGINS
        _start(state, f"deviceplugin-{node.name}", node.deviceplugin_argv(gpus), node.env())
    for archive in archives[1:]:
        node.import_image(archive)


def _stop_real_nodes(state: ClusterState) -> None:
    """Pods, kubelet, sandboxes and containers, containerd and its shims, mounts, cgroups; then
    the kernel settings the kubelet changed."""
    nodes = real_nodes(state, binaries_dir()) if state.real_nodes else []
    for node in nodes:
        with contextlib.suppress(OSError):
            node.delete_pods(admin_ssl_context(state))
        if f"kubelet-{node.name}" in state.pids:
            _terminate_group(state.pids.pop(f"kubelet-{node.name}"))
        node.remove_sandboxes()
        if f"containerd-{node.name}" in state.pids:
            _terminate_group(state.pids.pop(f"containerd-{node.name}"))
        for pid in node.shim_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.unmount_all()
        node.remove_cgroups()
        if node.index == 0:  # the kubelet's files at the fixed device-plugin path
            for name in ("kubelet.sock", "kubelet_internal_checkpoint"):
                (node_mod.DEVICE_PLUGINS / name).unlink(missing_ok=True)
    node_mod.restore_sysctls(state.root)


def restart(state: ClusterState, name: str, *, sig: int = signal.SIGKILL,
            down_seconds: float = 0.0, timeout: float = 60.0) -> None:
    """Stop one component (kill -9 by default, as a crash), wait ``down_seconds``, and start it
    again with the argv it was started with; return once it serves again.
    """
    argv = state.argv.get(name)
    if argv is None:
        raise ValueError(
            f"restart: devcluster did not record how it started {name!r} (known: "
            f"{sorted(state.argv)}); bring the cluster down and up again to record it"
        )
    _terminate_group(state.pids[name], sig=sig)
    # A multi-threaded process shows as a zombie while its other threads still hold its
    # sockets: wait for its ports too, or the new one fails with "address already in use".
    ports = list(state.node_ports.values()) if name == "node-agent" else _listen_ports(argv)
    deadline = time.monotonic() + 30
    while not all(_port_free(p) for p in ports) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(down_seconds)
    _start(state, name, argv)
    if name == "etcd":
        _wait("etcd", lambda: (_etcd_ok(state.etcd_port), "etcd /health"), timeout, state, [name])
    elif name == "kube-apiserver":
        ctx = admin_ssl_context(state)
        _wait("kube-apiserver /readyz", lambda: _ready(state.server, ctx), timeout, state, [name])


def _listen_ports(argv: list[str]) -> list[int]:
    """The loopback ports a component's flags make it listen on."""
    ports = []
    for arg in argv:
        flag, _, value = arg.partition("=")
        if flag == "--secure-port":
            ports.append(int(value))
        elif flag.startswith("--listen-"):
            ports += [int(m) for m in re.findall(r"127\.0\.0\.1:(\d+)", value)]
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _etcd_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return json.loads(r.read()).get("health") == "true"
    except (OSError, ValueError):
        return False


def _ready(server: str, ctx: ssl.SSLContext) -> tuple[bool, str]:
    code, body = _get(f"{server}/readyz", ctx)
    return code == 200, body[-300:]


def _nodes_ready(server: str, ctx: ssl.SSLContext, names: tuple[str, ...]) -> tuple[bool, str]:
    code, body = _get(f"{server}/api/v1/nodes", ctx)
    if code != 200:
        return False, body[-300:]
    ready = set()
    for node in json.loads(body).get("items", []):
        for cond in node.get("status", {}).get("conditions", []):
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                ready.add(node["metadata"]["name"])
    missing = set(names) - ready
    return not missing, f"not Ready yet: {sorted(missing)}"


def _save(state: ClusterState) -> None:
    (state.root / "cluster.json").write_text(json.dumps(asdict(state), indent=2))


def cluster_pids(state: ClusterState) -> Iterator[int]:
    """Pids of every process devcluster started, pod processes included."""
    yield from state.pids.values()
    try:
        pods = list(os.scandir(state.root / "pods"))
    except FileNotFoundError:
        return
    for pod in pods:
        try:  # a pod's folder goes when its pod does, also while this reads it
            pidfiles = [Path(e.path) for e in os.scandir(pod.path) if e.name.endswith(".pid")]
        except (FileNotFoundError, NotADirectoryError):
            continue
        for pidfile in pidfiles:
            try:
                yield int(pidfile.read_text())
            except (OSError, ValueError):
                continue


def down(state_dir: Path, *, keep_state: bool = False) -> None:
    """Stop every process devcluster started (agent first, etcd last) and remove the state."""
    root = state_dir.resolve()
    state = load_state(root)
    if state is not None:
        addons_mod.stop(state)
        _stop_real_nodes(state)
        order = ["node-agent", "kube-scheduler", "kube-controller-manager", "kube-apiserver",
                 "etcd"]
        names = [n for n in order if n in state.pids] + [n for n in state.pids if n not in order]
        pod_pids = [pid for pid in cluster_pids(state) if pid not in state.pids.values()]
        for pid in [state.pids[n] for n in names] + pod_pids:
            _terminate_group(pid)
    if not keep_state:
        shutil.rmtree(root, ignore_errors=True)


def _terminate_group(pid: int, grace: float = 5.0, sig: int = signal.SIGTERM) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
