"""devcluster's real-node pieces that need no root: configuration, addresses, image keys."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import tarfile
import tomllib
from pathlib import Path

from kubetune_devcluster import cni, images, node


def real_node(tmp_path: Path, index: int = 0) -> node.RealNode:
    return node.RealNode(cluster_root=tmp_path, name=f"devcluster-real-{index}", index=index,
                         bin_dir=tmp_path / "bin", server="https://127.0.0.1:6443",
                         kubelet_port=10250, healthz_port=10248)


def test_addresses_are_handed_out_in_order_and_wrap_inside_the_subnet(tmp_path: Path):
    network = ipaddress.IPv4Network("10.244.3.0/29")  # six hosts
    counter = tmp_path / "data" / "last-address"
    seen = [cni.next_address(network, counter) for _ in range(8)]
    hosts = [str(a.ip) for a in seen]
    assert hosts[:6] == [f"10.244.3.{i}" for i in range(1, 7)]
    assert hosts[6:] == ["10.244.3.1", "10.244.3.2"]
    assert all(a.network == network for a in seen)


def test_the_kubelet_serves_on_loopback_only_with_its_own_cgroup_root(tmp_path: Path):
    config = real_node(tmp_path).kubelet_config()
    assert (config["address"], config["healthzBindAddress"]) == ("127.0.0.1", "127.0.0.1")
    assert config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["failCgroupV1"] is False
    assert config["cgroupRoot"] != real_node(tmp_path, 1).kubelet_config()["cgroupRoot"]
    other_cluster = real_node(tmp_path / "other").kubelet_config()["cgroupRoot"]
    assert config["cgroupRoot"] != other_cluster


def test_containerd_keeps_everything_under_the_node_folder(tmp_path: Path):
    n = real_node(tmp_path)
    config = tomllib.loads(n.containerd_config())
    assert config["version"] == 3
    assert config["grpc"]["address"] == str(n.containerd_socket)
    assert config["ttrpc"]["address"] == "" and config["metrics"]["address"] == ""
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["netns_mounts_under_state_dir"] is True
    assert all(d.startswith(str(n.dir)) for d in runtime["cni"]["bin_dirs"])
    options = runtime["containerd"]["runtimes"]["runc"]["options"]
    assert (options["BinaryName"], options["SystemdCgroup"]) == (node.RUNC, False)
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["stream_server_address"] == "127.0.0.1"
    sandbox = config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"]
    assert sandbox == node.SANDBOX_IMAGE


def test_the_kubelet_is_told_we_play_the_cloud_provider(tmp_path: Path):
    argv = real_node(tmp_path).kubelet_argv()
    assert "--cloud-provider=external" in argv
    assert not [a for a in argv if a.startswith("--node-ip")]


def test_the_api_access_policy_puts_the_api_server_on_loopback(tmp_path: Path):
    policy, binding = node.api_access_policy(6443)
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    expression = policy["spec"]["mutations"][0]["applyConfiguration"]["expression"]
    assert "hostNetwork: true" in expression
    assert "value: '127.0.0.1'" in expression and "value: '6443'" in expression
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["operations"] == ["CREATE"]


def test_an_image_key_follows_what_is_sent_and_nothing_else(tmp_path: Path, monkeypatch):
    spec = images.IMAGES["toy-trainer"]
    files = images.context_files(spec)
    assert "pyproject.toml" in files
    assert not [f for f in files if f.startswith(("tests/", ".venv/", "helm/"))]
    key = images.image_key(spec, files)
    assert images.image_key(spec, files) == key
    changed = tmp_path / "pyproject.toml"
    changed.write_text((images.ROOT / "pyproject.toml").read_text() + "\n# changed\n")
    real_root = images.ROOT
    # The same files in another folder, but for one changed line in pyproject.toml.
    monkeypatch.setattr(images, "ROOT", tmp_path)
    for name in files:
        target = tmp_path / name
        if name != "pyproject.toml":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((real_root / name).read_bytes())
    for extra in (spec.dockerfile, f"{spec.dockerfile}.dockerignore"):
        (tmp_path / extra).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / extra).write_bytes((real_root / extra).read_bytes())
    assert images.image_key(spec, files) != key


def test_the_pause_image_is_one_layer_named_as_containerd_expects(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("KUBETUNE_IMAGE_CACHE", str(tmp_path / "cache"))
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF not really")
    archive = images.pause_archive(binary, node.SANDBOX_IMAGE)
    assert images.pause_archive(binary, node.SANDBOX_IMAGE) == archive  # cached by content
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert manifest[0]["RepoTags"] == [node.SANDBOX_IMAGE]
        config = json.loads(tar.extractfile(manifest[0]["Config"]).read())  # type: ignore[union-attr]
        assert config["config"]["Entrypoint"] == ["/pause"]
        (layer_name,) = manifest[0]["Layers"]
        with tarfile.open(fileobj=tar.extractfile(layer_name)) as layer:
            assert layer.extractfile("pause").read() == binary.read_bytes()  # type: ignore[union-attr]


def test_a_machine_that_cannot_run_a_node_is_told_what_is_missing(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(node.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(node, "RUNC", str(tmp_path / "no-runc"))
    missing = node.missing_requirements(tmp_path / "empty-bin")
    assert any(m.startswith("root:") for m in missing)
    assert any("apt-get install runc" in m for m in missing)
    assert any(m.endswith("kubelet: run bash devcluster/build.sh") for m in missing)


def test_every_registry_is_a_loopback_port_so_nothing_is_pulled_from_beyond(tmp_path: Path):
    n = real_node(tmp_path)
    n.write_files("/usr/bin/python3")
    images = tomllib.loads(n.containerd_config())["plugins"]["io.containerd.cri.v1.images"]
    hosts_dir = Path(images["registry"]["config_path"])
    assert hosts_dir.is_relative_to(n.dir)
    default = tomllib.loads((hosts_dir / "_default" / "hosts.toml").read_text())
    assert default["server"] == node.NO_REGISTRY_SERVER
    assert list(default["host"]) == [node.NO_REGISTRY_SERVER]
    assert node.NO_REGISTRY_SERVER.startswith("http://127.0.0.1:")
    assert [p.name for p in hosts_dir.iterdir()] == ["_default"]  # no registry of its own


def test_an_image_archive_is_imported_once_per_node(tmp_path: Path, monkeypatch):
    n = real_node(tmp_path)
    n.write_files("/usr/bin/python3")
    calls: list[tuple[str, ...]] = []

    def ctr(self: node.RealNode, *args: str, timeout: float = 0) -> subprocess.CompletedProcess:
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(node.RealNode, "ctr", ctr)
    old, new = tmp_path / "toy-trainer-aaa.tar", tmp_path / "toy-trainer-bbb.tar"
    assert n.import_image(old) is True
    assert n.import_image(old) is False
    assert n.import_image(new) is True
    assert calls == [("images", "import", str(old)), ("images", "import", str(new))]
    n.write_files("/usr/bin/python3")  # a node started again holds nothing yet
    assert n.import_image(old) is True
