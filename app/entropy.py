"""Random bytes for ids (accounts, registrations, events, request ids), drawn from the OS in blocks.

Every call of ``secrets`` is a getrandom system call, and a registration draws a handful of ids:
measured ~12% of a registration's flow on this VM. Here each byte still comes from the OS's generator
and is handed out once; a forked child starts with a fresh block. Secrets (keys, sessions, attempt
links, codes, challenges) keep calling ``secrets`` each time: they are drawn rarely, and nothing of
them should sit in memory ahead of use.
"""

from __future__ import annotations

import os
import threading

BLOCK = 4096


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.block, self.at = b"", 0

    def take(self, n: int) -> bytes:
        with self.lock:
            if self.at + n > len(self.block):
                self.block, self.at = os.urandom(max(BLOCK, n)), 0
            out = self.block[self.at : self.at + n]
            self.at += n
        return out

    def forget(self) -> None:
        # In a forked child: another thread of the parent may have held the lock at the fork.
        self.lock = threading.Lock()
        self.block, self.at = b"", 0


_POOL = _Pool()
os.register_at_fork(after_in_child=_POOL.forget)


def id_bytes(n: int) -> bytes:
    """``n`` random bytes for an id, never for a secret."""
    return _POOL.take(n)
