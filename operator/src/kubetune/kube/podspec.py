"""Pure helpers that run a pod's container spec as a local process: the command line, the
environment and the GPU count, as the kubelet would compute them. devcluster's node agent and
``kubetune run --local`` both use them.

Nothing here does I/O: the values of configMap and secret keys are looked up through a
callable that the caller passes in.
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "IMAGE_ENTRYPOINTS",
    "PodSpecError",
    "command_for",
    "container_env",
    "expand",
    "gpu_request",
    "image_repository",
]

GPU = "nvidia.com/gpu"

# Images are not pulled: an image's entrypoint comes from this map and runs in the local Python
# environment, where kubetune and kubetune_trainer are installed.
IMAGE_ENTRYPOINTS: dict[str, list[str]] = {
    "kubetune/trainer": [sys.executable, "-m", "kubetune_trainer"],
    "kubetune/toy-trainer": [sys.executable, "-m", "kubetune_trainer"],
    "kubetune/operator": [sys.executable, "-m", "kubetune"],
}

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


class PodSpecError(ValueError):
    """A container this node cannot run; the message says why and what to change."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def expand(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` references the way the kubelet does.

    ``$$`` is an escaped ``$``; a reference to an undefined variable is left as written.
    """

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(sub, text)


def image_repository(image: str) -> str:
    """``registry.example/kubetune/trainer:0.1.0@sha256:..`` -> ``kubetune/trainer``.

    A leading registry host (a component with a dot or a colon, or ``localhost``) and the tag or
    digest are dropped, so any registry's copy of our images maps to the same entrypoint.
    """
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    parts = name.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if parts and parts[0] == "docker.io":
        parts = parts[1:]
    return "/".join(parts)


def command_for(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """The argv for a container: ``command`` replaces the image's entrypoint, ``args`` its
    default arguments, and both have ``$(VAR)`` expanded.
    """
    args = [expand(a, env) for a in container.get("args") or []]
    command = container.get("command")
    if command:
        argv = [expand(c, env) for c in command] + args
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        return argv
    image = container.get("image", "")
    entrypoint = IMAGE_ENTRYPOINTS.get(image_repository(image))
    if entrypoint is None:
        known = ", ".join(sorted(IMAGE_ENTRYPOINTS))
        raise PodSpecError(
            "UnknownImage",
            f"container {container.get('name')!r}: devcluster does not pull images and has no "
            f"entrypoint for image {image!r} (known: {known}); give the container a `command`",
        )
    return [*entrypoint, *args]


def _field_ref(pod: Mapping[str, Any], path: str) -> str:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP") or "127.0.0.1",
        "status.podIP": status.get("podIP") or "127.0.0.1",
        "status.hostIPs": status.get("hostIP") or "127.0.0.1",
        "status.podIPs": status.get("podIP") or "127.0.0.1",
    }
    if path in simple:
        return str(simple[path] or "")
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    raise PodSpecError("CreateContainerConfigError", f"unsupported fieldRef {path!r}")


def _resource_ref(container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    kind, _, resource = ref.get("resource", "").partition(".")
    value = (container.get("resources", {}).get(kind) or {}).get(resource)
    return "0" if value is None else str(value)


Lookup = Callable[[str, str, str], str | None]  # (kind "configmap"|"secret", name, key)


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    lookup: Lookup,
    list_keys: Callable[[str, str], Mapping[str, str] | None],
    base: Mapping[str, str],
) -> dict[str, str]:
    """The container's environment: ``base``, then ``envFrom``, then ``env`` in order, each value
    expanded against the variables defined before it (as the kubelet does).
    """
    env: dict[str, str] = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = source.get(key)
            if ref is None:
                continue
            data = list_keys(kind, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise PodSpecError(
                    "CreateContainerConfigError", f"{kind} {ref['name']!r} not found"
                )
            env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var or "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = _field_ref(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            env[name] = _resource_ref(container, source["resourceFieldRef"])
        else:
            for kind, key in (("configmap", "configMapKeyRef"), ("secret", "secretKeyRef")):
                ref = source.get(key)
                if ref is None:
                    continue
                value = lookup(kind, ref["name"], ref["key"])
                if value is None:
                    if ref.get("optional"):
                        break
                    raise PodSpecError(
                        "CreateContainerConfigError",
                        f"env {name}: key {ref['key']!r} of {kind} {ref['name']!r} not found",
                    )
                env[name] = value
    return env


def decode_secret(data: Mapping[str, str]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}


def gpu_request(pod: Mapping[str, Any]) -> int:
    """GPUs a pod needs: the largest init container's, or the sum of its containers'."""

    def gpus(c: Mapping[str, Any]) -> int:
        res = c.get("resources") or {}
        return int((res.get("limits") or {}).get(GPU) or (res.get("requests") or {}).get(GPU) or 0)

    spec = pod.get("spec", {})
    regular = sum(gpus(c) for c in spec.get("containers") or [])
    init = max((gpus(c) for c in spec.get("initContainers") or []), default=0)
    return max(regular, init)
