"""Forwards TCP connections from ADDRESS:PORT to 127.0.0.1:PORT, for each PORT.

    python3 forward.py ADDRESS PORT [PORT...]

scripts/stack sam runs it on the gateway address of the Docker network the
`sam local` containers join, so that a function in a container reaches the
stack's servers, which listen on loopback only. It listens on that one address
(the host's side of a bridge this machine created), never on every interface,
and connects only to 127.0.0.1. Standard library only; runs until killed.
"""

import asyncio
import sys


async def pipe(reader, writer):
    """Copies until EOF, then half-closes: the other direction may still be talking."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except ConnectionError:
        writer.close()


async def serve(address, port):
    async def accept(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_writer.close()  # nothing listens on loopback: refuse, as the server itself would
            return
        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
        client_writer.close()
        upstream_writer.close()

    server = await asyncio.start_server(accept, address, port, backlog=512)
    print(f"forwarding {address}:{port} -> 127.0.0.1:{port}", flush=True)
    return server


async def main(address, ports):
    servers = [await serve(address, port) for port in ports]
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], [int(p) for p in sys.argv[2:]]))
