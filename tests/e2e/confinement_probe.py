"""Run inside a trial container by test_real_node.py: try four pod updates with the trial's
mounted service-account token, print each HTTP status as one JSON line, then report a result.
Standard library and kubetune.sdk only, as a user's training code would be."""

import json
import os
import ssl
import urllib.error
import urllib.request

from kubetune import sdk

ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVER = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
NAMESPACE, POD = os.environ["POD_NAMESPACE"], os.environ["POD_NAME"]
CONTEXT = ssl.create_default_context(cafile=f"{ACCOUNT}/ca.crt")


def patch(pod: str, body: dict) -> int:
    with open(f"{ACCOUNT}/token") as f:
        token = f.read().strip()
    request = urllib.request.Request(
        f"{SERVER}/api/v1/namespaces/{NAMESPACE}/pods/{pod}", data=json.dumps(body).encode(),
        method="PATCH", headers={"Authorization": f"Bearer {token}",
                                 "Content-Type": "application/merge-patch+json"})
    try:
        with urllib.request.urlopen(request, context=CONTEXT, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


print(json.dumps({
    "own kubetune annotation": patch(POD, {"metadata": {"annotations": {
        "kubetune.dev/probe": "1"}}}),
    "own label": patch(POD, {"metadata": {"labels": {"probe": "1"}}}),
    "own other annotation": patch(POD, {"metadata": {"annotations": {"probe": "1"}}}),
    "another pod": patch("bystander", {"metadata": {"annotations": {"kubetune.dev/probe": "1"}}}),
}), flush=True)
sdk.report(step=1, loss=0.25, final=True)
