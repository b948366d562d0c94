"""One place that turns exceptions into what a user reads."""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from .inflight import running

log = logging.getLogger("frdiff.app")
GENERIC = ("Something went wrong on the server while running this; the error was logged. "
           "Try again or change the settings.")


def user_message(err: Exception) -> str:
    """The message shown for an exception: its own for bad input, a generic one otherwise."""
    if isinstance(err, (ValueError, TypeError)):
        return str(err).strip("'\"") or type(err).__name__
    return GENERIC


def _shown(fn, err: Exception) -> gr.Error:
    """The gr.Error the page shows for `err` (unexpected ones logged with their traceback)."""
    if isinstance(err, (ValueError, TypeError)):
        return gr.Error(user_message(err), print_exception=False)
    log.error("callback %s failed", fn.__name__, exc_info=err)
    return gr.Error(GENERIC)


def safe(fn):
    """Run a callback (a generator's every step too); bad input becomes a gr.Error with its
    message, anything else a generic one, logged with the traceback. It counts as in flight
    while it runs (`inflight.settle`)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streamed(*args, **kwargs):
            try:
                with running():
                    yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as err:  # noqa: BLE001 - the page gets a message, the log the trace
                raise _shown(fn, err) from err
        return streamed

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            with running():
                return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - the page gets a message, the log the trace
            raise _shown(fn, err) from err
    return wrapped
