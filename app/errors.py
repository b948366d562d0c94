"""One place that turns exceptions into what a user reads."""

from __future__ import annotations

import functools
import logging

import gradio as gr

log = logging.getLogger("frdiff.app")
GENERIC = ("Something went wrong on the server while running this; the error was logged. "
           "Try again or change the settings.")


def user_message(err: Exception) -> str:
    """The message shown for an exception: its own for bad input, a generic one otherwise."""
    if isinstance(err, (ValueError, TypeError)):
        return str(err).strip("'\"") or type(err).__name__
    return GENERIC


def safe(fn):
    """Run a callback; bad input becomes a gr.Error with its message, anything else is logged."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, TypeError) as err:
            raise gr.Error(user_message(err), print_exception=False) from err
        except Exception as err:  # noqa: BLE001 - the page gets a message, the log the trace
            log.exception("callback %s failed", fn.__name__)
            raise gr.Error(GENERIC) from err
    return wrapped
