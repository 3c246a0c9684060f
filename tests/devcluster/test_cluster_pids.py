"""devcluster's ``cluster_pids`` while pods come and go: a pod's folder that goes while it is
read is passed over, not an error that stops ``down`` half way."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from kubetune_devcluster import cluster


def test_pids_of_pods_whose_folders_go_while_they_are_read(tmp_path: Path, monkeypatch):
    pods = tmp_path / "pods"
    for name, pid in (("a", 11), ("b", 12), ("c", 13)):
        (pods / name).mkdir(parents=True)
        (pods / name / "main.pid").write_text(str(pid))
    (pods / "c" / "main.pid").write_text("not a pid")
    state = SimpleNamespace(root=tmp_path, pids={"kube-apiserver": 5})
    real = os.scandir

    def scandir(path):
        if str(path).endswith("/b"):  # gone between the listing of pods/ and this read
            raise FileNotFoundError(path)
        return real(path)

    monkeypatch.setattr(cluster.os, "scandir", scandir)
    assert sorted(cluster.cluster_pids(state)) == [5, 11]
    assert list(cluster.cluster_pids(SimpleNamespace(root=tmp_path / "none", pids={}))) == []
