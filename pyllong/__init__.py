"""pyllong: local inference for quantized GGUF models with native long context."""
import os as _os

from .errors import (ContextOverflowError, ConvertError, DeviceError, Error, GGUFError, InvalidArgumentError,
                     MemoryFileError, ModelIOError, OutOfMemoryError, PullError, StateError)
from ._core import GGUFFile, GGUFStringArray, GGUFTensor, ModelFile

# In a wheel, the repository's models/ folder is installed as pyllong/models; in a source
# checkout it sits beside the package, so make it importable as pyllong.models too.
if not _os.path.isdir(_os.path.join(_os.path.dirname(__file__), "models")):
    __path__.append(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))  # noqa: F821

from .llama_compat import Llama  # noqa: E402
from .memory import Memory  # noqa: E402
from .model import Completion, CompletionStream, Model  # noqa: E402
from .sampling import SamplingParams  # noqa: E402
from .session import ChatSession  # noqa: E402
from .transition import Transition  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ChatSession", "Completion", "CompletionStream", "ContextOverflowError", "ConvertError", "Error", "GGUFError", "GGUFFile", "GGUFStringArray", "GGUFTensor",
    "DeviceError", "InvalidArgumentError", "Llama", "Memory", "MemoryFileError", "ModelFile", "Model", "ModelIOError",
    "OutOfMemoryError", "PullError", "SamplingParams", "StateError", "Transition",
]
