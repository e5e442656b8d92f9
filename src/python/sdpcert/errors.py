"""Exceptions raised by sdpcert.

Bad input -- a wrong shape, NaN weights, a corrupt model file, a negative eps, an argument the compiled core
refuses -- raises a subclass of ``SdpcertError`` (itself a ``ValueError``), so callers can catch one type; the
subclasses say which kind of input was wrong.

``UnsoundCertificateError`` is different in kind: the input was fine, and an attack broke a point that sdpcert had
certified. That is a bug in sdpcert, never something to catch and carry on from, so it is not an ``SdpcertError``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class SdpcertError(ValueError):
    """Base class of every error sdpcert raises on bad input."""


class ShapeError(SdpcertError):
    """An array has the wrong number of dimensions or a size that does not match the others."""


class NonFiniteError(SdpcertError):
    """An array holds NaN or infinity where only finite numbers make sense."""


class ModelFileError(SdpcertError):
    """A model file is missing, truncated, corrupt, pickled, lacks a required array or holds an unknown one."""


class DataIntegrityError(SdpcertError):
    """A data file is missing, truncated, has a bad IDX header, or fails its checksum."""


class CoreArgumentError(SdpcertError):
    """The compiled core (``sdpcert._core``) refused an argument passed to it."""


class UnsoundCertificateError(RuntimeError):
    """An attack found a misclassified point inside a ball that sdpcert had certified: a certificate is wrong."""


@contextmanager
def core_arguments(what: str) -> Iterator[None]:
    """Turn the compiled core's argument errors inside the block into a ``CoreArgumentError`` naming ``what``.

    The core checks its arguments and raises a plain ``ValueError`` (or, from the bindings, a ``TypeError`` for an
    argument of the wrong type); callers of sdpcert should see the package's own error type for bad input."""
    try:
        yield
    except SdpcertError:
        raise
    except (ValueError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CoreArgumentError(f"{what}: {detail}") from exc
