"""The Python side of the fast decode path: it loads and drives the native code kept in the
repository's top-level kernels/ folder (C++ for the CPU, CUDA for the GPU), behind the same
Decoder interface as the plain PyTorch reference (backends.py). Nothing here imports the commands."""
