"""A free TCP port on loopback, for the servers the harness, the tests and the benchmarks start."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now: the kernel's pick for 127.0.0.1. Another process may take it before
    the caller binds it; the callers here start their server at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
