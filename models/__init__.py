"""The model contract shared by training, export and serving: card schema, registry, preprocessing.

This package never imports TensorFlow. Generated versions live under ``models/store/`` (git-ignored).
"""
