"""A TCP proxy that can cut its connections: "kill the client's socket, not the client".

Each connection accepted on a loopback port is forwarded, byte for byte, to a target (Starling's
STARTTLS port); TLS passes through opaquely, since STARTTLS happens end to end. On demand:

- freeze(): from now on the bytes of the current connections are read and dropped, in both
  directions, as on a network path that died (both ends' writes still complete); a close or a
  reset from one end does not reach the other either;
- cut(): both sockets of every current connection are closed abruptly (SO_LINGER 0, so each end
  gets a TCP reset, not a FIN), without either end closing its stream.

New connections are accepted and forwarded normally after either.

As a module (asyncio, in the caller's loop):

    proxy = CutProxy("127.0.0.1", 5222)
    port = await proxy.start()
    ...; proxy.freeze(); proxy.cut(); ...
    await proxy.close()

As a script, for tests driven by hand or from a shell script:

    python3 cutproxy.py TARGET_HOST TARGET_PORT [--port-file FILE]

prints "listening PORT" (and writes PORT to FILE), then cuts every current connection on
SIGUSR1 and freezes them on SIGUSR2, logging each event on stdout; SIGTERM or SIGINT stops it.
"""
import asyncio
import signal
import socket
import struct
import sys


class _Link:
    """One proxied connection: the client's side and the upstream side."""

    def __init__(self, client_writer, upstream_writer):
        self.writers = (client_writer, upstream_writer)
        self.frozen = False
        self.tasks = []


class CutProxy:
    def __init__(self, target_host, target_port, listen_host="127.0.0.1", listen_port=0, log=None):
        self.target = (target_host, target_port)
        self.listen = (listen_host, listen_port)
        self.port = None
        self.accepted = 0
        self.cuts = 0
        self._links = set()
        self._server = None
        self._log = log or (lambda _msg: None)

    async def start(self):
        self._server = await asyncio.start_server(self._accept, *self.listen)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self):
        if self._server is not None:
            self._server.close()
        self.cut()
        if self._server is not None:
            await self._server.wait_closed()
        # Let the cut connections' tasks see their cancellation.
        await asyncio.sleep(0)

    def connections(self):
        return len(self._links)

    def freeze(self):
        """Drop every byte of the current connections from now on, both ways."""
        for link in self._links:
            link.frozen = True
        self._log(f"froze {len(self._links)} connection(s)")
        return len(self._links)

    def cut(self):
        """Reset both sockets of every current connection. Returns how many were cut."""
        links, self._links = self._links, set()
        for link in links:
            for task in link.tasks:
                task.cancel()
            for w in link.writers:
                _reset(w)
        self.cuts += len(links)
        self._log(f"cut {len(links)} connection(s)")
        return len(links)

    async def _accept(self, client_reader, client_writer):
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError as e:
            self._log(f"upstream connection failed: {e}")
            _reset(client_writer)
            return
        link = _Link(client_writer, up_writer)
        self._links.add(link)
        self._log(f"connection {self.accepted} from {client_writer.get_extra_info('peername')}")
        link.tasks = [
            asyncio.ensure_future(self._pump(link, client_reader, up_writer)),
            asyncio.ensure_future(self._pump(link, up_reader, client_writer)),
        ]
        try:
            await asyncio.gather(*link.tasks, return_exceptions=True)
        except asyncio.CancelledError:
            # The loop is shutting down (the proxy was cut and closed just before).
            return
        if link in self._links:
            # Both directions ended by themselves (each end closed): close quietly.
            self._links.discard(link)
            for w in link.writers:
                w.close()

    async def _pump(self, link, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    # A FIN from one end is passed on as a FIN to the other, unless the path is
                    # frozen: then nothing arrives, not even that.
                    if not link.frozen and writer.can_write_eof():
                        writer.write_eof()
                    return
                if not link.frozen:
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            # One end reset: reset the other too, as a cut would (not through a frozen path).
            if link in self._links and not link.frozen:
                self._links.discard(link)
                for w in link.writers:
                    _reset(w)


def _reset(writer):
    """Close a stream's socket with SO_LINGER 0: the peer gets a reset, and unsent data is dropped."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


async def _main(argv):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--port-file")
    args = parser.parse_args(argv)

    def log(msg):
        print(msg, flush=True)

    proxy = CutProxy(args.host, args.port, listen_port=args.listen_port, log=log)
    port = await proxy.start()
    log(f"listening {port}")
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(f"{port}\n")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, proxy.cut)
    loop.add_signal_handler(signal.SIGUSR2, proxy.freeze)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await proxy.close()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
