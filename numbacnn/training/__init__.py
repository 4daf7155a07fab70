"""Training runs: the Trainer and what it uses (evaluation, progress, the run log, run folders,
metrics) and the run configuration that builds them."""

from .averaging import WeightAverage
from .evaluation import class_probabilities, evaluate
from .recipes import RECIPES
from .trainer import Trainer

__all__ = ["RECIPES", "Trainer", "WeightAverage", "class_probabilities", "evaluate"]
