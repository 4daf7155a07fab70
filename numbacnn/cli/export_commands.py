"""``numbacnn export CKPT FILE``: a trained model's weights as safetensors, or the model as ONNX."""

import click

from .common import EXIT_USAGE, checkpoint_model, fail
from .main import main

EXPORT_EPILOG = """\b
Examples:
  numbacnn export runs/lenet5/checkpoint.npz lenet5.onnx          # needs: pip install 'numbacnn[onnx]'
  numbacnn export runs/lenet5/checkpoint.npz lenet5.safetensors   # PyTorch key names

The ONNX file computes the eval-mode model (BatchNorm with its running statistics) for inputs of
shape (batch, C, H, W), any batch; ONNX Runtime runs it: onnxruntime.InferenceSession(FILE).
"""


@main.command(epilog=EXPORT_EPILOG)
@click.argument("checkpoint", type=click.Path())
@click.argument("file", type=click.Path(dir_okay=False))
def export(checkpoint, file):
    """Write the model of CHECKPOINT to FILE: .onnx (opset 17) or .safetensors (weights only)."""
    if not file.endswith((".onnx", ".safetensors")):
        fail(f"{file}: the file name should end in .onnx or .safetensors", EXIT_USAGE)
    model, facts, _ = checkpoint_model(checkpoint)
    if file.endswith(".safetensors"):
        model.save(file)
        click.echo(f"wrote {file}: {len(model.state_dict())} tensors with PyTorch key names")
        return
    from .. import onnx as onnx_export

    try:
        onnx_export.export(model, file, facts.image_shape)
    except ImportError as e:
        fail(str(e), EXIT_USAGE)
    shape = ", ".join(str(s) for s in facts.image_shape)
    click.echo(f"wrote {file}: ONNX opset {onnx_export.OPSET}, input 'input' (batch, {shape}), output 'output'")
