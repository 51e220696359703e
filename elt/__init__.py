"""ELT: Elastic Looped Transformers for visual generation."""

import os

# TensorFlow (tfds, tf.data) prints C++ start-up chatter on every stage; keep warnings and errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
