"""How connections to a provider leave the machine: directly or through an HTTP proxy (a CONNECT tunnel),
trusting which certificates, presenting which client certificate (mutual TLS).

A provider's `proxy` setting wins; without one, the standard variables apply: HTTPS_PROXY for https
origins, HTTP_PROXY for http ones (either in lower case too), and NO_PROXY lists hosts, domains (`.corp` or
`corp`), addresses and CIDR blocks that are reached directly (`*` for all). Every call goes through a
CONNECT tunnel, so TLS and HTTP/2 run end to end with the provider; the proxy sees only the host and port.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

_MAX_PROXY_HEAD = 16 * 1024


class ProxyError(OSError):
    """The proxy refused or broke the tunnel (its status line says why)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)  # a Proxy-Authorization header value

    @classmethod
    def parse(cls, url: str) -> Proxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", ""):
            raise ValueError(f"only http:// proxies are supported (CONNECT over plain HTTP), not {parts.scheme}://")
        if not parts.hostname:
            raise ValueError("the proxy URL names no host")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode()
        return cls(parts.hostname, parts.port or 80, authorization)


def _bypassed(host: str, no_proxy: str) -> bool:
    host = host.lower().strip("[]")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        entry = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry  # a port is ignored
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = entry.lstrip("*").lstrip(".")
        if host == domain or host.endswith("." + domain):
            return True
    return False


def proxy_for(host: str, tls: bool, configured: str | None, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy a connection to `host` goes through, or None for a direct one. `configured` is the
    provider's `proxy` setting: a URL, or "none" (direct, whatever the environment says)."""
    if configured is not None:
        return None if configured.lower() in ("none", "") else Proxy.parse(configured)
    names = ("HTTPS_PROXY", "https_proxy") if tls else ("HTTP_PROXY", "http_proxy")
    url = next((environ[name] for name in names if environ.get(name)), None)
    if not url:
        return None
    no_proxy = environ.get("NO_PROXY") or environ.get("no_proxy") or ""
    return None if _bypassed(host, no_proxy) else Proxy.parse(url)


def tls_context(
    ca_file: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
    alpn: list[str] | None = None,
) -> ssl.SSLContext:
    """The TLS a provider is reached with: the system's trust store, or `ca_file`'s; a client certificate
    (and its key, if not in the same file) for mutual TLS."""
    context = ssl.create_default_context(cafile=ca_file)
    if client_cert:
        context.load_cert_chain(client_cert, client_key)
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


@dataclass(frozen=True, slots=True)
class Egress:
    """One provider's way out: its TLS context (None for http) and its proxy (None: direct)."""

    tls: ssl.SSLContext | None
    proxy: Proxy | None = None

    async def connect(
        self, loop: asyncio.AbstractEventLoop, factory: Callable[[], asyncio.Protocol], host: str, port: int
    ) -> asyncio.Protocol:
        """A connection to `host:port` made by `factory`'s protocol (TLS when the context is set)."""
        server_hostname = host if self.tls is not None else None
        if self.proxy is None:
            _, protocol = await loop.create_connection(
                factory, host, port, ssl=self.tls, server_hostname=server_hostname
            )
            return protocol
        return await _tunnel(loop, factory, self.proxy, host, port, self.tls)


class _TunnelSetup(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT; nothing else comes before the tunnel is handed over."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.head = bytearray()
        self.answered: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.answered.done():
            return
        self.head += data
        if b"\r\n\r\n" in self.head:
            self.answered.set_result(None)
        elif len(self.head) > _MAX_PROXY_HEAD:
            self.answered.set_exception(ProxyError("the proxy's answer to CONNECT is too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_exception(ProxyError("the proxy closed the connection during CONNECT"))


async def _tunnel(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.Protocol],
    proxy: Proxy,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
) -> asyncio.Protocol:
    transport, setup = await loop.create_connection(lambda: _TunnelSetup(loop), proxy.host, proxy.port)
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if proxy.authorization:
            lines.append(f"Proxy-Authorization: {proxy.authorization}")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await setup.answered
        status_line = bytes(setup.head).split(b"\r\n", 1)[0].decode("latin-1", "replace")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].startswith("2"):
            raise ProxyError(f"the proxy refused the tunnel to {authority}: {status_line[:120]}")
        leftover = bytes(setup.head).split(b"\r\n\r\n", 1)[1]
        protocol = factory()
        if tls is not None:
            if leftover:
                raise ProxyError("the proxy sent bytes before the TLS handshake")
            transport.set_protocol(protocol)  # start_tls takes the transport over from here
            secured = await loop.start_tls(transport, protocol, tls, server_hostname=host)
            if secured is None:
                raise ProxyError("the TLS handshake through the proxy did not complete")
            transport = secured
        else:
            transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if leftover:
            protocol.data_received(leftover)
        return protocol
    except BaseException:
        transport.close()
        raise
