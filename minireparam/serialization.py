"""Checkpoints: ``save(obj, path)`` and ``load(path)`` in a versioned, pickle-free format.

A checkpoint contains nested dicts, lists and tuples of ndarrays, str, bool, None, float
and int of any size (a Generator's state contains 128-bit integers). Tensors are saved
as their arrays and load as ndarrays; numpy scalars load as numpy scalars.

File layout (all integers little-endian):

    magic        8 bytes  b"\\x89MRCKPT\\n"
    version      u32      FORMAT_VERSION of the writer
    header size  u64
    header       UTF-8 JSON: the object tree, with each array replaced by its dtype,
                 shape and byte offset in the data section
    padding      zeros up to a multiple of 64 bytes
    data         the arrays' bytes, C order, each starting at a multiple of 64
    trailer      b"MRCKEND\\n", u64 length of everything before the trailer,
                 u32 CRC-32 of everything before the trailer

Loading parses JSON and copies raw bytes into arrays of whitelisted numeric dtypes, so
a file can never run code. Writing goes to a temporary file in the target's folder,
which is flushed, fsynced and renamed over the target (then the folder is fsynced), so
a crash mid-save leaves the previous checkpoint intact. A temporary file of such a crash
(``.NAME.XXXX.tmp``) may stay behind; it is never read.
"""
import json
import os
import re
import secrets
import struct
import zlib

import numpy as np

from .tensor import Tensor

MAGIC = b"\x89MRCKPT\n"
TRAILER_MAGIC = b"MRCKEND\n"
FORMAT_VERSION = 1
ALIGNMENT = 64

_PREAMBLE = struct.Struct("<8sIQ")    # magic, version, header size
_TRAILER = struct.Struct("<8sQI")     # trailer magic, length before trailer, CRC-32
_CHUNK_BYTES = 1 << 24
_DTYPE_PATTERN = re.compile(r"^[<>|][biufc][0-9]{1,2}$")


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint: foreign, truncated, corrupt or too new."""


# -- saving -------------------------------------------------------------------------------


def save(obj, path):
    """Write ``obj`` to ``path`` atomically (an OrderedDict, such as a state dict, saves as a dict).

    Args:
        obj: nested dicts (keys: str, int, float, bool, None or tuples of them), lists
            and tuples of ndarrays, Tensors, numpy scalars, str, bool, None, float and int.
        path: a file name (str or os.PathLike). Its folder must exist.

    Raises:
        TypeError: naming the position in ``obj`` of a value of an unsupported type.
        ValueError: when ``obj`` contains itself.
    """
    path = _check_path(path, "save")
    arrays = []
    tree = _encode(obj, arrays, "obj", set())
    offsets, data_size = _layout(arrays)
    for node, offset in zip(_array_nodes(arrays), offsets):
        node["offset"] = offset
    header = json.dumps({"tree": tree, "data_bytes": data_size}, separators=(",", ":")).encode("utf-8")

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: the folder {folder} of {path} does not exist; create it first")
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            _write_checkpoint(file, header, arrays, offsets)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise
    _fsync_folder(folder)


def _check_path(path, function):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{function}: path must be a str or os.PathLike, got {type(path).__name__} "
            "(atomic writes need a file name, not an open file)"
        )
    return os.fspath(path)


def _encode(value, arrays, where, active):
    """Return the JSON node of ``value``, appending its arrays to ``arrays``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return {"t": "int", "v": str(value)}
    if isinstance(value, float):
        return {"t": "float", "v": value.hex()}
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, (np.ndarray, np.generic)):
        return _encode_array(value, arrays, where)

    if isinstance(value, (dict, list, tuple)):
        if id(value) in active:
            raise ValueError(f"save: {where} contains itself, so it cannot be saved")
        active.add(id(value))
        try:
            if isinstance(value, dict):
                keys = [_encode_key(key, where) for key in value]
                items = [_encode(item, arrays, f"{where}[{key!r}]", active) for key, item in value.items()]
                return {"t": "dict", "k": keys, "v": items}
            items = [_encode(item, arrays, f"{where}[{index}]", active) for index, item in enumerate(value)]
            return items if isinstance(value, list) else {"t": "tuple", "v": items}
        finally:
            active.discard(id(value))
    raise TypeError(
        f"save: {where} has unsupported type {type(value).__name__}; checkpoints hold dicts, lists, tuples, "
        "ndarrays, Tensors, str, bool, None, float and int"
    )


def _encode_key(key, where):
    if key is None or isinstance(key, (bool, str, int, float)):
        return _encode(key, [], where, set())
    if isinstance(key, tuple):
        return {"t": "tuple", "v": [_encode_key(item, where) for item in key]}
    raise TypeError(f"save: {where} has a dict key of unsupported type {type(key).__name__}: {key!r}")


def _encode_array(value, arrays, where):
    array = np.asarray(value)
    dtype = array.dtype.str
    if not _DTYPE_PATTERN.match(dtype):
        raise TypeError(
            f"save: {where} is an array of dtype {array.dtype}; checkpoints hold boolean, integer, floating and "
            "complex arrays only"
        )
    node = {"t": "array", "dtype": dtype, "shape": list(array.shape), "nbytes": int(array.nbytes)}
    if isinstance(value, np.generic):
        node["scalar"] = True
    arrays.append((node, array))
    return node


def _array_nodes(arrays):
    return [node for node, _array in arrays]


def _layout(arrays):
    """Return each array's offset in the data section (aligned) and the section's size."""
    offsets, position = [], 0
    for _node, array in arrays:
        position = _aligned(position)
        offsets.append(position)
        position += array.nbytes
    return offsets, position


def _aligned(position):
    return -(-position // ALIGNMENT) * ALIGNMENT


class _ChecksumWriter:
    """Writes to a file while keeping the CRC-32 and the count of the bytes written."""

    def __init__(self, file):
        self.file = file
        self.crc = 0
        self.length = 0

    def write(self, data):
        self.file.write(data)
        self.crc = zlib.crc32(data, self.crc)
        self.length += len(data)


def _write_checkpoint(file, header, arrays, offsets):
    writer = _ChecksumWriter(file)
    writer.write(_PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(header)))
    writer.write(header)
    writer.write(bytes(_aligned(writer.length) - writer.length))
    data_start = writer.length
    for (_node, array), offset in zip(arrays, offsets):
        writer.write(bytes(data_start + offset - writer.length))
        raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        for start in range(0, raw.size, _CHUNK_BYTES):
            writer.write(memoryview(raw[start:start + _CHUNK_BYTES]))
    file.write(_TRAILER.pack(TRAILER_MAGIC, writer.length, writer.crc))


def _remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_folder(folder):
    """Make the rename durable; skipped where folders cannot be opened (not POSIX)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# -- loading ------------------------------------------------------------------------------


def load(path):
    """Read a checkpoint written by ``save``.

    Returns:
        The saved object: dicts come back as dicts (in their saved order), arrays as
        ndarrays (Tensors too), tuples as tuples.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        CheckpointError: naming ``path`` and the problem, when the file is not a
            minireparam checkpoint, is truncated or corrupt, or was written by a newer
            format version.
    """
    path = _check_path(path, "load")
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        reader = _ChecksumReader(file, path)
        header, data_start = _read_header(reader, path, size)
        expected_size = data_start + header["data_bytes"] + _TRAILER.size
        if size < expected_size:
            raise CheckpointError(f"{path}: the checkpoint is truncated: {size} bytes, expected {expected_size}")
        if size > expected_size:
            raise CheckpointError(
                f"{path}: the checkpoint is corrupt: {size} bytes, expected {expected_size} (data after the end)"
            )
        nodes = []
        _collect_array_nodes(header["tree"], nodes, path)
        arrays = _read_arrays(reader, nodes, data_start, header["data_bytes"], path)
        _check_trailer(reader, file, path)
    return _decode(header["tree"], iter(arrays), path)


class _ChecksumReader:
    """Reads exact byte counts while keeping the CRC-32 of everything read."""

    def __init__(self, file, path):
        self.file = file
        self.path = path
        self.crc = 0
        self.length = 0

    def read(self, count, what):
        data = self.file.read(count)
        if len(data) != count:
            raise CheckpointError(f"{self.path}: the checkpoint is truncated: the file ends inside the {what}")
        self._account(data)
        return data

    def read_into(self, buffer, what):
        view = memoryview(buffer)
        filled = 0
        while filled < len(view):
            count = self.file.readinto(view[filled:filled + _CHUNK_BYTES])
            if not count:
                raise CheckpointError(f"{self.path}: the checkpoint is truncated: the file ends inside the {what}")
            self._account(view[filled:filled + count])
            filled += count

    def skip(self, count, what):
        if count:
            self.read(count, what)

    def _account(self, data):
        self.crc = zlib.crc32(data, self.crc)
        self.length += len(data)


def _read_header(reader, path, size):
    if size < _PREAMBLE.size:
        start = reader.file.read(8)
        if not MAGIC.startswith(start):
            raise CheckpointError(
                f"{path}: not a minireparam checkpoint (it starts with {start!r}, expected {MAGIC!r})"
            )
        raise CheckpointError(f"{path}: the checkpoint is truncated: {size} bytes, shorter than its fixed header")

    magic, version, header_size = _PREAMBLE.unpack(reader.read(_PREAMBLE.size, "fixed header"))
    if magic != MAGIC:
        raise CheckpointError(
            f"{path}: not a minireparam checkpoint (it starts with {magic!r}, expected {MAGIC!r}); "
            "checkpoints are written by minireparam.save"
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: the checkpoint has format version {version}, newer than the versions this minireparam reads "
            f"(1 to {FORMAT_VERSION}); upgrade minireparam to load it"
        )
    if version < 1:
        raise CheckpointError(f"{path}: the checkpoint is corrupt: invalid format version {version}")

    if _PREAMBLE.size + header_size + _TRAILER.size > size:
        raise CheckpointError(
            f"{path}: the checkpoint is truncated: its header needs {header_size} bytes, the file has {size} in all"
        )
    raw_header = reader.read(header_size, "header")

    try:
        header = json.loads(raw_header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: the checkpoint is corrupt: its header is not valid JSON ({error})") from None
    if not isinstance(header, dict) or "tree" not in header or not isinstance(header.get("data_bytes"), int):
        raise CheckpointError(f"{path}: the checkpoint is corrupt: its header lacks the object tree or the data size")

    data_start = _aligned(reader.length)
    reader.skip(data_start - reader.length, "header padding")
    return header, data_start


def _collect_array_nodes(node, nodes, path):
    """Append the array nodes of the tree in saving order, validating each."""
    if isinstance(node, list):
        for item in node:
            _collect_array_nodes(item, nodes, path)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("t")
    if kind == "array":
        _validate_array_node(node, path)
        nodes.append(node)
    elif kind in ("dict", "tuple"):
        for item in node.get("v", []):
            _collect_array_nodes(item, nodes, path)


def _validate_array_node(node, path):
    dtype, shape = node.get("dtype"), node.get("shape")
    valid = (
        isinstance(dtype, str) and _DTYPE_PATTERN.match(dtype)
        and isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)
        and isinstance(node.get("offset"), int) and isinstance(node.get("nbytes"), int)
    )
    if not valid or np.dtype(dtype).itemsize * int(np.prod(shape)) != node["nbytes"]:
        raise CheckpointError(f"{path}: the checkpoint is corrupt: invalid array entry {node!r}")


def _read_arrays(reader, nodes, data_start, data_bytes, path):
    arrays = []
    for node in sorted(nodes, key=lambda n: n["offset"]):
        position = reader.length - data_start
        if node["offset"] < position or node["offset"] + node["nbytes"] > data_bytes:
            raise CheckpointError(f"{path}: the checkpoint is corrupt: array data at offset {node['offset']} overlaps")
        reader.skip(node["offset"] - position, "data padding")
        array = np.empty(node["shape"], dtype=np.dtype(node["dtype"]))
        reader.read_into(array.reshape(-1).view(np.uint8), "array data")
        node["_array"] = array
    reader.skip(data_start + data_bytes - reader.length, "data padding")
    for node in nodes:
        arrays.append(node.pop("_array"))
    return arrays


def _check_trailer(reader, file, path):
    crc, length = reader.crc, reader.length
    raw = file.read(_TRAILER.size)
    if len(raw) != _TRAILER.size:
        raise CheckpointError(f"{path}: the checkpoint is truncated: the end marker is missing")
    magic, saved_length, saved_crc = _TRAILER.unpack(raw)
    if magic != TRAILER_MAGIC or saved_length != length:
        raise CheckpointError(f"{path}: the checkpoint is corrupt: invalid end marker")
    if saved_crc != crc:
        raise CheckpointError(
            f"{path}: the checkpoint is corrupt: CRC-32 mismatch (stored {saved_crc:#010x}, computed {crc:#010x})"
        )


def _decode(node, arrays, path):
    if node is None or isinstance(node, (bool, str)):
        return node
    if isinstance(node, list):
        return [_decode(item, arrays, path) for item in node]
    if not isinstance(node, dict):
        raise CheckpointError(f"{path}: the checkpoint is corrupt: unexpected header value {node!r}")
    kind = node.get("t")
    try:
        if kind == "int":
            return int(node["v"])
        if kind == "float":
            return float.fromhex(node["v"])
        if kind == "array":
            array = next(arrays)
            return array[()] if node.get("scalar") else array
        if kind == "tuple":
            return tuple(_decode(item, arrays, path) for item in node["v"])
        if kind == "dict":
            keys = [_decode_key(key, path) for key in node["k"]]
            values = [_decode(item, arrays, path) for item in node["v"]]
            if len(keys) != len(values):
                raise CheckpointError(f"{path}: the checkpoint is corrupt: a dict has {len(keys)} keys and {len(values)} values")
            return dict(zip(keys, values))
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{path}: the checkpoint is corrupt: invalid {kind!r} entry ({error})") from None
    raise CheckpointError(f"{path}: the checkpoint is corrupt: unknown entry type {kind!r}")


def _decode_key(node, path):
    value = _decode(node, iter(()), path)
    return tuple(value) if isinstance(value, list) else value


__all__ = ["save", "load", "CheckpointError", "FORMAT_VERSION"]
