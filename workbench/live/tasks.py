"""One background job at a time for an explorer panel, so long measurements leave the kernel free."""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackgroundTask:
    """Runs ``job(cancelled)`` on a daemon thread; ``cancelled`` is a ``threading.Event`` the job may poll.

    Args:
        name: the thread's name.
        on_error: called (on the job's thread) with an exception the job raised; the exception is also kept in
            ``error`` and re-raised by ``join``.
    """

    def __init__(self, name: str, on_error: Callable[[Exception], None]) -> None:
        self.name = name
        self.on_error = on_error
        self.error: Exception | None = None
        self._cancelled = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """Whether a job is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, job: Callable[[threading.Event], None]) -> None:
        """Start ``job``.

        Raises:
            ValueError: while another job is running.
        """
        if self.busy:
            raise ValueError(f"{self.name} is still computing; wait for it or press Stop")
        self.error = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(job, self._cancelled), name=self.name, daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the running job to stop at its next check."""
        self._cancelled.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the job (at most ``timeout`` seconds).

        Raises:
            RuntimeError: chained to the exception the job raised.
        """
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed: {self.error}") from self.error

    def _run(self, job: Callable[[threading.Event], None], cancelled: threading.Event) -> None:
        try:
            job(cancelled)
        except Exception as error:
            self.error = error
            self.on_error(error)
