"""Test-session settings shared by every test module."""

import os

# Quiet TensorFlow's C++ logging in subprocesses and here; JAX runs on the CPU in tests.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
