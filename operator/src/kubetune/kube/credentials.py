"""Kubernetes credentials, read by the ``kubernetes`` package's configuration loader and held
in memory: the one login of the operator, the ``kubetune`` command and the SDK.

``load`` reads ``KUBECONFIG`` (several files merge as kubectl merges them), else the in-cluster
service account, else ``~/.kube/config``. Every kind of kubeconfig user works as the package
runs it: token, tokenFile, client certificate, username and password, ``exec`` credential
plugins and ``auth-provider`` (OIDC). A user whose plugin gives no credentials is an error that
names the context, never an anonymous request.

No credential is written to disk. The package writes inline ``*-data`` (and an exec plugin's
client certificate) to temporary files; here it writes them into a private folder on a memory
file system (``/dev/shm``), which is read into memory and removed before ``load`` returns. An
SSL context takes the CA as data, and the client certificate and key through pipes.

``Login`` keeps the current credentials and loads them again when they expire (exec plugins
say when; a token read from a file is read again each minute, as rotated service account
tokens need) or when the API server refused them (``invalidate`` after a 401).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Credentials", "CredentialsError", "Login", "load", "ssl_context"]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
FILE_TOKEN_SECONDS = 60.0  # a token read from a file is read again after this long
EXPIRY_SKEW = 30.0  # credentials are renewed this long before they expire
_MEMORY_FOLDER = Path("/dev/shm")


class CredentialsError(Exception):
    """No usable credentials; the message names the kubeconfig, the context and the fix."""


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to prove who we are, all in memory.

    ``authorization`` is the whole Authorization header value (``Bearer ...`` or ``Basic ...``);
    ``expires`` (Unix seconds) is when they stop working (an exec plugin says so), None for
    never; ``reread_at`` when a token read from a file is read again (it may have rotated).
    """

    server: str
    namespace: str = "default"
    context: str = ""
    source: str = ""
    ca_pem: bytes | None = field(default=None, repr=False)
    cert_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    authorization: str | None = field(default=None, repr=False)
    insecure: bool = False
    tls_server_name: str | None = None
    expires: float | None = None
    reread_at: float | None = None

    def where(self) -> str:
        """``context 'x' of KUBECONFIG=/path`` (or the source alone), for messages."""
        return f"context {self.context!r} of {self.source}" if self.context else self.source

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization} if self.authorization else {}

    def expired(self, now: float | None = None) -> bool:
        """Whether they must be loaded again before the next call."""
        now = time.time() if now is None else now
        if self.reread_at is not None and now >= self.reread_at:
            return True
        return self.expires is not None and now >= self.expires - EXPIRY_SKEW

    def tls_material(self) -> tuple[Any, ...]:
        """What an SSL context is made of: a connection pool is kept while this is equal."""
        return (self.server, self.ca_pem, self.cert_pem, self.key_pem, self.insecure,
                self.tls_server_name)


def ssl_context(credentials: Credentials) -> ssl.SSLContext:
    """An SSL context for ``credentials``, built from memory (no file is written)."""
    ca = credentials.ca_pem.decode() if credentials.ca_pem else None
    context = ssl.create_default_context(cadata=ca)
    if credentials.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if credentials.cert_pem and credentials.key_pem:
        _load_cert_chain(context, credentials.cert_pem, credentials.key_pem)
    return context


def _load_cert_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # ssl reads a certificate chain only by path: hand it the read ends of two pipes, which
    # hold the PEM in kernel memory and vanish when closed.
    fds: list[int] = []
    try:
        paths = []
        for pem in (cert, key):
            read, write = os.pipe()
            fds += [read, write]
            with os.fdopen(os.dup(write), "wb") as out:
                out.write(pem)
            os.close(write)
            fds.remove(write)
            paths.append(f"/dev/fd/{read}")
        context.load_cert_chain(paths[0], paths[1])
    finally:
        for fd in fds:
            os.close(fd)


def load(*, context: str | None = None, environ: Mapping[str, str] | None = None,
         account_dir: Path = SERVICE_ACCOUNT_DIR) -> Credentials:
    """The credentials of ``KUBECONFIG`` (its ``context``, default the current one), else of
    the in-cluster service account, else of ``~/.kube/config``."""
    env = os.environ if environ is None else environ
    kubeconfig = env.get("KUBECONFIG")
    if kubeconfig:
        return _from_kubeconfig(kubeconfig, context, f"KUBECONFIG={kubeconfig}")
    if env.get("KUBERNETES_SERVICE_HOST") and (account_dir / "token").exists():
        return _in_cluster(env, account_dir)
    default = Path.home() / ".kube" / "config"
    if default.exists():
        return _from_kubeconfig(str(default), context, "~/.kube/config")
    raise CredentialsError(
        "no Kubernetes credentials: set KUBECONFIG to a kubeconfig file, create "
        "~/.kube/config, or run in a pod with a service account token")


def _from_kubeconfig(paths: str, context: str | None, source: str) -> Credentials:
    from kubernetes.client import Configuration
    from kubernetes.config import ConfigException, kube_config

    try:
        merged = kube_config.KubeConfigMerger(paths).config  # type: ignore[no-untyped-call]
    except (OSError, ValueError, ConfigException) as e:
        raise CredentialsError(f"{source}: cannot read it ({e}); point KUBECONFIG at a "
                               "readable kubeconfig") from None
    if merged is None:
        raise CredentialsError(f"{source}: no kubeconfig there; point KUBECONFIG at one "
                               "(`kubectl config view` shows what kubectl reads)")
    name = context or ""
    try:
        with _private_folder() as folder, _plugin_errors() as errors:
            loader = kube_config.KubeConfigLoader(  # type: ignore[no-untyped-call]
                config_dict=merged, active_context=context, config_base_path=None,
                temp_file_path=folder)
            name = str(loader.current_context.get("name") or "")
            configuration = Configuration()
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
            ca = _read(configuration.ssl_ca_cert)
            cert = _read(configuration.cert_file)
            key = _read(configuration.key_file)
    except ConfigException as e:
        where = f"context {name!r} of {source}" if name else source
        raise CredentialsError(f"{where}: {e}; fix the kubeconfig or pick another context "
                               "(`kubectl config use-context`)") from None
    except OSError as e:
        raise CredentialsError(f"context {name!r} of {source}: cannot read "
                               f"{e.filename or 'a file it names'}: {e.strerror}") from None
    user = loader._user or {}  # the package's parsed user entry
    # Stripped as kubectl does: a token file often ends with a newline, which no header allows.
    authorization = (configuration.api_key.get("BearerToken") or "").strip() or None
    where = f"context {name!r} of {source}"
    if ("exec" in user or "auth-provider" in user) and not authorization and not cert:
        plugin = "exec plugin" if "exec" in user else "auth-provider"
        detail = "; ".join(errors) or "it printed no token"
        raise CredentialsError(
            f"{where}: the user's {plugin} gave no credentials ({detail}); run it by hand "
            "(or `kubectl get ns`) to log in again")
    expires = _expiry(getattr(loader, "expiry", None))
    reread_at = time.time() + FILE_TOKEN_SECONDS if "tokenFile" in user else None
    namespace = (loader.current_context.get("context") or {}).get("namespace") or "default"
    return Credentials(
        server=str(configuration.host), namespace=str(namespace), context=name, source=source,
        ca_pem=ca, cert_pem=cert, key_pem=key, authorization=authorization,
        insecure=not configuration.verify_ssl, tls_server_name=configuration.tls_server_name,
        expires=expires, reread_at=reread_at,
    )


def _in_cluster(env: Mapping[str, str], account_dir: Path) -> Credentials:
    from kubernetes.client import Configuration
    from kubernetes.config import ConfigException, incluster_config

    configuration = Configuration()
    try:
        incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=str(account_dir / "token"), cert_filename=str(account_dir / "ca.crt"),
            try_refresh_token=False, environ=env,
        ).load_and_set(configuration)
        ca = _read(configuration.ssl_ca_cert)
        namespace = (account_dir / "namespace").read_text().strip() \
            if (account_dir / "namespace").exists() else "default"
    except (ConfigException, OSError) as e:
        raise CredentialsError(f"the in-cluster service account ({account_dir}): {e}") from None
    return Credentials(
        server=str(configuration.host), namespace=namespace,
        source=f"the in-cluster service account ({account_dir})", ca_pem=ca,
        authorization=(configuration.api_key.get("BearerToken") or "").strip() or None,
        reread_at=time.time() + FILE_TOKEN_SECONDS,
    )


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def _expiry(value: Any) -> float | None:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return float(value.timestamp())
    return None


@contextlib.contextmanager
def _private_folder() -> Iterator[str]:
    """A folder only we can read, in memory where the system has one, removed afterwards
    together with the package's record of the files it wrote there."""
    from kubernetes.config import kube_config

    memory = _MEMORY_FOLDER if _MEMORY_FOLDER.is_dir() and os.access(_MEMORY_FOLDER, os.W_OK) \
        else None
    folder = tempfile.mkdtemp(prefix="kubetune-", dir=memory)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        cache = getattr(kube_config, "_temp_files", None)
        if isinstance(cache, dict):
            for key, path in list(cache.items()):
                if str(path).startswith(folder):
                    del cache[key]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().strip().replace("\n", " "))


@contextlib.contextmanager
def _plugin_errors() -> Iterator[list[str]]:
    """What the package logs (and otherwise drops) while it runs an exec plugin."""
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.messages
    finally:
        root.removeHandler(handler)


class Login:
    """The current credentials; loaded again once expired, or after ``invalidate``.

    ``loader`` is called with no arguments (default: ``load``); a fixed ``Credentials`` can be
    given instead, which is never reloaded.
    """

    def __init__(self, loader: Callable[[], Credentials] | Credentials | None = None, *,
                 context: str | None = None) -> None:
        self._loader: Callable[[], Credentials]
        if isinstance(loader, Credentials):
            fixed = loader
            self._loader = lambda: fixed
        else:
            self._loader = loader or (lambda: load(context=context))
        self._lock = threading.Lock()
        self._current: Credentials | None = None

    def current(self) -> Credentials:
        """Valid credentials, loaded now if there are none or they have expired."""
        with self._lock:
            if self._current is None or self._current.expired():
                self._current = self._loader()
            return self._current

    def cached(self) -> Credentials | None:
        """The current credentials if they need no load (cheap, for the hot path)."""
        current = self._current
        return None if current is None or current.expired() else current

    def invalidate(self, refused: Credentials) -> None:
        """The API server refused ``refused`` (401): the next ``current`` loads anew."""
        with self._lock:
            if self._current is refused:
                self._current = None
