"""Weight files: numbacnn checkpoints (.npz) and safetensors files, read and written without
optional dependencies."""
