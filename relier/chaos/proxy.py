"""A small TCP proxy that can cut every connection through it, for ``rl chaos partition``.

It listens on 127.0.0.1 (a free port), forwards each connection to the
upstream address, and runs its own asyncio loop in a daemon thread. While
:meth:`TcpProxy.cut` is in force every proxied connection is closed and new
ones are closed as soon as they are accepted: the processes behind it see
Redis go away, exactly as on a network partition whose packets are
rejected. :meth:`TcpProxy.restore` lets connections through again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["TcpProxy"]

_CHUNK = 65_536


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0
        self.refused = 0
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> TcpProxy:
        """Listen (on a free port, then in :attr:`port`) and serve in a thread."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> int:
        """Close every proxied connection and refuse new ones; returns how many were closed."""
        return asyncio.run_coroutine_threadsafe(self._set_cut(True), self._loop).result(10)

    def restore(self) -> None:
        """Let connections through again."""
        asyncio.run_coroutine_threadsafe(self._set_cut(False), self._loop).result(10)

    def close(self) -> None:
        """Stop listening, close every connection and end the thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _set_cut(self, cut: bool) -> int:
        self._cut = cut
        if not cut:
            return 0
        closed = len(self._writers)
        for writer in list(self._writers):
            self._abort(writer)
        return closed

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._set_cut(True)

    def _abort(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)
        transport = writer.transport
        # abort(): an RST now, not a polite FIN after buffered data.
        transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.refused += 1
            self._abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.refused += 1
            self._abort(writer)
            return
        self.accepted += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer, writer), self._pipe(up_reader, writer, up_writer)
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: asyncio.StreamWriter
    ) -> None:
        try:
            while not self._cut:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side ended: end both, as a direct connection would.
            self._abort(writer)
            self._abort(peer)
