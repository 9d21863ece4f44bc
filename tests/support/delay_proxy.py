"""A TCP proxy on loopback that adds a fixed delay each way: a 10-50 ms network between the tool and a real server,
without traffic leaving the machine. What arrives is forwarded unchanged and in order ``delay`` seconds after it
arrived, so a request-response exchange costs 2 x ``delay`` more (``delay=0.015`` is a 30 ms round trip); bandwidth
is not limited. A half-close (EOF) and a close travel the same delay.

Two ways to run it, the same code:

* :class:`DelayProxy`: a thread with its own event loop in the caller's process; it counts connections (``peak`` is
  the most the client held open at once: what a bound on concurrency shows). For tests.
* :class:`DelayProcess` (``python -m tests.support.delay_proxy HOST PORT DELAY``): its own process, so a benchmark's
  proxy shares no interpreter lock with anything and its CPU time is its own (``cpu_seconds``, from /proc).

Per chunk the cost is one deque append and, when the direction is idle, one timer: asyncio protocols, not streams
(no task, queue or ``drain`` per chunk); reads of up to 256 KiB, the kernel's autotuned socket buffers, and a 4 MiB
write high-water mark, past which the side feeding a slow reader pauses instead of buffering without bound.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

WRITE_HIGH_WATER = 4 * 1024 * 1024  # bytes buffered for a socket before its feeding side pauses reading
_EOF = b""  # queued after the last chunk of a direction: half-close the other side
_CLOSE = None  # queued when a side is gone: close the other side once what is queued before it is written


class _Stats:
    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.connections = 0
        self.sides: set[_Side] = set()


class _Side(asyncio.Protocol):
    """One socket of a proxied connection. What it receives goes, ``delay`` later, to ``peer``'s socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float, stats: _Stats) -> None:
        self.loop = loop
        self.delay = delay
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None  # None until both sockets are connected
        # What this socket received, due at the peer's: (when due, bytes | _EOF | _CLOSE), in arrival order.
        self.outbound: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.gone = False
        self.eof_forwarded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.stats.sides.add(self)

    def data_received(self, data: bytes) -> None:
        self._queue(data)

    def eof_received(self) -> bool:
        self._queue(_EOF)
        return True  # keep the socket open for the other direction (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.sides.discard(self)
        if not self.gone:
            self.gone = True
            self._queue(_CLOSE)

    # Flow control: this socket's buffer is full, so the side feeding it stops reading until it drains.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.gone:
            self.peer.transport.resume_reading()

    def _queue(self, item: bytes | None) -> None:
        self.outbound.append((self.loop.time() + self.delay, item))
        self.kick()

    def kick(self) -> None:
        """Have the oldest queued item forwarded when it is due (one timer per direction, not one per chunk)."""
        if self.timer is None and self.outbound and self.peer is not None:
            self.timer = self.loop.call_at(self.outbound[0][0], self._flush)

    def _flush(self) -> None:
        self.timer = None
        assert self.peer is not None and self.peer.transport is not None
        target = self.peer.transport
        now = self.loop.time()
        while self.outbound and self.outbound[0][0] <= now:
            _, item = self.outbound.popleft()
            if target.is_closing():
                continue
            if item is _CLOSE:
                target.close()  # once what is buffered is written
            elif item == _EOF:
                self.eof_forwarded = True
                if self.peer.eof_forwarded:  # both directions ended: the connection is over
                    target.close()
                    if self.transport is not None:
                        self.transport.close()
                elif target.can_write_eof():
                    target.write_eof()
            else:
                target.write(item)
        self.kick()


class _Downstream(_Side):
    """The client's socket: connects to the target, then the two sides forward to each other."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float, stats: _Stats, target: tuple[str, int]) -> None:
        super().__init__(loop, delay, stats)
        self.target = target
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.stats.open += 1
        self.counted = True
        self.stats.connections += 1
        self.stats.peak = max(self.stats.peak, self.stats.open)
        # What the client sends before the target accepts is queued meanwhile, with its arrival time.
        self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            _, upstream = await self.loop.create_connection(
                lambda: _Side(self.loop, self.delay, self.stats), *self.target
            )
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        upstream.peer, self.peer = self, upstream
        self.kick()
        upstream.kick()

    def eof_received(self) -> bool:
        self._uncount()
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._uncount()
        super().connection_lost(exc)

    def _uncount(self) -> None:
        # Open is what the client holds: a connection it has closed (its FIN is here) no longer counts, though its
        # close still takes the delay to reach the server.
        if self.counted:
            self.counted = False
            self.stats.open -= 1


async def _serve(target: tuple[str, int], delay: float, stats: _Stats, port: int = 0) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Downstream(loop, delay, stats, target), "127.0.0.1", port, backlog=1024)


class DelayProxy:
    """The proxy on a thread of this process, with connection counts (``open``, ``peak``, ``connections``)."""

    def __init__(self, target_host: str, target_port: int, delay: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self._stats = _Stats()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def open(self) -> int:
        return self._stats.open

    @property
    def connections(self) -> int:
        return self._stats.connections

    @property
    def peak(self) -> int:
        return self._stats.peak

    @peak.setter
    def peak(self, value: int) -> None:
        self._stats.peak = value

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(_serve(self.target, self.delay, self._stats))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for side in list(self._stats.sides):  # connections still open end now, not with the loop
                if side.transport is not None:
                    side.transport.abort()
            for task in asyncio.all_tasks():  # connects under way
                if task is not asyncio.current_task():
                    task.cancel()
            await asyncio.sleep(0)  # the aborted sockets close in callbacks of the next loop pass

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@contextlib.contextmanager
def delayed(target_host: str, target_port: int, delay: float) -> Iterator[DelayProxy]:
    proxy = DelayProxy(target_host, target_port, delay)
    try:
        yield proxy
    finally:
        proxy.close()


class DelayProcess:
    """The proxy as its own process (``python -m tests.support.delay_proxy``): what a benchmark puts in front of a
    server, so the proxy's CPU is neither the benchmark's nor the measured tool's."""

    def __init__(self, target_host: str, target_port: int, delay: float) -> None:
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": str(root)}
        cmd = [sys.executable, "-m", "tests.support.delay_proxy", target_host, str(target_port), str(delay)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=root)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.isdigit():
            self.proc.kill()
            raise RuntimeError(f"delay proxy did not start: {line!r}")
        self.port = int(line)
        self.delay = delay

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """user + system CPU of the proxy process so far (/proc/PID/stat)."""
        return process_cpu_seconds(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # the process ends when its stdin does
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a live process, from /proc/PID/stat (fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _main(host: str, port: int, delay: float) -> None:
    server = await _serve((host, port), delay, _Stats())
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    # Ends when the parent closes our stdin (or dies): no orphan proxy outlives its benchmark.
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("delay", type=float, help="seconds each way")
    args = parser.parse_args()
    asyncio.run(_main(args.host, args.port, args.delay))


if __name__ == "__main__":
    main()
