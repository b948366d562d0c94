"""Callbacks still running: a server's page events outlive the page that started them.

Every callback wrapped by `errors.safe` is counted while it runs. A process that closes its
server (a test, a screenshot script) calls `settle()` before it exits: exiting while a model
run goes on in a worker thread aborts the interpreter ("terminate called without an active
exception")."""

from __future__ import annotations

import threading

_DONE = threading.Condition()
_running = 0


class running:
    """A context counted as one callback in flight."""

    def __enter__(self):
        global _running
        with _DONE:
            _running += 1

    def __exit__(self, *exc):
        global _running
        with _DONE:
            _running -= 1
            _DONE.notify_all()
        return False


def settle(timeout: float = 300.0) -> bool:
    """Wait until no callback runs (False: some still did after `timeout` s)."""
    with _DONE:
        return _DONE.wait_for(lambda: _running == 0, timeout)
