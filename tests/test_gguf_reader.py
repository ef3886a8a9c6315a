"""pyllong.GGUFFile against gguf-py's reader and writer (an independent implementation)."""
from __future__ import annotations

import gguf
import numpy as np
import pytest

import pyllong


@pytest.fixture
def written(tmp_path):
    """A file from gguf-py's writer with every metadata value type, arrays and tensors."""
    path = tmp_path / "all_types.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_float32("t.f32", 1.5)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", 2.718281828459045)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo wörld ✓")
    w.add_array("t.small_ints", [1, 2, 3])
    w.add_array("t.small_strs", ["a", "bb", ""])
    w.add_array("t.big_floats", [float(i) / 7 for i in range(1000)])
    w.add_array("t.big_strs", [f"s{i}" for i in range(5000)])
    rng = np.random.default_rng(0)
    tensors = {
        "a.f32": rng.standard_normal((3, 64)).astype(np.float32),
        "b.f16": rng.standard_normal((5, 32)).astype(np.float16),
        "c.q8_0": gguf.quants.quantize(rng.standard_normal((4, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0),
    }
    for name, arr in tensors.items():
        if name.endswith("q8_0"):
            w.add_tensor(name, arr, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_metadata_values(written):
    f = pyllong.GGUFFile(str(written))
    md = f.metadata
    assert f.version == 3 and f.architecture == "llama"
    assert md["t.u8"] == 200 and md["t.i8"] == -100 and md["t.u16"] == 60000 and md["t.i16"] == -30000
    assert md["t.u32"] == 4_000_000_000 and md["t.i32"] == -2_000_000_000
    assert md["t.u64"] == 2**63 + 5 and md["t.i64"] == -(2**62)
    assert md["t.f32"] == 1.5 and md["t.f64"] == 2.718281828459045 and md["t.bool"] is True
    assert md["t.str"] == "héllo wörld ✓"
    assert md["t.small_ints"] == [1, 2, 3] and md["t.small_strs"] == ["a", "bb", ""]
    big = md["t.big_floats"]
    assert isinstance(big, np.ndarray) and not big.flags.writeable
    np.testing.assert_array_equal(big, np.array([float(i) / 7 for i in range(1000)], np.float32))
    strs = md["t.big_strs"]
    assert len(strs) == 5000 and strs[4999] == "s4999" and strs[-1] == "s4999" and list(strs)[:2] == ["s0", "s1"]
    with pytest.raises(IndexError):
        strs[5000]
    assert f.metadata_type("t.u16") == "UINT16" and f.metadata_type("t.big_strs") == "ARRAY[STRING]"


def test_matches_gguf_reader(written):
    ours = pyllong.GGUFFile(str(written))
    ref = gguf.GGUFReader(str(written))
    assert [t.name for t in ref.tensors] == list(ours.tensors)
    for t in ref.tensors:
        o = ours.tensors[t.name]
        assert o.dtype == t.tensor_type.name
        assert list(o.shape) == [int(x) for x in t.shape]
        assert o.offset == t.data_offset and o.nbytes == t.n_bytes
        np.testing.assert_array_equal(o.data, np.asarray(t.data).reshape(-1).view(np.uint8))
    for k, field in ref.fields.items():
        if k.startswith("GGUF."):
            continue
        assert k in ours.metadata


def test_tensor_view_is_zero_copy_and_outlives_file(written):
    f = pyllong.GGUFFile(str(written))
    t = f.tensors["a.f32"]
    view = t.data
    assert not view.flags.writeable and not view.flags.owndata
    del f, t
    arr = view.view(np.float32).reshape(3, 64)  # the mapping stays alive through the view
    assert np.isfinite(arr).all()


def test_version_2(tmp_path):
    path = tmp_path / "v2.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_uint32("x", 1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    data = bytearray(path.read_bytes())
    data[4:8] = (2).to_bytes(4, "little")
    f = pyllong.GGUFFile.from_bytes(bytes(data))
    assert f.version == 2 and f.metadata["x"] == 1


def test_missing_file_is_oserror(tmp_path):
    with pytest.raises(pyllong.ModelIOError, match="cannot open"):
        pyllong.GGUFFile(str(tmp_path / "nope.gguf"))
    with pytest.raises(OSError):
        pyllong.GGUFFile(str(tmp_path))


def test_gguferror_is_valueerror():
    assert issubclass(pyllong.GGUFError, ValueError) and issubclass(pyllong.GGUFError, pyllong.Error)
    with pytest.raises(ValueError, match="not a GGUF file"):
        pyllong.GGUFFile.from_bytes(b"PK\x03\x04" + b"\0" * 40)
