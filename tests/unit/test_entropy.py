"""Ids draw OS randomness in blocks: every byte handed out once, and a forked child never repeats the
parent's bytes."""

from __future__ import annotations

import os
import warnings

from app.entropy import BLOCK, id_bytes


def test_bytes_are_never_handed_out_twice_across_blocks() -> None:
    drawn = [id_bytes(16) for _ in range(3 * BLOCK // 16)]  # three blocks' worth
    assert all(len(b) == 16 for b in drawn)
    assert len(set(drawn)) == len(drawn)
    big = id_bytes(BLOCK + 1)  # more than a block at once still works
    assert len(big) == BLOCK + 1


def test_a_forked_child_does_not_repeat_what_the_parent_draws_next() -> None:
    id_bytes(1)  # the parent holds a block with bytes left in it
    read, write = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns about forking a process that has threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: its first bytes, to the parent
        try:
            os.write(write, id_bytes(32))
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 32)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != id_bytes(32)
