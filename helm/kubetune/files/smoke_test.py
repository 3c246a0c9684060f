"""`helm test`: apply a tiny TuningStudy (a toy quadratic, 2 trials) and wait until it succeeds.

Runs as ``python -c`` in the operator image under the test's own ServiceAccount, which may
only get, create and delete TuningStudies in the release namespace. Credentials come from the
pod's kubeconfig or in-cluster service account (kubetune.kube.credentials.load). The
study is deleted at the end, whatever the outcome, so that its trials go with it.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

from kubetune.kube import credentials as logins

NAMESPACE = os.environ["NAMESPACE"]
NAME = os.environ["STUDY_NAME"]
TIMEOUT = float(os.environ.get("TIMEOUT_SECONDS", "300"))
PATH = f"/apis/kubetune.dev/v1alpha1/namespaces/{NAMESPACE}/tuningstudies"

STUDY = {
    "apiVersion": "kubetune.dev/v1alpha1",
    "kind": "TuningStudy",
    "metadata": {"name": NAME, "labels": {"app.kubernetes.io/component": "test"}},
    "spec": {
        "objective": {"metric": "loss", "direction": "minimize"},
        "searchSpace": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
        "algorithm": {"name": "random", "seed": 1},
        "budget": {"maxTrials": 2, "parallelism": 2, "maxFailedTrials": 0,
                   "trialTimeoutSeconds": 120},
        "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "trial",
                "image": os.environ["TRAINER_IMAGE"],
                "args": ["toy", "quadratic"],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                              "limits": {"memory": "256Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        }}}},
    },
}

credentials = logins.load()
context = logins.ssl_context(credentials)


def call(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """One API call; the HTTP status and the decoded body (errors included)."""
    request = urllib.request.Request(
        credentials.server + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json",
                 **credentials.headers()},
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, {"message": text.decode(errors="replace")}


def condition(study: dict, kind: str) -> dict | None:
    for c in (study.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return c
    return None


def delete_study() -> None:
    call("DELETE", f"{PATH}/{NAME}", {"propagationPolicy": "Background"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and call("GET", f"{PATH}/{NAME}")[0] != 404:
        time.sleep(1)


def run() -> int:
    delete_study()  # a study left by an earlier, interrupted test
    code, body = call("POST", PATH, STUDY)
    if code != 201:
        print(f"creating TuningStudy {NAMESPACE}/{NAME}: HTTP {code}: {body.get('message')}")
        return 1
    print(f"created TuningStudy {NAMESPACE}/{NAME}; waiting up to {TIMEOUT:.0f} s")
    deadline = time.monotonic() + TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        code, study = call("GET", f"{PATH}/{NAME}")
        if code != 200:
            print(f"reading the study: HTTP {code}: {study.get('message')}")
            return 1
        trials = (study.get("status") or {}).get("trials") or {}
        line = ", ".join(f"{k} {v}" for k, v in trials.items() if v)
        if line != last:
            print(f"trials: {line or 'none yet'}")
            last = line
        done = condition(study, "Succeeded")
        if done:
            best = study["status"].get("bestTrial") or {}
            print(f"Succeeded ({done.get('reason')}): best loss {best.get('value')} "
                  f"with {best.get('params')}")
            return 0
        for kind in ("Failed", "Stalled"):
            bad = condition(study, kind)
            if bad:
                print(f"{kind} ({bad.get('reason')}): {bad.get('message')}")
                return 1
        time.sleep(2)
    print(f"the study did not succeed within {TIMEOUT:.0f} s: is the operator running, and does "
          f"it watch namespace {NAMESPACE}? (kubectl logs deploy/<release>-kubetune)")
    return 1


try:
    status = run()
finally:
    delete_study()
sys.exit(status)
