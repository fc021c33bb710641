"""aiobotocore's HTTP session with one TLS context shared by every client of an AwsClients.

aiobotocore builds a fresh ``ssl.SSLContext`` for each client's connection pool and loads the
whole CA bundle into it (~0.9 MB of OpenSSL memory each); the fleet alone uses two clients per
(profile, region). :func:`shared_tls_session_class` returns an ``AIOHTTPSession`` subclass whose
clients reuse the contexts built for the same settings (an ``SSLContext`` is safe to share
between connections). Where aiobotocore lacks the hook this relies on, the subclass behaves
exactly like its base.
"""

from __future__ import annotations

import threading
from typing import Any

from aiobotocore.httpsession import AIOHTTPSession  # type: ignore[import-untyped,unused-ignore]

__all__ = ["shared_tls_session_class"]


def shared_tls_session_class() -> type[Any]:
    """A new ``AIOHTTPSession`` subclass with its own cache of TLS contexts (one per owner, so
    settings of different :class:`~ssmtui.aws.clients.AwsClients` never mix)."""
    cache: dict[tuple[Any, ...], Any] = {}
    lock = threading.Lock()  # aiobotocore builds contexts in a worker thread

    class SharedTlsSession(AIOHTTPSession):  # type: ignore[misc,unused-ignore]
        """``AIOHTTPSession`` reusing TLS contexts across clients."""

        def _build_ssl_contexts(self, proxy_url: Any) -> Any:
            key = (
                repr(self._verify),
                self._cert_file,
                self._key_file,
                proxy_url,
                repr(getattr(self._proxy_config, "settings", None)),
            )
            with lock:
                contexts = cache.get(key)
                if contexts is None:
                    contexts = cache[key] = super()._build_ssl_contexts(proxy_url)
            return contexts

    return SharedTlsSession
