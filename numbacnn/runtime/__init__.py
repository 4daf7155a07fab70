"""The runtime under every layer: devices, threads, the JIT cache, quick start, core sharing.

Nothing here imports numpy or numba at package import: the package root reads threads.py before
either loads."""
