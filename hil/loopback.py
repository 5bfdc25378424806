"""Loopback networking for the servers and clients the harness, the tests and the benchmarks start."""
from __future__ import annotations

import socket
from typing import Any

import requests
from requests.adapters import HTTPAdapter


def free_port() -> int:
    """A port nothing listens on now: the kernel's pick for 127.0.0.1. Another process may take it before
    the caller binds it; the callers here start their server at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _FromAddress(HTTPAdapter):
    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        kw["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kw)


def session_from(address: str) -> requests.Session:
    """HTTP from another loopback address (127.0.0.2, ...): what the server sees as another client host."""
    http = requests.Session()
    http.mount("http://", _FromAddress(address))
    http.mount("https://", _FromAddress(address))
    return http
