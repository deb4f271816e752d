"""One triage run at a time per study version.

Two processes that receive the same new-study event (a retried webhook, two
watchers, a person running ``triallens triage`` while the service works) must
not run the same thread side by side: each would open its own trace and the
EDC record could cite one trace while the stored result cites the other. The
lock is taken on the thread: a file lock beside the SQLite checkpoints, or a
PostgreSQL advisory lock when the checkpoints are in PostgreSQL (so that
workers on several hosts agree). The second run waits, then finds the first
one's result.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from triallens.errors import TrialLensError

__all__ = ["thread_lock"]

logger = logging.getLogger(__name__)


@contextmanager
def thread_lock(
    checkpoint: str, thread_id: str, timeout_s: float = 1800.0
) -> Iterator[None]:
    """Hold the triage lock of ``thread_id`` for the body of the block.

    Parameters
    ----------
    checkpoint : str
        The checkpoint store: a SQLite file path or a ``postgresql://`` URL.
    thread_id : str
        The LangGraph thread (de-identified source key and study version).
    timeout_s : float
        How long to wait for another run of the same thread.

    Raises
    ------
    TrialLensError
        If the lock is not obtained within ``timeout_s``.
    """
    if checkpoint.startswith("postgresql://"):
        with _advisory_lock(checkpoint, thread_id, timeout_s):
            yield
        return
    folder = Path(checkpoint).resolve().parent / "locks"
    with _file_lock(folder, thread_id, timeout_s):
        yield


def _digest(thread_id: str) -> str:
    return hashlib.sha256(thread_id.encode("utf-8")).hexdigest()


@contextmanager
def _file_lock(folder: Path, thread_id: str, timeout_s: float) -> Iterator[None]:
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_digest(thread_id)[:32]}.lock"
    deadline = time.monotonic() + timeout_s
    with path.open("a") as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    logger.info("waiting for another triage run of the same study")
                    waited = True
                if time.monotonic() > deadline:
                    raise TrialLensError(
                        f"another triage run of this study has held its lock "
                        f"for over {timeout_s:.0f} s ({path})"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def _advisory_lock(url: str, thread_id: str, timeout_s: float) -> Iterator[None]:
    import psycopg

    key = int.from_bytes(bytes.fromhex(_digest(thread_id)[:16]), "big", signed=True)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"SET lock_timeout = '{int(timeout_s * 1000)}ms'")
        try:
            connection.execute("SELECT pg_advisory_lock(%s)", (key,))
        except psycopg.errors.LockNotAvailable as exc:
            raise TrialLensError(
                f"another triage run of this study has held its lock for over "
                f"{timeout_s:.0f} s"
            ) from exc
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (key,))
