"""Read a legacy (pre-1.6, non-zip) PyTorch ``.pth`` state dict into numpy arrays, without torch.

The legacy format is a sequence of pickles followed by raw storage bytes:

1. magic number, 2. protocol version, 3. system info (endianness, type sizes),
4. the state dict itself, whose tensors refer to storages through persistent ids
   ``("storage", storage_type, key, location, numel, view_metadata)``,
5. the list of storage keys, then for each key: an int64 element count and the raw little-endian bytes.

Pickle can run arbitrary code, so every pickle is read by :class:`RestrictedUnpickler`, which resolves
only ``collections.OrderedDict``, the torch storage types and ``torch._utils._rebuild_tensor_v2`` (to
harmless local stand-ins); any other global raises :class:`UnsafePickleError`.
"""
from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle references a global outside the allow-list (it could execute code)."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass(frozen=True)
class _StorageRef:
    """A window ``[offset, offset + numel)`` into root storage ``key``, whose bytes come later."""

    key: str
    dtype: np.dtype
    offset: int
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: remember where the tensor lives."""
    if not isinstance(storage, _StorageRef):
        raise ValueError("corrupt .pth: tensor without a storage")
    return _TensorRef(storage, int(storage_offset), tuple(map(int, size)), tuple(map(int, stride)))


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a legacy state dict needs."""

    def __init__(self, file, storages: dict[str, tuple[np.dtype, int]] | None = None):
        super().__init__(file)
        self.storages = storages  # root key -> (dtype, numel), filled by persistent_load

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafePickleError(f"refusing to load global {module}.{name} from a pickle (not allow-listed)")

    def persistent_load(self, pid):
        if self.storages is None or not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise UnsafePickleError(f"unsupported persistent id in pickle: {pid!r:.80}")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType):
            raise ValueError(f"corrupt .pth: storage type {storage_type!r:.80}")
        dtype, numel = storage_type.dtype, int(numel)
        if self.storages.setdefault(key, (dtype, numel)) != (dtype, numel):
            raise ValueError(f"corrupt .pth: storage {key} declared twice with different types or sizes")
        if view is None:
            return _StorageRef(key, dtype, 0, numel)
        _view_key, offset, view_numel = view
        return _StorageRef(key, dtype, int(offset), int(view_numel))


def _restricted_load(file, storages=None):
    return RestrictedUnpickler(file, storages).load()


def _read_storage(file, key: str, dtype: np.dtype, numel: int) -> np.ndarray:
    (count,) = np.frombuffer(file.read(8), dtype="<i8")
    if count != numel:
        raise ValueError(f"corrupt .pth: storage {key} holds {count} elements, {numel} expected")
    data = file.read(numel * dtype.itemsize)
    if len(data) != numel * dtype.itemsize:
        raise ValueError(f"corrupt .pth: storage {key} is truncated")
    return np.frombuffer(data, dtype=dtype)


def _materialize(ref: _TensorRef, roots: dict[str, np.ndarray]) -> np.ndarray:
    """Build an owned, C-contiguous array for ``ref``, checking it stays inside its storage."""
    storage = roots[ref.storage.key][ref.storage.offset : ref.storage.offset + ref.storage.numel]
    if len(ref.shape) != len(ref.stride) or any(n < 0 for n in ref.shape + ref.stride):
        raise ValueError(f"corrupt .pth: bad tensor geometry {ref.shape} / {ref.stride}")
    if 0 in ref.shape:
        return np.zeros(ref.shape, dtype=storage.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if ref.offset < 0 or last >= storage.size:
        raise ValueError("corrupt .pth: tensor reaches outside its storage")
    window = storage[ref.offset :]
    strides = tuple(s * storage.itemsize for s in ref.stride)
    return np.array(np.lib.stride_tricks.as_strided(window, ref.shape, strides, writeable=False), order="C")


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read the legacy torch state dict at ``path`` into ``{name: array}``, in file order.

    Raises :class:`UnsafePickleError` if the file references anything outside the allow-list, and
    ``ValueError`` for zip-format (torch >= 1.6) or corrupt files.
    """
    data = Path(path).read_bytes()
    if data[:2] == b"PK":
        raise ValueError(f"{path} is a zip-format (torch >= 1.6) checkpoint; only legacy ones are supported")
    file = io.BytesIO(data)
    if _restricted_load(file) != MAGIC_NUMBER:
        raise ValueError(f"{path} is not a legacy torch file (bad magic number)")
    if (version := _restricted_load(file)) != PROTOCOL_VERSION:
        raise ValueError(f"{path}: unsupported torch protocol version {version}")
    sys_info = _restricted_load(file)
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian")):
        raise ValueError(f"{path} was not written on a little-endian machine")

    storages: dict[str, tuple[np.dtype, int]] = {}
    state = _restricted_load(file, storages)
    keys = _restricted_load(file)
    if not isinstance(state, dict) or set(keys) != set(storages):
        raise ValueError(f"{path} is not a state dict (or its storage list is inconsistent)")
    roots = {key: _read_storage(file, key, *storages[key]) for key in keys}

    arrays = {}
    for name, value in state.items():
        if not (isinstance(name, str) and isinstance(value, _TensorRef)):
            raise ValueError(f"{path}: entry {name!r:.80} is not a tensor")
        arrays[name] = _materialize(value, roots)
    return arrays
