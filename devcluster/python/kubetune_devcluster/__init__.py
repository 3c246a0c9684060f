"""devcluster: a real Kubernetes control plane and a node agent that runs pods as local
processes, for kubetune's tests and demo on machines without Docker."""
