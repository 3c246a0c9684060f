"""kubetune's I/O edge: the only package that talks to Kubernetes.

Pure builders and parsers (``conventions``, ``jobs``, ``observe``, ``status``) sit beside the
modules that do I/O (``client``, ``cache``, ``reconcile``, ``handlers``, ``leader``).
"""
