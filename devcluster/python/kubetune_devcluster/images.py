"""Images for devcluster's real nodes, built from the repository's Dockerfiles without Docker.

The base is made with mmdebstrap from Debian's packages (Python 3.11 as in ``python:3.11-slim``,
with venv and ``python`` on PATH) and imported into a private podman store; each Dockerfile is
then built by podman on top of it (``--build-arg PYTHON_IMAGE=<base>``) from a staging folder
that holds exactly the files its ``.dockerignore`` lets through, and saved as a docker archive
that ``ctr images import`` loads into a node's containerd. The sandbox (pause) image is written
directly: one layer holding devcluster's static pause binary.

Everything is cached under ``~/.cache/kubetune/images`` (``KUBETUNE_IMAGE_CACHE``), keyed by a
hash of what went into it (package list; Dockerfile, ignore file, every file sent and the base's
key; the pause binary), and never rebuilt while that key's archive exists. Builds reach PyPI
through the machine's proxy: the host's CA bundle is mounted over the image's own during build
steps only (the base's ``/etc/pip.conf`` makes pip use the system bundle), never copied into an
image.

``python -m kubetune_devcluster.images [NAME ...]`` builds (or finds) them and prints each
archive's path.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BASE_PACKAGES",
    "IMAGES",
    "ImageSpec",
    "build",
    "build_base",
    "cache_dir",
    "context_files",
    "excluded",
    "image_key",
    "main",
    "pause_archive",
]

ROOT = Path(__file__).resolve().parents[3]
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# python3-venv for the Dockerfiles' `python -m venv`; python-is-python3 for their `python`.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
# pip trusts the system's CA bundle, as Debian's own pip does; during a build the host's bundle
# is mounted over that file (an existing file, so the mount leaves nothing in a layer).
PIP_CONF = f"[global]\ncert = {SYSTEM_CA}\n"
HOST_CA = Path(SYSTEM_CA)


@dataclass(frozen=True)
class ImageSpec:
    """One image: its Dockerfile (relative to the repository root) and the name it runs as."""

    name: str
    dockerfile: str
    ref: str

    @property
    def ignore_file(self) -> Path:
        return ROOT / f"{self.dockerfile}.dockerignore"


IMAGES = {
    spec.name: spec
    for spec in (
        ImageSpec("toy-trainer", "toy-trainer-image/Dockerfile",
                  "docker.io/kubetune/toy-trainer:0.1.0"),
        ImageSpec("operator", "operator/Dockerfile", "docker.io/kubetune/operator:0.1.0"),
        ImageSpec("trainer", "trainer-image/Dockerfile", "docker.io/kubetune/trainer:0.1.0"),
    )
}


def cache_dir() -> Path:
    override = os.environ.get("KUBETUNE_IMAGE_CACHE")
    base = Path(override) if override else (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kubetune" / "images")
    base.mkdir(parents=True, exist_ok=True)
    return base


def _log(message: str) -> None:
    print(f"devcluster images: {message}", file=sys.stderr, flush=True)


# --- the build context ----------------------------------------------------------------------


def excluded(path: str, patterns: list[str]) -> bool:
    """Docker's ignore rule: the last pattern matching the path or a parent decides."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        if any(fnmatch.fnmatch(c, body) or fnmatch.fnmatch(c, body.removeprefix("**/"))
               for c in candidates):
            verdict = not negated
    return verdict


def ignore_patterns(spec: ImageSpec) -> list[str]:
    return [line.strip() for line in spec.ignore_file.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def context_files(spec: ImageSpec) -> list[str]:
    """The repository files the build context holds: tracked and untracked-but-not-ignored
    files that the image's ignore file lets through, sorted."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    patterns = ignore_patterns(spec)
    return sorted(p for p in listed
                  if p and (ROOT / p).is_file() and not excluded(p, patterns))


def _digest(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "big"))
        h.update(chunk)
    return h.hexdigest()[:16]


def base_key() -> str:
    return _digest([SUITE.encode(), *(m.encode() for m in MIRRORS),
                    *(p.encode() for p in BASE_PACKAGES), PIP_CONF.encode()])


def image_key(spec: ImageSpec, files: list[str]) -> str:
    """What the image is made of: its Dockerfile, ignore file, every file sent, the base."""
    chunks = [base_key().encode(), spec.dockerfile.encode(), (ROOT / spec.dockerfile).read_bytes(),
              spec.ignore_file.read_bytes()]
    for name in files:
        chunks += [name.encode(), (ROOT / name).read_bytes()]
    return _digest(chunks)


# --- podman ----------------------------------------------------------------------------------


def podman_env() -> dict[str, str]:
    """podman with a private store and the settings this machine needs (research/real-node)."""
    home = cache_dir() / "podman"
    home.mkdir(exist_ok=True)
    storage = home / "storage.conf"
    storage.write_text(
        '[storage]\ndriver = "overlay"\n'
        f'graphroot = "{home / "storage"}"\nrunroot = "{home / "run"}"\n')
    containers = home / "containers.conf"
    containers.write_text(
        '[containers]\nnetns = "host"\ncgroupns = "host"\n'
        # root here lacks CAP_SYS_RESOURCE: without these every RUN fails setting rlimits.
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'events_logfile_path = "{home / "events.log"}"\nruntime = "runc"\n'
        '[network]\ndefault_network = "none"\n')
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(containers)
    env["CONTAINERS_STORAGE_CONF"] = str(storage)
    return env


def _run(argv: list[str], *, env: dict[str, str] | None = None, what: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise RuntimeError(f"devcluster images: {what} failed ({' '.join(argv[:3])} ...):\n{tail}")


def _podman_has(ref: str, env: dict[str, str]) -> bool:
    return subprocess.run(["podman", "image", "exists", ref], env=env,
                          capture_output=True).returncode == 0


def build_base() -> str:
    """The base image's reference in the private podman store, built once per key."""
    key = base_key()
    ref = f"localhost/kubetune-base:{key}"
    env = podman_env()
    if _podman_has(ref, env):
        return ref
    archive = cache_dir() / f"base-{key}.tar"
    if not archive.exists():
        started = time.monotonic()
        _log(f"making the Debian {SUITE} base with mmdebstrap (first time only)")
        tmp = archive.with_suffix(".tmp.tar")
        _run(["mmdebstrap", "--mode=unshare", "--variant=minbase",
              "--include=" + ",".join(BASE_PACKAGES),
              "--dpkgopt=path-exclude=/usr/share/doc/*",
              "--dpkgopt=path-exclude=/usr/share/man/*",
              "--dpkgopt=path-exclude=/usr/share/locale/*",
              "--aptopt=Acquire::Languages \"none\"",
              "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*",
              f"--customize-hook=printf '{PIP_CONF}' > \"$1\"/etc/pip.conf",
              "--format=tar", SUITE, str(tmp), *MIRRORS], what="mmdebstrap")
        tmp.rename(archive)
        _log(f"base made in {time.monotonic() - started:.0f} s")
    _run(["podman", "import", "--change", 'CMD ["python3"]', str(archive), ref], env=env,
         what="podman import")
    return ref


def build(spec: ImageSpec) -> Path:
    """The image's docker archive, built from its Dockerfile unless its key's is there."""
    files = context_files(spec)
    key = image_key(spec, files)
    archive = cache_dir() / f"{spec.name}-{key}.tar"
    if archive.exists():
        return archive
    base = build_base()
    env = podman_env()
    started = time.monotonic()
    _log(f"building {spec.ref} from {spec.dockerfile} (first time for this content)")
    with tempfile.TemporaryDirectory(prefix=f"kubetune-{spec.name}-") as tmp:
        context = Path(tmp) / "context"
        for name in files:
            target = context / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((ROOT / name).read_bytes())
        mounts = ["-v", f"{HOST_CA}:{SYSTEM_CA}:ro"] if HOST_CA.exists() else []
        _run(["podman", "build", "--network=host", "--pull=never", "--layers",
              "-f", str(ROOT / spec.dockerfile), "-t", spec.ref,
              "--build-arg", f"PYTHON_IMAGE={base}", *mounts, str(context)],
             env=env, what=f"podman build of {spec.name}")
    tmp_archive = archive.with_suffix(".tmp.tar")
    tmp_archive.unlink(missing_ok=True)
    _run(["podman", "save", "--format", "docker-archive", "-o", str(tmp_archive), spec.ref],
         env=env, what=f"podman save of {spec.name}")
    tmp_archive.rename(archive)
    for old in cache_dir().glob(f"{spec.name}-*.tar"):
        if old != archive and not old.name.endswith(".tmp.tar"):
            old.unlink()
    _log(f"built {spec.ref} in {time.monotonic() - started:.0f} s "
         f"({archive.stat().st_size / 2**20:.0f} MiB)")
    return archive


def pause_archive(pause_binary: Path, ref: str) -> Path:
    """A docker archive of one layer holding ``/pause``, named ``ref``; cached by content."""
    binary = pause_binary.read_bytes()
    key = _digest([binary, ref.encode()])
    archive = cache_dir() / f"pause-{key}.tar"
    if archive.exists():
        return archive
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("pause")
        info.size, info.mode, info.mtime = len(binary), 0o755, 0
        tar.addfile(info, io.BytesIO(binary))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref],
                            "Layers": ["layer/layer.tar"]}]).encode()
    tmp = archive.with_suffix(".tmp.tar")
    with tarfile.open(tmp, mode="w") as tar:
        for name, data in ((config_name, config), ("layer/layer.tar", layer_bytes),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(archive)
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubetune_devcluster.images",
                                     description="Build devcluster's images (cached).")
    parser.add_argument("names", nargs="*", choices=[[], *IMAGES], default=[],
                        help=f"images to build (default all: {', '.join(IMAGES)})")
    args = parser.parse_args(argv)
    for name in args.names or list(IMAGES):
        started = time.monotonic()
        try:
            archive = build(IMAGES[name])
        except RuntimeError as e:
            print(e, file=sys.stderr)
            return 1
        print(f"{name}\t{archive}\t{time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
