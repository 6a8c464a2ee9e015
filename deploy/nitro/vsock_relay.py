#!/usr/bin/env python3
"""Byte relay between a Unix socket and AF_VSOCK (AWS Nitro Enclaves), in either direction.

The enclavia host talks to its enclave over one Unix socket (length-prefixed frames, ciphertext only). A Nitro
enclave has no network and no shared filesystem: only vsock. Two relays bridge it, one on each side:

    parent:  vsock_relay.py --listen unix:/run/enclavia/enclave.sock  --connect vsock:16:5005
    enclave: vsock_relay.py --listen vsock:ANY:5005                   --connect unix:/run/enclave.sock

and the same pair in the other direction for the host's services socket (blob store, egress), which the
enclave dials:

    enclave: vsock_relay.py --listen unix:/run/host.sock              --connect vsock:3:5006
    parent:  vsock_relay.py --listen vsock:ANY:5006                   --connect unix:/run/enclavia/host.sock

The relay copies bytes and nothing else: it parses and logs nothing. ``tcp:HOST:PORT`` is accepted too (for
tests on machines without vsock). Standard library only: it is part of the enclave image.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys

VMADDR_CID_ANY = 0xFFFFFFFF


def parse(spec: str) -> tuple[str, tuple[object, ...]]:
    kind, _, rest = spec.partition(":")
    if kind == "unix" and rest:
        return "unix", (rest,)
    if kind in {"vsock", "tcp"}:
        host, _, port = rest.rpartition(":")
        if not port.isdigit():
            raise ValueError(f"bad address: {spec}")
        if kind == "vsock":
            cid = VMADDR_CID_ANY if host in {"", "ANY"} else int(host)
            return "vsock", (cid, int(port))
        return "tcp", (host or "127.0.0.1", int(port))
    raise ValueError(f"bad address: {spec}")


def _vsock(address: tuple[object, ...], listen: bool) -> socket.socket:
    family = getattr(socket, "AF_VSOCK", None)
    if family is None:
        raise SystemExit("AF_VSOCK is not available on this system")
    sock = socket.socket(family, socket.SOCK_STREAM)
    if listen:
        sock.bind(address)
        sock.listen(64)
    else:
        sock.connect(address)
    sock.setblocking(False)
    return sock


async def _open(spec: tuple[str, tuple[object, ...]]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, address = spec
    if kind == "unix":
        return await asyncio.open_unix_connection(str(address[0]))
    if kind == "tcp":
        return await asyncio.open_connection(str(address[0]), int(str(address[1])))
    sock = await asyncio.to_thread(_vsock, address, False)
    return await asyncio.open_connection(sock=sock)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def relay(listen: str, connect: str, *, ready: asyncio.Event | None = None) -> None:
    target = parse(connect)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await _open(target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))

    kind, address = parse(listen)
    if kind == "unix":
        path = str(address[0])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        server = await asyncio.start_unix_server(handle, path=path)
        os.chmod(path, 0o600)
    elif kind == "tcp":
        server = await asyncio.start_server(handle, str(address[0]), int(str(address[1])))
    else:
        server = await asyncio.start_server(handle, sock=_vsock(address, True))
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True, help="unix:PATH | vsock:CID|ANY:PORT | tcp:HOST:PORT")
    parser.add_argument("--connect", required=True, help="unix:PATH | vsock:CID:PORT | tcp:HOST:PORT")
    args = parser.parse_args(argv)
    try:
        asyncio.run(relay(args.listen, args.connect))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
