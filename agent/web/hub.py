"""Server-sent events: every open page hears only which topic changed ("items", "shops") — the first change at
once, a burst after it as one event a second — then refetches; a comment every 15 s keeps an idle stream open."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

KEEPALIVE = 15.0
COALESCE = 1.0  # changes after an event wait for this and go out as one (a round of checks: one refetch a second)
MAX_CLIENTS = 100


class Hub:
    """Fan-out of "this changed" to the connected pages; `publish` is cheap and safe from any loop callback."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[str | None]] = set()
        self._pending: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._last = -COALESCE  # when events last went out (the loop's clock)
        self.versions: dict[str, int] = {}  # topic → changes so far (what the page's cache is keyed by)

    def publish(self, topic: str) -> None:
        self.versions[topic] = self.versions.get(topic, 0) + 1
        if not self.queues:
            return
        self._pending.add(topic)
        if self._timer is None:  # the first change goes out at once, the ones after it at most once per COALESCE
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(max(loop.time(), self._last + COALESCE), self._flush)

    def _flush(self) -> None:
        self._timer = None
        self._last = asyncio.get_running_loop().time()
        topics, self._pending = sorted(self._pending), set()
        for q in list(self.queues):
            for t in topics:
                if q.qsize() < 50:  # a stuck client does not grow without bound
                    q.put_nowait(t)

    def close(self) -> None:
        """Shutdown: every stream ends now (aiohttp waits for open handlers otherwise)."""
        for q in list(self.queues):
            q.put_nowait(None)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if len(self.queues) >= MAX_CLIENTS:
            raise web.HTTPServiceUnavailable(text="too many live pages (打开的页面过多)")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q: asyncio.Queue[str | None] = asyncio.Queue()
        self.queues.add(q)
        try:
            await resp.write(b"retry: 3000\nevent: hello\ndata: {}\n\n")
            while True:
                try:
                    topic = await asyncio.wait_for(q.get(), KEEPALIVE)
                except TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if topic is None:
                    break
                await resp.write(f"event: {topic}\ndata: {json.dumps({'topic': topic})}\n\n".encode())
        except ConnectionResetError:  # the page went away
            return resp
        finally:
            self.queues.discard(q)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp
