"""Named recipes (``numbacnn train MODEL --recipe NAME``): defaults for a goal, applied over the
model's own and under every option given beside them. The README's results table gives each one's
command, wall time and accuracy from a run.
"""

RECIPES = {
    "long": (
        "ResNet-20 at its best within an hour on 2 cores: 28 epochs, SGD with Nesterov momentum, "
        "lr 0.1 cosine after a 1-epoch warm-up, weight decay 5e-4, batch 128, crop + flip + random "
        "erasing 0.5, weight averaging 0.999",
        {
            "epochs": 28,
            "batch_size": 128,
            "optimizer": "sgd",
            "nesterov": True,
            "lr": 0.1,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "schedule": "cosine",
            "warmup_epochs": 1,
            "augment": True,
            "random_erasing": 0.5,
            "ema": 0.999,
        },
    ),
}

__all__ = ["RECIPES"]
