"""A kubeconfig exec credential plugin, as cloud CLIs are (aws eks get-token, gke-gcloud-auth-
plugin, kubelogin): prints an ExecCredential with the token kept in the file named by its first
argument, and notes each run in the file named by its second, so a test sees it was run."""

import datetime
import json
import sys
from pathlib import Path

token_file, runs_file = Path(sys.argv[1]), Path(sys.argv[2])
with runs_file.open("a") as runs:
    runs.write("run\n")
expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=30)
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {"token": token_file.read_text().strip(),
               "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
}))
