"""Training side of RIIM: pretrained backbone, data, fine-tuning. Imports TensorFlow (via ``training.tf``)."""
