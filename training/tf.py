"""The one place where TensorFlow is imported for training and export.

tensorflow-model-optimization only works with Keras 2 (``tf_keras``), and importing it silently switches
``TF_USE_LEGACY_KERAS`` on. Setting the flag here, before TensorFlow is imported, keeps every module on
the same Keras flavour. Import ``tf`` and ``keras`` from this module, never ``tensorflow.keras``.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
