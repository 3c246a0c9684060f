"""The node agent's pure pod-to-process translation: $(VAR) expansion, env, images, GPUs."""

from __future__ import annotations

import sys

import pytest
from kubetune.kube import podspec

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "x"},
                 "annotations": {"note": "hi"}},
    "spec": {"nodeName": "n0", "serviceAccountName": "sa"},
    "status": {"podIP": "127.0.0.1"},
}


@pytest.mark.parametrize(("text", "want"), [
    ("$(A)", "1"),
    ("x$(A)y$(B)", "x1y2"),
    ("$$(A)", "$(A)"),
    ("$(MISSING)", "$(MISSING)"),
    ("$A", "$A"),
    ("$(A", "$(A"),
])
def test_expand_follows_the_kubelet(text, want):
    assert podspec.expand(text, {"A": "1", "B": "2"}) == want


@pytest.mark.parametrize(("image", "repo"), [
    ("kubetune/trainer:0.1.0", "kubetune/trainer"),
    ("kubetune/trainer", "kubetune/trainer"),
    ("ghcr.io/kubetune/trainer:0.1.0", "kubetune/trainer"),
    ("localhost:5000/kubetune/operator@sha256:abc", "kubetune/operator"),
    ("docker.io/kubetune/operator:latest", "kubetune/operator"),
    ("python:3.11", "python"),
])
def test_image_repository(image, repo):
    assert podspec.image_repository(image) == repo


def test_command_replaces_entrypoint_and_expands():
    c = {"name": "m", "image": "python:3.11", "command": ["python", "-c"], "args": ["print($(X))"]}
    assert podspec.command_for(c, {"X": "7"}) == [sys.executable, "-c", "print(7)"]


def test_mapped_image_runs_its_entrypoint_with_args():
    c = {"name": "t", "image": "kubetune/trainer:0.1.0", "args": ["--lr=$(LR)"]}
    assert podspec.command_for(c, {"LR": "0.1"}) == [
        sys.executable, "-m", "kubetune_trainer", "--lr=0.1"]


def test_unknown_image_without_command_is_refused_with_the_fix():
    with pytest.raises(podspec.PodSpecError, match="give the container a `command`") as e:
        podspec.command_for({"name": "x", "image": "example.com/app:1"}, {})
    assert e.value.reason == "UnknownImage"


def test_env_sources_in_order_with_expansion():
    data = {("configmap", "cm"): {"K": "from-cm"}, ("secret", "s"): {"PW": "hunter2"}}

    def lookup(kind, name, key):
        return data.get((kind, name), {}).get(key)

    def keys(kind, name):
        return data.get((kind, name))

    container = {
        "name": "m", "resources": {"limits": {"cpu": "2"}},
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "PW"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k",
                                                              "optional": True}}},
            {"name": "GREETING", "value": "$(NAME) in $(NS)"},
        ],
    }
    env = podspec.container_env(POD, container, lookup, keys, {"BASE": "b"})
    assert env["BASE"] == "b" and env["CM_K"] == "from-cm"
    assert (env["NAME"], env["NS"], env["IP"], env["APP"]) == ("p", "ns", "127.0.0.1", "x")
    assert env["CPU"] == "2" and env["PW"] == "hunter2"
    assert "OPT" not in env
    assert env["GREETING"] == "p in ns"


def test_missing_required_key_is_a_config_error():
    container = {"name": "m", "env": [
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    with pytest.raises(podspec.PodSpecError) as e:
        podspec.container_env(POD, container, lambda *a: None, lambda *a: None, {})
    assert e.value.reason == "CreateContainerConfigError"


def test_gpu_request_sums_containers_and_takes_the_largest_init():
    pod = {"spec": {
        "containers": [{"resources": {"limits": {"nvidia.com/gpu": 1}}},
                       {"resources": {"requests": {"nvidia.com/gpu": "2"}}}],
        "initContainers": [{"resources": {"limits": {"nvidia.com/gpu": 4}}}],
    }}
    assert podspec.gpu_request(pod) == 4
    assert podspec.gpu_request({"spec": {"containers": [{}]}}) == 0
