"""The pretrained backbone: the restricted ``.pth`` reader, EfficientNet-Lite0 with the ImageNet weights."""
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from models.preprocess import preprocess
from training.backbone import IMAGENET_INPUT, NUM_BLOCKS, build_efficientnet_lite0, weights_path
from training.tf import keras
from training.torch_pickle import MAGIC_NUMBER, PROTOCOL_VERSION, UnsafePickleError, load_state_dict

LABELS = json.loads((Path(__file__).parents[1] / "models" / "imagenet_labels.json").read_text())
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO, CUP = 967, 968


# -- A minimal writer for the legacy torch format, so tests need no torch. --------------------------------

def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _str(text: str) -> bytes:
    raw = text.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    return pickle.BININT + struct.pack("<i", value)


def _tuple(*items: bytes) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def _tensor(storage_key: str, numel: int, offset: int, shape, stride) -> bytes:
    """Pickle opcodes for ``torch._utils._rebuild_tensor_v2(storage, offset, shape, stride, False, {})``."""
    storage = _tuple(_str("storage"), _global("torch", "FloatStorage"), _str(storage_key), _str("cpu"),
                     _int(numel), pickle.NONE) + pickle.BINPERSID
    hooks = _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    arguments = _tuple(storage, _int(offset), _tuple(*map(_int, shape)), _tuple(*map(_int, stride)),
                       pickle.NEWFALSE, hooks)
    return _global("torch._utils", "_rebuild_tensor_v2") + arguments + pickle.REDUCE


def _state_dict_pickle(tensors: dict[str, bytes]) -> bytes:
    items = b"".join(_str(name) + tensor for name, tensor in tensors.items())
    ordered_dict = _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    return pickle.PROTO + b"\x02" + ordered_dict + pickle.MARK + items + pickle.SETITEMS + pickle.STOP


def write_legacy_pth(path: Path, main_pickle: bytes, storages: dict[str, np.ndarray]) -> Path:
    sys_info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 8}}
    with open(path, "wb") as file:
        for header in (MAGIC_NUMBER, PROTOCOL_VERSION, sys_info):
            file.write(pickle.dumps(header, protocol=2))
        file.write(main_pickle)
        file.write(pickle.dumps(list(storages), protocol=2))
        for array in storages.values():
            file.write(struct.pack("<q", array.size) + array.astype("<f4").tobytes())
    return path


# -- The restricted reader. ------------------------------------------------------------------------------

@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval")])
def test_reader_refuses_code_execution(tmp_path, module, name):
    marker = tmp_path / "pwned"
    payload = f"open({str(marker)!r}, 'w')" if name == "eval" else f"touch {marker}"
    call = _global(module, name) + _tuple(_str(payload)) + pickle.REDUCE
    main = pickle.PROTO + b"\x02" + call + pickle.STOP
    path = write_legacy_pth(tmp_path / "evil.pth", main, {})

    with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
        load_state_dict(path)
    assert not marker.exists()


def test_reader_honours_offset_and_stride(tmp_path):
    storage = np.arange(24, dtype=np.float32)
    tensors = {
        "matrix": _tensor("0", 24, 0, (2, 3), (3, 1)),
        "transposed": _tensor("0", 24, 0, (3, 2), (1, 3)),
        "offset": _tensor("0", 24, 6, (4,), (1,)),
        "strided": _tensor("0", 24, 1, (2, 2), (12, 2)),
        "scalar": _tensor("0", 24, 5, (), ()),
    }
    path = write_legacy_pth(tmp_path / "views.pth", _state_dict_pickle(tensors), {"0": storage})
    state = load_state_dict(path)

    assert list(state) == list(tensors)
    np.testing.assert_array_equal(state["matrix"], storage[:6].reshape(2, 3))
    np.testing.assert_array_equal(state["transposed"], storage[:6].reshape(2, 3).T)
    np.testing.assert_array_equal(state["offset"], [6, 7, 8, 9])
    np.testing.assert_array_equal(state["strided"], [[1, 3], [13, 15]])
    assert state["scalar"].shape == () and state["scalar"] == 5
    assert all(array.flags.c_contiguous and array.flags.writeable for array in state.values())


def test_reader_refuses_tensor_outside_its_storage(tmp_path):
    tensors = {"too_long": _tensor("0", 4, 2, (3,), (1,))}
    path = write_legacy_pth(tmp_path / "bad.pth", _state_dict_pickle(tensors), {"0": np.zeros(4, np.float32)})
    with pytest.raises(ValueError, match="outside its storage"):
        load_state_dict(path)


def test_reader_on_real_checkpoint():
    state = load_state_dict(weights_path())

    parameters = {name: array for name, array in state.items() if not name.endswith("num_batches_tracked")}
    assert sum(array.size for array in parameters.values()) == 4_694_024
    assert next(iter(state)) == "_conv_stem.weight"
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert all(array.dtype == np.float32 for array in parameters.values())


# -- EfficientNet-Lite0 with the ImageNet weights. -------------------------------------------------------

@pytest.fixture(scope="module")
def imagenet_model():
    return build_efficientnet_lite0()


def imagenet_top(model, image: np.ndarray, k: int, size: int = 224) -> list[int]:
    x = preprocess(Image.fromarray(image), IMAGENET_INPUT | {"size": size})
    logits = model.predict(x[None], verbose=0)[0]
    return [int(i) for i in np.argsort(-logits)[:k]]


def test_labels_match_outputs():
    assert len(LABELS) == 1000 and len(set(LABELS)) == 1000
    assert (LABELS[281], LABELS[ESPRESSO]) == ("tabby", "espresso")


@pytest.mark.slow
def test_model_layout(imagenet_model):
    assert imagenet_model.count_params() == 4_694_024
    assert imagenet_model.input.name == "image"
    assert imagenet_model.get_layer("top_activation").output.shape == (None, 7, 7, 1280)
    assert imagenet_model.get_layer("avg_pool").output.shape == (None, 1280)
    assert imagenet_model.get_layer("logits").output.shape == (None, 1000)


@pytest.mark.slow
def test_chelsea_is_a_cat(imagenet_model):
    top3 = imagenet_top(imagenet_model, data.chelsea(), 3)
    assert set(top3) & set(CAT_CLASSES), [LABELS[i] for i in top3]


@pytest.mark.slow
def test_coffee_is_espresso(imagenet_model):
    top1 = imagenet_top(imagenet_model, data.coffee(), 1)
    assert top1[0] in (ESPRESSO, CUP), LABELS[top1[0]]


@pytest.mark.slow
def test_other_input_size_keeps_the_weights():
    model = build_efficientnet_lite0(input_size=192)
    top5 = imagenet_top(model, data.chelsea(), 5, size=192)
    assert set(top5) & set(CAT_CLASSES), [LABELS[i] for i in top5]


@pytest.mark.slow
def test_feature_map_without_top():
    model = build_efficientnet_lite0(include_top=False, weights=None)
    assert model.output_shape == (None, 7, 7, 1280)
    assert model.layers[-1].name == "top_activation"


@pytest.mark.slow
def test_frozen_backbone():
    model = build_efficientnet_lite0(include_top=False, weights=None, trainable_blocks=0)
    assert model.trainable_weights == []


@pytest.mark.slow
def test_last_blocks_trainable_and_batchnorm_frozen():
    model = build_efficientnet_lite0(weights=None, trainable_blocks=2)
    trainable = {layer.name for layer in model.layers if layer.trainable_weights}
    last_two = {f"block{i}_{part}" for i in (NUM_BLOCKS - 2, NUM_BLOCKS - 1)
                for part in ("expand_conv", "dwconv", "project_conv")}
    assert trainable == last_two | {"top_conv"}
    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(batch_norms) == 49 and not any(layer.trainable for layer in batch_norms)
