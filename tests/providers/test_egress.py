"""Egress: provider calls through a local CONNECT proxy (HTTP/1.1 and HTTP/2, https and http), proxy
authentication, NO_PROXY, a provider's own CA bundle, and client certificates for mutual TLS."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config

from sluicegate.config.schema import ProviderConfig
from sluicegate.providers.base import Endpoint, UpstreamRequest
from sluicegate.providers.egress import Egress, Proxy, proxy_for, tls_context
from sluicegate.providers.http import UpstreamClient
from sluicegate.providers.http2 import Http2Pool
from sluicegate.providers.transport import ConnectionPool, TransportError
from tests.providers.test_http2 import TIMEOUTS, free_port


class ConnectProxy:
    """A CONNECT proxy on loopback that notes each tunnel; with `credentials`, it wants Basic auth (407)."""

    def __init__(self, credentials: str | None = None) -> None:
        self.tunnels: list[str] = []
        self.credentials = credentials
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, target, _ = head.split("\r\n", 1)[0].split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            writer.close()
            return
        if self.credentials is not None:
            expected = "Proxy-Authorization: Basic " + base64.b64encode(self.credentials.encode()).decode()
            if expected not in head:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                writer.close()
                return
        host, port = target.rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            writer.close()
            return
        self.tunnels.append(target)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    body = orjson.dumps({"version": scope["http_version"], "path": scope["path"]})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class Origin:
    def __init__(self, url: str, ca: Path, client_ca: trustme.CA) -> None:
        self.url = url
        self.ca = ca  # the CA its certificate chains to (not in the system's trust store)
        self.client_ca = client_ca


async def _serve(tmp: Path, *, tls: bool, alpn: list[str], require_client_cert: bool = False) -> AsyncIterator[Origin]:
    ca, client_ca = trustme.CA(), trustme.CA()
    config = Config()
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.loglevel = "WARNING"
    if tls:
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
        config.certfile = config.keyfile = str(tmp / "server.pem")
        config.alpn_protocols = alpn
        if require_client_cert:
            client_ca.cert_pem.write_to_path(str(tmp / "client-ca.pem"))
            config.ca_certs = str(tmp / "client-ca.pem")
            config.verify_mode = ssl.CERT_REQUIRED
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    stop = asyncio.Event()
    server = asyncio.get_running_loop().create_task(serve(_echo, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.02)
    yield Origin(f"{'https' if tls else 'http'}://127.0.0.1:{port}", tmp / "ca.pem", client_ca)
    stop.set()
    await asyncio.wait_for(server, 10)


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    running = ConnectProxy()
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def https_origin(tmp_path: Path) -> AsyncIterator[Origin]:
    async for origin in _serve(tmp_path, tls=True, alpn=["h2", "http/1.1"]):
        yield origin


async def _get(pool: ConnectionPool | Http2Pool, path: str = "/v1/chat/completions") -> dict[str, Any]:
    exchange = await pool.open("POST", path, {"content-type": "application/json"}, b"{}", **TIMEOUTS)
    assert exchange.status == 200
    return orjson.loads(await exchange.read_body())  # type: ignore[no-any-return]


def test_which_proxy_the_environment_and_the_provider_choose() -> None:
    env = {"HTTPS_PROXY": "http://user:p%40ss@proxy.corp:3128", "http_proxy": "proxy.corp:8080"}
    chosen = proxy_for("api.openai.com", True, None, env)
    assert chosen == Proxy("proxy.corp", 3128, "Basic " + base64.b64encode(b"user:p@ss").decode())
    assert proxy_for("vllm.local", False, None, env) == Proxy("proxy.corp", 8080)
    assert proxy_for("api.openai.com", True, "none", env) is None  # the provider says: direct
    assert proxy_for("api.openai.com", True, "http://other:9", {}) == Proxy("other", 9)
    bypass = {**env, "NO_PROXY": "localhost, .internal.corp,10.0.0.0/8,azure.example.com:443"}
    for host in ("localhost", "llm.internal.corp", "internal.corp", "10.1.2.3", "azure.example.com"):
        assert proxy_for(host, True, None, bypass) is None, host
    for host in ("api.anthropic.com", "notinternal.corp", "11.0.0.1"):
        assert proxy_for(host, True, None, bypass) is not None, host
    assert proxy_for("anything", True, None, {**env, "no_proxy": "*"}) is None


async def test_http_1_1_over_tls_through_the_proxy_with_the_providers_ca(
    proxy: ConnectProxy, https_origin: Origin
) -> None:
    egress = Egress(tls_context(str(https_origin.ca)), Proxy("127.0.0.1", proxy.port))
    pool = ConnectionPool(https_origin.url, 4, egress=egress)
    assert (await _get(pool))["version"] == "1.1"
    assert (await _get(pool))["path"] == "/v1/chat/completions"  # the tunnel is kept alive and reused
    assert proxy.tunnels == [https_origin.url.removeprefix("https://")]
    pool.close()
    untrusted = ConnectionPool(https_origin.url, 4, egress=Egress(tls_context(), Proxy("127.0.0.1", proxy.port)))
    with pytest.raises(TransportError, match="certificate verify failed"):
        await _get(untrusted)  # the system's trust store does not know the provider's private CA


async def test_http_2_through_the_proxy(proxy: ConnectProxy, https_origin: Origin) -> None:
    h2 = Egress(tls_context(str(https_origin.ca), alpn=["h2", "http/1.1"]), Proxy("127.0.0.1", proxy.port))
    pool = Http2Pool(https_origin.url, 4, egress=h2)
    answers = await asyncio.gather(*(_get(pool) for _ in range(5)))
    assert {a["version"] for a in answers} == {"2"}
    assert len(proxy.tunnels) == 1  # five calls multiplexed on one tunnelled connection
    pool.close()


async def test_plain_http_through_the_proxy_and_proxy_authentication(tmp_path: Path) -> None:
    guarded = ConnectProxy(credentials="gw:s3cret")
    await guarded.start()
    try:
        async for origin in _serve(tmp_path, tls=False, alpn=[]):
            without = ConnectionPool(origin.url, 2, egress=Egress(None, Proxy("127.0.0.1", guarded.port)))
            with pytest.raises(TransportError, match="407"):
                await _get(without)
            proxy = proxy_for("127.0.0.1", False, None, {"HTTP_PROXY": f"http://gw:s3cret@127.0.0.1:{guarded.port}"})
            pool = ConnectionPool(origin.url, 2, egress=Egress(None, proxy))
            assert (await _get(pool))["version"] == "1.1"
            assert guarded.tunnels == [origin.url.removeprefix("http://")]
            pool.close()
    finally:
        await guarded.stop()


async def test_mutual_tls_presents_the_client_certificate(tmp_path: Path, proxy: ConnectProxy) -> None:
    async for origin in _serve(tmp_path, tls=True, alpn=["http/1.1"], require_client_cert=True):
        client = origin.client_ca.issue_cert("sluicegate-gateway")
        client.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "client.pem"))
        anonymous = ConnectionPool(origin.url, 2, egress=Egress(tls_context(str(origin.ca))))
        with pytest.raises(TransportError):
            await _get(anonymous)
        for via in (None, Proxy("127.0.0.1", proxy.port)):
            identified = Egress(tls_context(str(origin.ca), str(tmp_path / "client.pem")), via)
            assert (await _get(ConnectionPool(origin.url, 2, egress=identified)))["version"] == "1.1"


async def test_provider_settings_and_the_environment_reach_the_upstream_client(
    proxy: ConnectProxy, https_origin: Origin
) -> None:
    def endpoint(**settings: Any) -> Endpoint:
        config = ProviderConfig(
            kind="openai", base_url=f"{https_origin.url}/v1", ca_file=str(https_origin.ca), **settings
        )
        return Endpoint("p", config, "k")

    request = UpstreamRequest(f"{https_origin.url}/v1/chat/completions", {"content-type": "application/json"}, b"{}")
    through_setting = UpstreamClient(environ={})
    assert (await through_setting.call(endpoint(proxy=proxy.url), request)).status == 200
    assert len(proxy.tunnels) == 1
    through_env = UpstreamClient(environ={"HTTPS_PROXY": proxy.url})
    assert (await through_env.call(endpoint(), request)).status == 200
    assert len(proxy.tunnels) == 2
    bypassed = UpstreamClient(environ={"HTTPS_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"})
    assert (await bypassed.call(endpoint(), request)).status == 200
    forced_direct = UpstreamClient(environ={"HTTPS_PROXY": proxy.url})
    assert (await forced_direct.call(endpoint(proxy="none"), request)).status == 200
    assert len(proxy.tunnels) == 2  # neither went through the proxy
    h2 = UpstreamClient(environ={"HTTPS_PROXY": proxy.url})
    assert orjson.loads((await h2.call(endpoint(http2=True), request)).body)["version"] == "2"
    for client in (through_setting, through_env, bypassed, forced_direct, h2):
        await client.close()


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"proxy": "http://user:pw@proxy:3128"}, "must not hold credentials"),
        ({"proxy": "socks5://proxy:1080"}, "http://host:port"),
        ({"ca_file": "/no/such/ca.pem"}, "ca_file: no such file"),
        ({"client_key": __file__}, "client_key needs client_cert"),
    ],
)
def test_bad_egress_settings_are_refused(settings: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ProviderConfig(kind="openai", base_url="https://api.openai.com/v1", **settings)  # type: ignore[arg-type]
