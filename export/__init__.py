"""Export of registry versions to ONNX (and later TFLite / TF.js). Imports TensorFlow via ``training.tf``."""
