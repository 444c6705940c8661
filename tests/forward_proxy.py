"""A small HTTP forward proxy for the tests (asyncio, loopback): Basic proxy auth, `Via` and `X-Forwarded-For`.

It forwards absolute-form requests (`GET http://host:port/path`), one request per connection, and counts
what went through it, so a test can prove which shop's traffic left through which proxy.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections import Counter
from urllib.parse import urlsplit


class ForwardProxy:
    """`start()` serves on 127.0.0.1 in a thread; `url` (with credentials when set) is what a shop configures."""

    def __init__(self, name: str, exit_address: str = "127.0.0.1", username: str = "", password: str = "") -> None:
        """`exit_address`: the loopback address it connects onwards from (127.0.0.2, …): the address the
        backend sees, as a shop's proxy exit IP."""
        self.name, self.exit_address, self.username, self.password = name, exit_address, username, password
        self.requests: Counter[str] = Counter()  # "METHOD path" → count
        self.refused = 0  # requests without the right Proxy-Authorization (answered 407)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"proxy-{name}", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        auth = f"{self.username}:{self.password}@" if self.username else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def start(self) -> ForwardProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.run_until_complete(asyncio.sleep(0.05))  # the closed transports' sockets really close
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = [tuple(x.split(":", 1)) for x in lines[1:] if ":" in x]
            fields = {k.strip().lower(): v.strip() for k, v in headers}
            if self.username and not self._authorised(fields.get("proxy-authorization", "")):
                self.refused += 1
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            if method == "CONNECT":  # Playwright's request API tunnels even plain HTTP
                await self._tunnel(target, reader, writer)
                return
            body = await reader.readexactly(int(fields.get("content-length") or 0))
            url = urlsplit(target)
            if not url.hostname:
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return
            path = url.path + (f"?{url.query}" if url.query else "")
            self.requests[f"{method} {url.path}"] += 1
            peer = writer.get_extra_info("peername")[0]
            keep = [(k, v) for k, v in headers if k.strip().lower() not in
                    ("proxy-authorization", "proxy-connection", "connection", "keep-alive")]
            keep += [("Via", f" 1.1 {self.name}"), ("X-Forwarded-For", f" {peer}"), ("Connection", " close")]
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80,
                                                                 local_addr=(self.exit_address, 0))
            try:  # closed whatever happens, a stop cancelling this task included
                up_writer.write(f"{method} {path} {version}\r\n".encode("latin-1")
                                + "".join(f"{k}:{v}\r\n" for k, v in keep).encode("latin-1") + b"\r\n" + body)
                await up_writer.drain()
                while chunk := await up_reader.read(65536):
                    writer.write(chunk)
                    await writer.drain()
            finally:
                up_writer.close()
        except (asyncio.IncompleteReadError, OSError, ValueError):
            pass
        finally:
            writer.close()

    async def _tunnel(self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, _, port = target.rpartition(":")
        self.requests[f"CONNECT {target}"] += 1
        up_reader, up_writer = await asyncio.open_connection(host, int(port), local_addr=(self.exit_address, 0))
        try:
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
        except BaseException:
            up_writer.close()
            raise

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()

    def _authorised(self, value: str) -> bool:
        want = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return value == f"Basic {want}"
