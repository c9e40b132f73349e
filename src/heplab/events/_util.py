"""Small helpers shared by the heplab I/O modules (paths, atomic output, errors)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from heplab.errors import DataError, OutputExistsError

__all__ = ["atomic_output", "data_error", "default_file_mode", "existing_path", "one_line"]


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` squeezed onto one line (with its type when it is empty)."""
    text = " ".join(str(exc).split())
    if not text:
        return type(exc).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    return text


def data_error(
    path: str | os.PathLike[str], problem: str, exc: BaseException | None = None
) -> DataError:
    """A :class:`DataError` whose one-line message names ``path`` and ``problem``.

    When ``exc`` is given its message is appended in parentheses.
    """
    message = f"{os.fspath(path)}: {problem}"
    if exc is not None:
        message += f" ({one_line(exc)})"
    return DataError(message)


def existing_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`~pathlib.Path`; :class:`DataError` if nothing is there."""
    p = Path(path).expanduser()
    if not p.exists():
        raise data_error(path, "no such file or directory")
    return p


def default_file_mode() -> int:
    """The permission bits a new file gets from ``open()`` under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary file name next to ``path``; rename it onto ``path`` on success.

    The temporary file keeps the suffix of ``path`` (some writers look at it) and is
    removed if the body raises, so a file carrying the final name is always complete.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false, or if ``path`` is a directory.
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise OutputExistsError(f"{target}: is a directory; give a file name to write")
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target}: already exists (pass overwrite=True to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{''.join(target.suffixes)}"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        if tmp.exists():
            os.chmod(tmp, default_file_mode())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
