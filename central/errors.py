"""One error type for refusing a whole request; the API turns it into {"error": ...} with its status."""
from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.extra = extra
