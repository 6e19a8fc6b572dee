"""Checkpoints: round trips, exact resume, error messages, no pickle, and a crash mid-save."""
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import minireparam as mr
import minireparam.nn as nn
import minireparam.optim as optim
from minireparam.serialization import FORMAT_VERSION, MAGIC, CheckpointError


def test_round_trip_of_every_supported_type(tmp_path):
    obj = {
        "arrays": [np.arange(6, dtype=np.int64).reshape(2, 3), np.zeros((0, 4)), np.array(True),
                   np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.arange(10.0)[::3], np.array([1 + 2j])],
        "scalars": (None, True, False, 0, -7, 2 ** 130, -(2 ** 127), 1.5, float("inf"), -0.0, "text ü"),
        "numpy_scalars": [np.float32(2.5), np.int16(-3), np.bool_(True)],
        3: {"nested": {"deep": [1, [2, (3,)]]}},
        (1, "tuple"): "tuple keys",
        None: "none key",
        "tensor": mr.tensor(np.ones((2, 2), dtype=np.float32)),
    }
    path = tmp_path / "all.ckpt"
    mr.save(obj, path)
    loaded = mr.load(path)

    assert list(loaded) == list(obj)
    for saved, back in zip(obj["arrays"], loaded["arrays"]):
        assert back.dtype == saved.dtype
        assert back.shape == saved.shape
        np.testing.assert_array_equal(back, saved)
    assert loaded["scalars"] == obj["scalars"]
    assert str(loaded["scalars"][9]) == "-0.0"
    assert [type(x) for x in loaded["numpy_scalars"]] == [np.float32, np.int16, np.bool_]
    assert loaded[3] == obj[3]
    assert loaded[(1, "tuple")] == "tuple keys"
    assert loaded[None] == "none key"
    assert isinstance(loaded["tensor"], np.ndarray) and loaded["tensor"].dtype == np.float32


def test_nan_and_big_integers_are_exact(tmp_path):
    values = [float("nan"), 5e-324, 1.7976931348623157e308, 2 ** 200 + 1]
    mr.save(values, tmp_path / "exact")
    loaded = mr.load(tmp_path / "exact")
    assert np.isnan(loaded[0])
    assert loaded[1:] == values[1:]


def test_generator_state_resumes_the_stream(tmp_path):
    generator = mr.Generator(123)
    generator.spawn(3)
    generator.normal((5,))
    mr.save({"generator": generator.state_dict()}, tmp_path / "rng")
    expected = generator.normal((4,), np.float64)
    restored = mr.Generator(0)
    restored.load_state_dict(mr.load(tmp_path / "rng")["generator"])
    np.testing.assert_array_equal(restored.normal((4,), np.float64), expected)
    assert restored.spawn(1)[0].normal((2,)).tolist() == generator.spawn(1)[0].normal((2,)).tolist()


def test_training_resume_is_bit_for_bit(tmp_path):
    """Model, optimizer, scheduler and generators in one checkpoint give an exact resume."""

    def setup():
        generator = mr.Generator(7)
        model = nn.Sequential(nn.Linear(4, 8, generator=generator), nn.ReLU(), nn.Dropout(0.2, generator=generator),
                              nn.Linear(8, 3, generator=generator))
        optimizer = optim.Adam(model.parameters(), lr=0.01)
        scheduler = optim.lr_scheduler.StepLR(optimizer, 2, gamma=0.5)
        return generator, model, optimizer, scheduler

    def train(generator, model, optimizer, scheduler, steps):
        for _ in range(steps):
            order = generator.permutation(16)
            x = mr.tensor(np.linspace(-1, 1, 64, dtype=np.float32).reshape(16, 4)[order])
            target = np.arange(16)[order] % 3
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), target).backward()
            optimizer.step()
            scheduler.step()

    generator, model, optimizer, scheduler = setup()
    train(generator, model, optimizer, scheduler, 3)
    mr.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "generator": generator.state_dict()}, tmp_path / "run.ckpt")
    train(generator, model, optimizer, scheduler, 3)

    generator2, model2, optimizer2, scheduler2 = setup()
    checkpoint = mr.load(tmp_path / "run.ckpt")
    model2.load_state_dict(checkpoint["model"])
    optimizer2.load_state_dict(checkpoint["optimizer"])
    scheduler2.load_state_dict(checkpoint["scheduler"])
    generator2.load_state_dict(checkpoint["generator"])
    train(generator2, model2, optimizer2, scheduler2, 3)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(model2.state_dict()[name], value, err_msg=name)
    assert optimizer2.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_unsupported_values_name_their_position(tmp_path):
    with pytest.raises(TypeError, match=r"obj\['model'\]\[1\] has unsupported type set"):
        mr.save({"model": [1, {2}]}, tmp_path / "bad")
    with pytest.raises(TypeError, match="dtype object"):
        mr.save({"a": np.array([object()])}, tmp_path / "bad")
    cycle = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="contains itself"):
        mr.save(cycle, tmp_path / "bad")
    assert not os.path.exists(tmp_path / "bad")
    assert os.listdir(tmp_path) == [], "a failed save must not leave files behind"


def test_truncated_files_raise_naming_the_path(tmp_path):
    path = tmp_path / "model.ckpt"
    mr.save({"weights": np.arange(1000.0)}, path)
    data = path.read_bytes()
    for cut in (4, 20, 100, len(data) // 2, len(data) - 1):
        truncated = tmp_path / f"cut{cut}.ckpt"
        truncated.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated") as error:
            mr.load(truncated)
        assert str(truncated) in str(error.value)


def test_corrupt_data_fails_the_checksum(tmp_path):
    path = tmp_path / "model.ckpt"
    mr.save({"weights": np.arange(1000.0)}, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC-32 mismatch"):
        mr.load(path)


def test_foreign_files_are_rejected_without_running_code(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    pickled = tmp_path / "pickle.ckpt"
    pickled.write_bytes(pickle.dumps({"a": Exploit()}))
    npz = tmp_path / "arrays.npz"
    np.savez(npz, a=np.ones(3))
    for path in (pickled, npz):
        with pytest.raises(CheckpointError, match="not a minireparam checkpoint") as error:
            mr.load(path)
        assert str(path) in str(error.value)
    assert not marker.exists(), "loading must never unpickle"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated"):
        mr.load(empty)


def test_newer_format_version_is_rejected(tmp_path):
    path = tmp_path / "future.ckpt"
    mr.save({"a": 1}, path)
    data = bytearray(path.read_bytes())
    data[len(MAGIC):len(MAGIC) + 4] = struct.pack("<I", FORMAT_VERSION + 1)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}, newer") as error:
        mr.load(path)
    assert "upgrade minireparam" in str(error.value)


def test_path_must_be_a_name_in_an_existing_folder(tmp_path):
    with open(tmp_path / "x", "wb") as file:
        with pytest.raises(TypeError, match="file name"):
            mr.save({}, file)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mr.save({}, tmp_path / "missing" / "model.ckpt")
    with pytest.raises(FileNotFoundError):
        mr.load(tmp_path / "absent.ckpt")


def test_save_replaces_atomically_and_keeps_permissions(tmp_path):
    path = tmp_path / "model.ckpt"
    mr.save({"version": 1}, path)
    mr.save({"version": 2}, path)
    assert mr.load(path) == {"version": 2}
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"], "no temporary file may remain after a save"
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import minireparam as mr

    path = sys.argv[1]
    big = np.ones(25_000_000, dtype=np.float64)  # 200 MB, so each save takes a while
    mr.save({"round": 0, "weights": np.arange(10.0)}, path)
    print("first", flush=True)
    round_number = 1
    while True:
        big[0] = round_number
        mr.save({"round": round_number, "big": big}, path)
        round_number += 1
""")


def test_killed_mid_save_keeps_previous_checkpoint(tmp_path):
    """SIGKILL a process while it writes a large checkpoint: the last complete one still loads."""
    path = tmp_path / "model.ckpt"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, env=environment)
    try:
        assert process.stdout.readline().strip() == b"first", "the writer did not start"
        deadline = time.monotonic() + 60
        while not any(name.endswith(".tmp") for name in os.listdir(tmp_path)):
            assert time.monotonic() < deadline, "the writer never started a second save"
            time.sleep(0.005)
        time.sleep(0.05)  # let it write part of the 200 MB
        temporary = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == -signal.SIGKILL
    checkpoint = mr.load(path)  # the previous, complete checkpoint
    if checkpoint["round"] == 0:
        np.testing.assert_array_equal(checkpoint["weights"], np.arange(10.0))
    else:
        assert checkpoint["big"][0] == checkpoint["round"] and checkpoint["big"].size == 25_000_000
    assert temporary, "the kill should have happened during a save"
