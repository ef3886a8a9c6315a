"""Dequantization must be bit-identical to gguf.quants.dequantize (an independent
implementation of the same layouts) on random blocks."""
import numpy as np
import pytest

from pyllong import _core, InvalidArgumentError
from quant_helpers import ALL_TYPES, geometry, gguf_dequantize, random_blocks


@pytest.mark.parametrize("name", ALL_TYPES)
@pytest.mark.parametrize("n_blocks", [1, 3, 37])  # odd counts: no even-row assumption
def test_bit_identical_to_gguf(name, n_blocks):
    rng = np.random.default_rng(hash((name, n_blocks)) % 2**32)
    bs, ts = geometry(name)
    raw = random_blocks(name, n_blocks, rng)
    got = _core.dequantize(name, raw.ravel(), n_blocks * bs)
    ref = gguf_dequantize(name, raw, n_blocks * bs)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.isfinite(ref).all()
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("name", [t for t in ALL_TYPES if geometry(t)[0] > 1])
def test_extreme_scales(name):
    """Largest and smallest (subnormal) fp16 scales, and zero, still match exactly."""
    rng = np.random.default_rng(7)
    bs, ts = geometry(name)
    from quant_helpers import SCALE_OFFSETS
    raw = rng.integers(0, 256, size=(6, ts), dtype=np.uint8)
    extremes = np.array([65504.0, -65504.0, 6e-8, -6e-8, 0.0, 2**-14], dtype=np.float16)
    for off in SCALE_OFFSETS[name]:
        raw[:, off:off + 2] = extremes.view(np.uint8).reshape(6, 2)
    got = _core.dequantize(name, raw.ravel(), 6 * bs)
    ref = gguf_dequantize(name, raw, 6 * bs)
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))


def test_bad_input_raises_typed_error():
    with pytest.raises(InvalidArgumentError):
        _core.dequantize("Q4_0", np.zeros(17, np.uint8), 32)      # wrong byte count
    with pytest.raises(InvalidArgumentError):
        _core.dequantize("Q4_K", np.zeros(144, np.uint8), 255)    # not whole blocks
    with pytest.raises(InvalidArgumentError):
        _core.dequantize("IQ2_XS", np.zeros(16, np.uint8), 256)   # unknown type
