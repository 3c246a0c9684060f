"""devcluster's real nodes: a kubelet, containerd and runc per node, as on any cluster.

Each node keeps everything under ``<state>/nodes/<name>``: containerd's root, state and socket,
the kubelet's root, configuration, pod logs and certificates (issued from the cluster CA), a
private CNI folder, and a cgroup root of its own (``/devcluster-<id>-<node>`` under every
cgroup controller), so two nodes or two clusters never share ``/kubepods``.

The kubelet runs with ``--cloud-provider=external`` and devcluster plays the cloud provider:
it sets the Node's addresses to 127.0.0.1 and removes the ``uninitialized`` taint, so the API
server reaches the kubelet (logs, exec) on loopback only; the kubelet's own guess would be the
machine's address, which nothing may dial here. Pods get a namespace-only network
(:mod:`kubetune_devcluster.cni`) unless they use host networking.

The kubelet changes three kernel settings when it starts (``vm.overcommit_memory``,
``kernel.panic``, ``kernel.panic_on_oops``); the values from before the first node started are
recorded and written back when the last node stops. Teardown runs in the order that leaves
nothing behind: pods, kubelet, sandboxes and containers, containerd and its shims, mounts,
cgroups.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune_devcluster import pki as pki_mod

__all__ = [
    "API_ACCESS_POLICY",
    "DEVICE_PLUGINS",
    "KUBELET_SYSCTLS",
    "SANDBOX_IMAGE",
    "NodeUnavailableError",
    "RealNode",
    "api_access_policy",
    "api_request",
    "install_api_access_policy",
    "missing_requirements",
    "restore_sysctls",
]

SANDBOX_IMAGE = "registry.k8s.io/pause:3.10.2"
# Images are imported, never pulled: every registry (containerd's `_default` host namespace)
# is a loopback port where nothing serves, so a pod whose image was not imported fails to pull
# at once (ErrImagePull, "connection refused") and nothing dials beyond this machine.
NO_REGISTRY_SERVER = "http://127.0.0.1:1"
NO_REGISTRY = f"""\
server = "{NO_REGISTRY_SERVER}"

[host."{NO_REGISTRY_SERVER}"]
  capabilities = ["pull", "resolve"]
"""

RUNC = "/usr/sbin/runc"
KUBELET_SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
POD_SUBNET_PREFIX = "10.244"
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"
NODE_BINARIES = ("kubelet", "containerd", "containerd-shim-runc-v2", "ctr", "pause", "deviceplugin")
# The kubelet takes device plugins at this fixed path, whatever its --root-dir: fake GPUs are
# given to the first real node of the machine only.
DEVICE_PLUGINS = Path("/var/lib/kubelet/device-plugins")


class NodeUnavailableError(RuntimeError):
    """This machine cannot run a real node; the message says what is missing."""


def missing_requirements(bin_dir: Path) -> list[str]:
    """What this machine lacks to run a real node, each with the way to get it; empty if none."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root: the kubelet and runc must run as root (uid 0)")
    if not Path(RUNC).exists():
        missing.append(f"runc at {RUNC}: apt-get install runc")
    for tool in ("nsenter", "ip", "mount", "umount"):
        if shutil.which(tool) is None:
            missing.append(f"{tool}: apt-get install util-linux iproute2")
    for name in NODE_BINARIES:
        if not (bin_dir / name).exists():
            missing.append(f"{bin_dir / name}: run bash devcluster/build.sh")
    for ns in ("pid", "net", "mnt", "ipc", "uts"):
        if not Path(f"/proc/self/ns/{ns}").exists():
            missing.append(f"{ns} namespaces: a kernel with CONFIG_{ns.upper()}_NS")
    if not _cgroup_controllers():
        missing.append("cgroups: no cgroup v1 controller or cgroup v2 is mounted "
                       "under /sys/fs/cgroup")
    elif os.geteuid() == 0 and shutil.which("unshare") is not None:
        probe = subprocess.run(["unshare", "--pid", "--net", "--mount", "--fork", "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            missing.append(f"new namespaces: unshare --pid --net --mount failed "
                           f"({probe.stderr.strip()}); run outside a restricted container")
    return missing


def _cgroup_controllers() -> list[Path]:
    """The cgroup hierarchies a node's cgroup root must exist in (v1 controllers, or v2)."""
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        return [root]
    return [p for p in sorted(root.iterdir())
            if p.is_dir() and not p.is_symlink() and (p / "cgroup.procs").exists()]


def _read_sysctl(name: str) -> str:
    return Path("/proc/sys", name).read_text().strip()


# Machine-wide: kernel settings are shared by every devcluster on the machine, so the values
# from before the first real node started are kept once, with the clusters that use them, and
# written back when the last of those clusters stops.
SYSCTL_RECORD = Path("/run/kubetune-devcluster/sysctls.json")


@contextlib.contextmanager
def _sysctl_record() -> Iterator[dict[str, Any]]:
    SYSCTL_RECORD.parent.mkdir(parents=True, exist_ok=True)
    with (SYSCTL_RECORD.parent / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = json.loads(SYSCTL_RECORD.read_text()) if SYSCTL_RECORD.exists() else {}
        yield record
        if record.get("users"):
            SYSCTL_RECORD.write_text(json.dumps(record))
        else:
            SYSCTL_RECORD.unlink(missing_ok=True)


def record_sysctls(user: Path) -> None:
    """Keep the kubelet-touched settings as they are before any real node, for ``user``."""
    with _sysctl_record() as record:
        if not record.get("users"):
            record["values"] = {n: _read_sysctl(n) for n in KUBELET_SYSCTLS}
        record["users"] = sorted({*record.get("users", []), str(user)})


def restore_sysctls(user: Path) -> None:
    """``user`` is done; if it was the last, write the kept values back."""
    with _sysctl_record() as record:
        users = set(record.get("users", []))
        if str(user) not in users:
            return
        users.discard(str(user))
        record["users"] = sorted(users)
        if not users:
            for name, value in record.get("values", {}).items():
                Path("/proc/sys", name).write_text(value)


@dataclass(frozen=True)
class RealNode:
    """One node's folders, ports and configuration; ``start`` and ``stop`` act on them."""

    cluster_root: Path
    name: str
    index: int
    bin_dir: Path
    server: str
    kubelet_port: int
    healthz_port: int
    cpu: str = ""
    memory: str = ""

    @property
    def dir(self) -> Path:
        return self.cluster_root / "nodes" / self.name

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd.sock"

    @property
    def cgroup_root(self) -> str:
        cluster_id = hashlib.sha256(str(self.cluster_root).encode()).hexdigest()[:8]
        return f"/devcluster-{cluster_id}-{self.index}"

    @property
    def pki(self) -> pki_mod.Pki:
        return pki_mod.Pki(self.cluster_root / "pki")

    # --- configuration ------------------------------------------------------------------

    def containerd_config(self) -> str:
        d = self.dir
        return f"""\
version = 3
root = "{d / 'containerd' / 'root'}"
state = "{d / 'containerd' / 'state'}"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.containerd_socket}"

[ttrpc]
  address = ""

[metrics]
  address = ""

[debug]
  address = ""

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{SANDBOX_IMAGE}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{d / 'registries'}"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  # Pod network namespaces under the node's folder, so teardown finds and unmounts them.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{d / 'cni' / 'bin'}"]
    conf_dir = "{d / 'cni' / 'conf'}"
    use_internal_loopback = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""

    def kubelet_config(self) -> dict[str, Any]:
        p, d = self.pki, self.dir
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.healthz_port,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(p.ca)},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(p.cert(f"node-{self.name}-serving")),
            "tlsPrivateKeyFile": str(p.key(f"node-{self.name}-serving")),
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.cgroup_root,
            # This machine kind has cgroup v1 (hybrid); kubelet 1.37 refuses it unless told.
            "failCgroupV1": False,
            "failSwapOn": False,
            "podLogsDir": str(d / "pod-logs"),
            # The machine's disk is shared: never evict or collect images for disk pressure.
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "resolvConf": "/etc/resolv.conf",
            "maxPods": 110,
            "nodeStatusUpdateFrequency": "5s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "shutdownGracePeriod": "0s",
        }

    def kubeconfig(self) -> dict[str, Any]:
        p = self.pki
        return {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "devcluster",
                          "cluster": {"server": self.server, "certificate-authority": str(p.ca)}}],
            "users": [{"name": self.name,
                       "user": {"client-certificate": str(p.cert(f"node-{self.name}")),
                                "client-key": str(p.key(f"node-{self.name}"))}}],
            "contexts": [{"name": "devcluster",
                          "context": {"cluster": "devcluster", "user": self.name}}],
            "current-context": "devcluster",
        }

    def cni_config(self) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": "devcluster-isolated",
            "type": "devcluster-isolated",
            "subnet": f"{POD_SUBNET_PREFIX}.{self.index}.0/24",
            "dataDir": str(self.dir / "cni" / "data"),
        }

    def write_files(self, python: str) -> None:
        d = self.dir
        for sub in ("containerd", "kubelet", "pod-logs", "cni/bin", "cni/conf", "cni/data",
                    "logs"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.imported_list.unlink(missing_ok=True)  # a node starting now holds none yet
        (d / "containerd.toml").write_text(self.containerd_config())
        registries = d / "registries" / "_default"
        registries.mkdir(parents=True, exist_ok=True)
        (registries / "hosts.toml").write_text(NO_REGISTRY)
        (d / "kubelet.yaml").write_text(json.dumps(self.kubelet_config(), indent=2))
        kubeconfig = d / "kubelet.kubeconfig"
        kubeconfig.write_text(json.dumps(self.kubeconfig(), indent=2))
        kubeconfig.chmod(0o600)
        plugin = d / "cni" / "bin" / "devcluster-isolated"
        plugin.write_text(f"#!/bin/sh\nexec {python} -m kubetune_devcluster.cni\n")
        plugin.chmod(0o755)
        (d / "cni" / "conf" / "10-devcluster.conf").write_text(json.dumps(self.cni_config()))
        for controller in _cgroup_controllers():
            (controller / self.cgroup_root.lstrip("/")).mkdir(exist_ok=True)

    # --- processes ----------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        # Our shim first: containerd starts the first containerd-shim-runc-v2 on PATH.
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def containerd_argv(self) -> list[str]:
        return [str(self.bin_dir / "containerd"), "--config", str(self.dir / "containerd.toml"),
                "--log-level", "warn"]

    def kubelet_argv(self) -> list[str]:
        return [
            str(self.bin_dir / "kubelet"),
            f"--config={self.dir / 'kubelet.yaml'}",
            f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}",
            f"--root-dir={self.dir / 'kubelet'}",
            f"--cert-dir={self.dir / 'kubelet' / 'pki'}",
            f"--hostname-override={self.name}",
            "--cloud-provider=external",
            f"--node-labels=kubetune.dev/devcluster-node=real,devcluster.kubetune.dev/index={self.index}",
            "-v=1",
        ]

    def deviceplugin_argv(self, gpus: int) -> list[str]:
        return [str(self.bin_dir / "deviceplugin"), f"-count={gpus}", f"-dir={DEVICE_PLUGINS}"]

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / "ctr"), "--address", str(self.containerd_socket),
             "--namespace", "k8s.io", *args],
            capture_output=True, text=True, timeout=timeout, env=self.env(),
        )

    def wait_containerd(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.containerd_socket.exists():
                done = self.ctr("version", timeout=10)
                if done.returncode == 0:
                    return
                last = done.stderr.strip()
            time.sleep(0.2)
        raise TimeoutError(f"devcluster: containerd of {self.name} not serving after "
                           f"{timeout:.0f} s: {last}")

    @property
    def imported_list(self) -> Path:
        return self.dir / "imported-images"

    def import_image(self, archive: Path) -> bool:
        """Import ``archive`` (named by its content's key) unless this node already has it;
        True when it was imported."""
        have = (self.imported_list.read_text().split() if self.imported_list.exists() else [])
        if archive.name in have:
            return False
        done = self.ctr("images", "import", str(archive))
        if done.returncode != 0:
            raise RuntimeError(f"devcluster: importing {archive} into {self.name} failed: "
                               f"{done.stderr.strip()}")
        with self.imported_list.open("a") as f:
            f.write(archive.name + "\n")
        return True

    def images(self) -> set[str]:
        done = self.ctr("images", "list", "--quiet")
        return set(done.stdout.split()) if done.returncode == 0 else set()

    # --- playing the cloud provider -----------------------------------------------------

    def initialize(self, ctx: ssl.SSLContext, timeout: float = 60) -> None:
        """Give the Node loopback addresses and lift the uninitialized taint."""
        deadline = time.monotonic() + timeout
        node = None
        while time.monotonic() < deadline and node is None:
            node = api_request(ctx, "GET", f"{self.server}/api/v1/nodes/{self.name}")
            if node is None:
                time.sleep(0.2)
        if node is None:
            raise TimeoutError(f"devcluster: the kubelet of {self.name} did not register "
                               f"within {timeout:.0f} s")
        addresses = [{"type": "InternalIP", "address": "127.0.0.1"},
                     {"type": "Hostname", "address": self.name}]
        api_request(ctx, "PATCH", f"{self.server}/api/v1/nodes/{self.name}/status",
                 {"status": {"addresses": addresses}})
        while True:
            node = api_request(ctx, "GET", f"{self.server}/api/v1/nodes/{self.name}")
            assert node is not None
            taints = node["spec"].get("taints") or []
            kept = [t for t in taints if t["key"] != UNINITIALIZED_TAINT]
            if len(kept) == len(taints):
                return
            patch = [{"op": "test", "path": "/metadata/resourceVersion",
                      "value": node["metadata"]["resourceVersion"]},
                     {"op": "replace", "path": "/spec/taints", "value": kept}]
            try:
                api_request(ctx, "PATCH", f"{self.server}/api/v1/nodes/{self.name}", patch,
                         content_type="application/json-patch+json")
            except urllib.error.HTTPError as e:
                if e.code not in (409, 422):  # the kubelet wrote the Node meanwhile: read again
                    raise

    # --- teardown -----------------------------------------------------------------------

    def delete_pods(self, ctx: ssl.SSLContext, timeout: float = 20) -> None:
        """Delete the node's pods and give its kubelet ``timeout`` seconds to stop them, so
        containers end with their pods rather than under a kill from teardown."""
        selector = urllib.parse.quote(f"spec.nodeName={self.name}")
        url = f"{self.server}/api/v1/pods?fieldSelector={selector}"
        listed = api_request(ctx, "GET", url) or {}
        for pod in listed.get("items", []):
            meta = pod["metadata"]
            with contextlib.suppress(urllib.error.HTTPError):
                api_request(ctx, "DELETE",
                         f"{self.server}/api/v1/namespaces/{meta['namespace']}/pods/"
                         f"{meta['name']}", {"gracePeriodSeconds": 1},
                         content_type="application/json")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = (api_request(ctx, "GET", url) or {}).get("items", [])
            if all(_stopped(p) for p in pods):
                return
            time.sleep(0.5)

    def cgroup_pids(self) -> list[int]:
        pids: set[int] = set()
        for controller in _cgroup_controllers():
            root = controller / self.cgroup_root.lstrip("/")
            if not root.exists():
                continue
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    pids.update(int(x) for x in procs.read_text().split())
        return sorted(pids)

    def shim_pids(self) -> list[int]:
        """containerd's shims for this node (they outlive containerd unless stopped)."""
        needle = str(self.containerd_socket).encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and needle in cmdline:
                pids.append(int(proc.name))
        return pids

    def remove_sandboxes(self) -> None:
        """Stop and remove every container and sandbox through containerd, then kill what is
        left in the node's cgroups (a container whose shim was gone)."""
        if self.containerd_socket.exists():
            tasks = self.ctr("tasks", "list", "--quiet", timeout=30)
            for task in tasks.stdout.split() if tasks.returncode == 0 else []:
                self.ctr("tasks", "kill", "--signal", "SIGKILL", task, timeout=30)
                self.ctr("tasks", "delete", "--force", task, timeout=30)
            containers = self.ctr("containers", "list", "--quiet", timeout=30)
            for container in containers.stdout.split() if containers.returncode == 0 else []:
                self.ctr("containers", "delete", container, timeout=30)
        for pid in self.cgroup_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def unmount_all(self) -> None:
        """Unmount everything under the node's folder, deepest first (the kubelet bind-mounts
        its root onto itself; containerd mounts rootfs and shm), and the pods' netns files."""
        prefix = str(self.dir) + "/"
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix) or point == str(self.dir):
                mounts.append(point)
        for point in sorted(set(mounts), key=len, reverse=True):
            subprocess.run(["umount", "--lazy", point], capture_output=True)

    def remove_cgroups(self) -> None:
        for controller in _cgroup_controllers():
            root = controller / self.cgroup_root.lstrip("/")
            if not root.exists():
                continue
            for child in sorted((p for p in root.rglob("*") if p.is_dir()),
                                key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    child.rmdir()
            with contextlib.suppress(OSError):
                root.rmdir()


API_ACCESS_POLICY = "devcluster-api-access"
# Pods that talk to the API server here: trial pods (they report through the SDK), kubetune's
# own pods (operator, helm test) and any pod already on the host network.
API_CLIENTS = ("object.spec.?hostNetwork.orValue(false)"
               " || 'kubetune.dev/trial' in object.metadata.?labels.orValue({})"
               " || object.metadata.?labels.orValue({})[?'app.kubernetes.io/name']"
               ".orValue('') == 'kubetune'")


def api_access_policy(apiserver_port: int) -> list[dict[str, Any]]:
    """A MutatingAdmissionPolicy (and its binding) standing in for the Service network that
    devcluster lacks: pods that talk to the API server run on the host network and find it at
    127.0.0.1:<port> (``KUBERNETES_SERVICE_HOST`` / ``_PORT``, which in-cluster clients read)
    instead of at the ``kubernetes`` Service's IP, which nothing here may dial. Every other pod
    keeps a network namespace of its own that reaches nothing outside it."""
    def env(kind: str) -> str:
        return (f"[Object.spec.{kind}.env{{name: 'KUBERNETES_SERVICE_HOST', value: '127.0.0.1'}},"
                f" Object.spec.{kind}.env{{name: 'KUBERNETES_SERVICE_PORT',"
                f" value: '{apiserver_port}'}}]")

    expression = (
        "Object{spec: Object.spec{hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet',"
        " containers: object.spec.containers.map(c,"
        f" Object.spec.containers{{name: c.name, env: {env('containers')}}}),"
        " initContainers: object.spec.?initContainers.orValue([]).map(c,"
        f" Object.spec.initContainers{{name: c.name, env: {env('initContainers')}}})}}}}"
    )
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": API_ACCESS_POLICY},
        "spec": {
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                "resources": ["pods"]}]},
            "matchConditions": [{"name": "talks-to-the-api-server", "expression": API_CLIENTS}],
            "failurePolicy": "Fail",
            "reinvocationPolicy": "IfNeeded",
            "mutations": [{"patchType": "ApplyConfiguration",
                           "applyConfiguration": {"expression": expression}}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": API_ACCESS_POLICY},
        "spec": {"policyName": API_ACCESS_POLICY},
    }
    return [policy, binding]


def install_api_access_policy(ctx: ssl.SSLContext, server: str, apiserver_port: int) -> None:
    base = f"{server}/apis/admissionregistration.k8s.io/v1"
    policy, binding = api_access_policy(apiserver_port)
    api_request(ctx, "POST", f"{base}/mutatingadmissionpolicies", policy,
             content_type="application/json")
    api_request(ctx, "POST", f"{base}/mutatingadmissionpolicybindings", binding,
             content_type="application/json")
    # The API server loads policies asynchronously: wait until a trial pod comes out mutated.
    probe = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "devcluster-probe", "labels": {"kubetune.dev/trial": "0"}},
             "spec": {"containers": [{"name": "probe", "image": "probe"}]}}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            pod = api_request(ctx, "POST", f"{server}/api/v1/namespaces/default/pods?dryRun=All",
                           probe, content_type="application/json")
        except urllib.error.HTTPError as e:
            if e.code != 403:  # 403 until the controller manager makes the default account
                raise
            pod = None
        if pod is not None and pod["spec"].get("hostNetwork"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"devcluster: the API server did not apply {API_ACCESS_POLICY} "
                       "within 30 s")


def api_request(ctx: ssl.SSLContext, method: str, url: str, body: Any = None,
             content_type: str = "application/merge-patch+json") -> dict[str, Any] | None:
    """One admin call; None for 404 (the Node not registered yet)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": content_type} if data else {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            result: dict[str, Any] = json.loads(r.read())
            return result
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def _stopped(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return all("running" not in (s.get("state") or {}) for s in statuses)
