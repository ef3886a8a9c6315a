"""Exceptions raised by pyllong. The native core raises these same classes."""


class Error(Exception):
    """Base class of every pyllong error."""


class GGUFError(Error, ValueError):
    """A GGUF file is malformed, hostile or unsupported. The message names the field and byte offset."""


class ContextOverflowError(Error, ValueError):
    """The tokens do not fit in the context window."""


class InvalidArgumentError(Error, ValueError):
    """An option or argument is out of its valid range."""


class ModelIOError(Error, OSError):
    """A model file cannot be opened, read or mapped."""


class PullError(Error, RuntimeError):
    """A model could not be downloaded or verified."""


class DeviceError(Error, RuntimeError):
    """The GPU cannot run what was asked: no CUDA build, no device, or too little device memory."""


class ConvertError(Error, ValueError):
    """A Hugging Face checkpoint cannot be converted: a file is missing or malformed, the
    architecture or a setting is unsupported, or shapes disagree with config.json."""


class StateError(Error, ValueError):
    """A saved state file is truncated, corrupted, or belongs to another model or context setup."""


class OutOfMemoryError(Error, MemoryError):
    """Not enough memory for the request (e.g. the KV cache of a huge n_ctx); the message says how many bytes."""


class MemoryFileError(Error, ValueError):
    """A saved kNN memory file is not one, is corrupted or truncated, or was made for another model."""
