"""Pause / resume / stop requests from any thread, honoured by the training loop between steps."""

from __future__ import annotations

import threading


class RunControl:
    """Thread-safe flags a training loop checks once per step.

    ``pause()`` makes the loop block in ``wait_while_paused`` until ``resume()`` or ``stop()``; ``stop()``
    makes ``should_stop`` true so the loop ends cleanly after the current step.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def pause(self) -> None:
        """Ask the loop to hold after the current step."""
        self._running.clear()

    def resume(self) -> None:
        """Let a paused loop continue."""
        self._running.set()

    def stop(self) -> None:
        """Ask the loop to end after the current step (also releases a paused loop)."""
        self._stop.set()
        self._running.set()

    @property
    def paused(self) -> bool:
        """Whether a pause is requested (and not yet resumed or stopped)."""
        return not self._running.is_set()

    @property
    def should_stop(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    def wait_while_paused(self) -> None:
        """Block while paused; return at once otherwise, or as soon as resume/stop is requested."""
        self._running.wait()
