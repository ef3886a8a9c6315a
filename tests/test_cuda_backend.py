"""The CUDA backend's presence is reported, never assumed."""
import pytest

import pyllong
from pyllong import _core


def test_no_cuda_build_reports_zero_devices_and_a_clear_error():
    if _core.cuda_built():
        pytest.skip("this build includes CUDA; the GPU tests cover it (run them on a machine with a GPU)")
    assert _core.cuda_device_count() == 0
    with pytest.raises(pyllong.InvalidArgumentError, match="PYLLONG_CUDA=ON"):
        _core.cuda_device_name(0)


def test_cuda_build_device_names():
    if not _core.cuda_built() or _core.cuda_device_count() == 0:
        pytest.skip("needs a CUDA build (CMAKE_ARGS=-DPYLLONG_CUDA=ON) and a visible GPU")
    assert _core.cuda_device_name(0)
    with pytest.raises(pyllong.InvalidArgumentError):
        _core.cuda_device_name(_core.cuda_device_count())
