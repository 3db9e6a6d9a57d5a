import os
import pickle

import pytest
import torch

from pyrogen import io


def test_round_trip(tmp_path):
    t = {"a": torch.randn(3, 4), "step": torch.tensor(7), "b": torch.arange(5)}
    io.save_checkpoint(tmp_path / "c.safetensors", t, {"x": [1, 2.5, None], "s": "text"})
    back, meta = io.load_checkpoint(tmp_path / "c.safetensors")
    assert meta == {"x": [1, 2.5, None], "s": "text"}
    for k in t:
        assert torch.equal(back[k], t[k])


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    p = tmp_path / "c.safetensors"
    io.save_checkpoint(p, {"w": torch.randn(100)}, {"step": 1})
    blob = p.read_bytes()
    for cut in (4, 20, len(blob) // 2, len(blob) - 1):
        p.write_bytes(blob[:cut])
        with pytest.raises(io.CheckpointError, match="truncated or corrupt"):
            io.load_checkpoint(p)


def test_flipped_byte_is_detected(tmp_path):
    p = tmp_path / "c.safetensors"
    io.save_checkpoint(p, {"w": torch.randn(100)}, {"step": 1})
    blob = bytearray(p.read_bytes())
    blob[-5] ^= 0xFF
    p.write_bytes(bytes(blob))
    with pytest.raises(io.CheckpointError, match="SHA-256"):
        io.load_checkpoint(p)


def test_crash_during_write_keeps_the_previous_file(tmp_path, monkeypatch):
    p = tmp_path / "c.safetensors"
    io.save_checkpoint(p, {"w": torch.zeros(3)}, {"step": 1})

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint(p, {"w": torch.ones(3)}, {"step": 2})
    monkeypatch.undo()
    tensors, meta = io.load_checkpoint(p)
    assert meta["step"] == 1 and torch.equal(tensors["w"], torch.zeros(3))
    assert [f.name for f in tmp_path.iterdir()] == ["c.safetensors"], "no temporary file is left behind"


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_loading_never_executes_code_from_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.safetensors"
    p.write_bytes(pickle.dumps({"w": _Exploit()}))  # a pickle, as torch.save would write
    with pytest.raises(io.CheckpointError):
        io.load_checkpoint(p)
    torch_file = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1)}, torch_file)
    with pytest.raises(io.CheckpointError):
        io.load_checkpoint(torch_file)
    assert not (tmp_path / "PWNED").exists()


def test_not_a_pyrogen_checkpoint(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(io.CheckpointError, match="not a pyrogen checkpoint"):
        io.load_checkpoint(tmp_path / "plain.safetensors")
    with pytest.raises(io.CheckpointError, match="does not exist"):
        io.load_checkpoint(tmp_path / "missing.safetensors")


def test_bad_inputs_to_save(tmp_path):
    with pytest.raises(TypeError, match=r"tensors\['w'\]"):
        io.save_checkpoint(tmp_path / "c", {"w": [1.0]}, {})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="JSON"):
        io.save_checkpoint(tmp_path / "c", {}, {"x": object()})


def test_non_finite_tensors_are_neither_written_nor_loaded(tmp_path):
    # a poisoned checkpoint (a NaN parameter or optimizer moment) would resume into a run that diverges at once
    with pytest.raises(ValueError, match=r"tensors \['w'\] hold NaN or \+inf values"):
        io.save_checkpoint(tmp_path / "c", {"w": torch.tensor([1.0, float("nan")]), "ok": torch.ones(2)}, {})
    assert not (tmp_path / "c").exists()
    io.save_checkpoint(tmp_path / "c", {"w": torch.ones(2)}, {})
    # the same file with the NaN written by hand (a valid digest): refused on load
    blob = (tmp_path / "c").read_bytes()
    from safetensors.torch import load, save

    header = io._read_header(blob)
    tensors = {k: v.clone() for k, v in load(blob).items()}
    tensors["w"][0] = float("inf")
    header["sha256"] = io._digest(tensors, header["json"])
    (tmp_path / "c").write_bytes(save(tensors, metadata=header))
    with pytest.raises(io.CheckpointError, match=r"holds NaN or \+inf values in \['w'\]"):
        io.load_checkpoint(tmp_path / "c")
