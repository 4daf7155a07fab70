"""Developer tools that sit above the library (they may use every part of it): ``python -m
numbacnn.tools.ptx`` compiles every CUDA kernel to PTX and reports float64 leaks."""
