"""Exceptions raised by sdpcert. All derive from ``SdpcertError`` (itself a ``ValueError``) so callers can catch
one type; the subclasses say which kind of input was wrong."""


class SdpcertError(ValueError):
    """Base class of every error sdpcert raises on bad input."""


class ShapeError(SdpcertError):
    """An array has the wrong number of dimensions or a size that does not match the others."""


class NonFiniteError(SdpcertError):
    """An array holds NaN or infinity where only finite numbers make sense."""


class ModelFileError(SdpcertError):
    """A model file is missing, truncated, corrupt, pickled, or lacks a required array."""


class DataIntegrityError(SdpcertError):
    """A data file is missing, truncated, has a bad IDX header, or fails its checksum."""
