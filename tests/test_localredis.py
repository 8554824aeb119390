"""relier.localredis: picking a port a restarted server can always bind again."""

from __future__ import annotations

import socket

from relier.localredis import _ephemeral_ports, free_port


def test_free_port_is_bindable_and_outside_the_ephemeral_range() -> None:
    low, high = _ephemeral_ports()
    for _ in range(50):
        port = free_port()
        assert not low <= port <= high, (port, low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_the_ephemeral_range_is_read_from_the_kernel() -> None:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        expected = tuple(int(n) for n in f.read().split())
    assert _ephemeral_ports() == expected
