"""Turn a run configuration (what ``numbacnn train`` parses) into data, model, optimizer, schedule
and :class:`~numbacnn.training.trainer.Trainer`. The configuration is stored in every checkpoint, so
``--resume`` and ``evaluate`` rebuild exactly the same objects from it.
"""

from types import SimpleNamespace

from .. import init, losses, models, optim
from ..data import DATASET_NAMES, DataLoader, dataset_key, load_dataset, load_own, subset
from ..runtime.devices import get_device
from .recipes import RECIPES
from .trainer import Trainer

__all__ = [
    "precompile",
    "BASE",
    "MODEL_DEFAULTS",
    "build_model",
    "freeze",
    "load_matching",
    "build_trainer",
    "data_facts",
    "load_data",
    "resolve_config",
    "evaluation_loader",
]

# Good defaults per model family (``models.family(name)``): `numbacnn train lenet5` alone does the
# right thing. LeNet-5's weight decay and label smoothing were chosen over seeds (benchmarks/NOTES.md,
# entry 62): 91.3-91.6% after 10 epochs, against 90.8-91.1% with 5e-4 and no smoothing.
MODEL_DEFAULTS = {
    "lenet": {
        "epochs": 10,
        "batch_size": 64,
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "weight_decay": 1e-3,
        "schedule": "cosine",
        "warmup_epochs": 0,
        "augment": False,
        "label_smoothing": 0.1,
    },
    "resnet": {
        "epochs": 15,
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "augment": True,
    },
}
# The classic families train like the ResNets but for 10 epochs; BatchNorm lets VGG and Inception
# take a high rate, AlexNet (no normalisation) trains at a fifth of it.
_CLASSIC = dict(MODEL_DEFAULTS["resnet"], epochs=10, lr=0.05)
MODEL_DEFAULTS.update(vgg=dict(_CLASSIC), inception=dict(_CLASSIC), alexnet=dict(_CLASSIC, lr=0.01))
BASE = {
    "dataset": "fashion-mnist",
    "seed": 0,
    "device": "cpu",
    "data_dir": None,
    "label_smoothing": 0.0,
    "synthetic_size": 2048,
    # Random erasing (off by default; Zhong et al.'s setting is 0.5) and weight averaging (off).
    "random_erasing": 0.0,
    "erasing_area": [0.02, 0.4],
    "erasing_ratio": [0.3, 3.3],
    "ema": 0.0,
    "nesterov": False,
    "recipe": None,
}


def resolve_config(model, recipe=None, **options):
    """Defaults for ``model``, then those of ``recipe`` (recipes.py), overridden by every option
    that is not None (ValueError naming the registered models for an unknown one)."""
    config = dict(BASE, **MODEL_DEFAULTS[models.family(model)], model=model)
    if recipe is not None:
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}: {', '.join(sorted(RECIPES))}")
        config.update(RECIPES[recipe][1], recipe=recipe)
    config.update({k: v for k, v in options.items() if v is not None})
    config["dataset"] = dataset_key(config["dataset"])
    for key in ("erasing_area", "erasing_ratio"):  # JSON keeps lists: compare like with like
        config[key] = [float(v) for v in config[key]]
    return config


def load_data(config, progress=None):
    """The data set of ``config``, restricted to ``class_subset`` / ``per_class`` when set."""
    dataset = _load_whole(config, progress)
    if config.get("class_subset") is not None or config.get("per_class") is not None:
        dataset = subset(dataset, config.get("class_subset"), config.get("per_class"))
    return dataset


# The settings of a user's own data set (--dataset PATH); absent from older checkpoints.
OWN_DATA_KEYS = ("image_size", "channels", "val_split", "test_data", "skip_bad_images")


def own_data_settings(config, dataset):
    """The preprocessing a run on the user's own data resolved (image size, channels), to record
    in its configuration so that --resume and evaluate reproduce it; {} for a named data set."""
    if config["dataset"] in DATASET_NAMES:
        return {}
    return {"image_size": dataset.image_shape[1], "channels": dataset.image_shape[0]}


def _load_whole(config, progress):
    if config["dataset"] not in DATASET_NAMES:
        options = {k: config.get(k) for k in OWN_DATA_KEYS}
        options["image_size"] = options["image_size"] or models.usual_input_size(config["model"])
        return load_own(config["dataset"], progress=progress, seed=config["seed"], **options)
    # Only the synthetic data set reads the size options.
    return load_dataset(
        config["dataset"],
        data_dir=config.get("data_dir"),
        progress=progress,
        train_size=config.get("synthetic_size", 2048),
        test_size=512,
        size=28,
        channels=1,
        seed=config["seed"],
    )


def build_model(config, dataset):
    """The model of ``config`` for ``dataset`` (its classifier sized ``config["num_classes"]`` when
    set, else the data set's class count), seeded, on the configured device."""
    init.manual_seed(config["seed"])
    c, h, _ = dataset.image_shape
    num_classes = config.get("num_classes") or dataset.num_classes
    if num_classes < dataset.num_classes:
        raise ValueError(
            f"--num-classes {num_classes} is fewer than the {dataset.num_classes} classes of the training data"
        )
    model = models.create(config["model"], c, num_classes, h)
    return model.to(get_device(config["device"]))


def freeze(model, prefixes):
    """Freeze the parameters whose names are, or lie under, each of ``prefixes`` (module paths as
    in the state dict: "0", "layer1", "layer2.0.conv1"); ValueError naming a prefix that matches
    nothing. Returns the frozen parameter names."""
    params = dict(model.named_parameters())
    frozen = []
    for prefix in prefixes or ():
        prefix = prefix.rstrip(".")
        hits = [n for n in params if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            modules = sorted({n.rsplit(".", 1)[0] for n in params})
            raise ValueError(
                f"--freeze {prefix}: no parameter of the model lies under it; modules: {', '.join(modules)}"
            )
        frozen += hits
    for name in frozen:
        params[name].requires_grad = False
    return frozen


def load_matching(model, state):
    """Copy into ``model`` every array of ``state`` whose key and shape match (transfer learning:
    a pretrained trunk, a head of another size). Returns (loaded, skipped, new): keys copied, keys
    of ``state`` not copied (absent here, or another shape), and model keys ``state`` lacks."""
    own = model.state_dict()
    loaded = [k for k in own if k in state and tuple(state[k].shape) == own[k].shape]
    skipped = [k for k in state if k not in loaded]
    new = [k for k in own if k not in state]
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return loaded, skipped, new


DATA_FACT_KEYS = ("image_shape", "classes", "mean", "std")


def data_facts(config):
    """What a trained model needs to know of its data set, as recorded by :func:`build_trainer`
    (image_shape, classes, mean, std; ``num_classes`` derived)."""
    facts = {k: tuple(config[k]) for k in DATA_FACT_KEYS}
    return SimpleNamespace(**facts, num_classes=len(facts["classes"]))


def build_trainer(config, dataset, out_dir=None, progress=True, checkpoint_every=None, world=None):
    """Model, loss, optimizer, schedule and loaders for ``config``, wrapped in a Trainer.

    The data set's shape, class names and normalisation are added to the config that every
    checkpoint stores, so ``predict`` needs no data set to read an image. With a ``world`` of
    several ranks (distributed.py) the loaders are sharded, ``batch_size`` is per rank, and
    ``config["sync_bn"]`` makes BatchNorm use every rank's images.
    """
    from ..distributed import World, sync_batchnorm

    world = world or World()
    config = dict(
        config,
        image_shape=list(dataset.image_shape),
        classes=list(dataset.classes),
        mean=list(dataset.mean),
        std=list(dataset.std),
        world_size=world.size,
    )
    model = build_model(config, dataset)
    freeze(model, config.get("freeze"))
    if config.get("sync_bn"):
        sync_batchnorm(model, world)
    train_loader = DataLoader(
        dataset.train_images,
        dataset.train_labels,
        config["batch_size"],
        shuffle=True,
        seed=config["seed"],
        mean=dataset.mean,
        std=dataset.std,
        augment=config["augment"],
        pad=2 if dataset.image_shape[1] <= 28 else 4,
        rank=world.rank,
        world_size=world.size,
        erasing=(config.get("random_erasing", 0.0), config.get("erasing_area"), config.get("erasing_ratio")),
    )
    val_loader = evaluation_loader(config, dataset, world=world)
    params = model.parameters()
    name = config["optimizer"].lower()
    if name == "sgd":
        opt = optim.SGD(
            params,
            lr=config["lr"],
            momentum=config["momentum"],
            weight_decay=config["weight_decay"],
            nesterov=config.get("nesterov", False),
        )
    elif name == "adam":
        opt = optim.Adam(params, lr=config["lr"], weight_decay=config["weight_decay"])
    elif name == "adamw":
        opt = optim.AdamW(params, lr=config["lr"], weight_decay=config["weight_decay"])
    else:
        raise ValueError(f"unknown optimizer {config['optimizer']!r}: sgd, adam or adamw")
    steps_per_epoch = len(train_loader)
    warmup = int(config.get("warmup_epochs", 0) * steps_per_epoch)
    kind = config["schedule"]
    if kind == "cosine":
        schedule = optim.CosineAnnealingLR(opt, config["epochs"] * steps_per_epoch, warmup_steps=warmup)
    elif kind == "step":
        schedule = optim.StepLR(opt, max(1, config["epochs"] * steps_per_epoch // 3), 0.1, warmup_steps=warmup)
    elif kind == "constant":
        schedule = optim.ConstantLR(opt, warmup_steps=warmup)
    else:
        raise ValueError(f"unknown schedule {kind!r}: cosine, step or constant")
    loss = losses.CrossEntropyLoss(label_smoothing=config["label_smoothing"])
    adversary = None
    if config.get("adversarial"):
        from ..adversarial import Adversary, pixel_units

        eps, clip = pixel_units(config.get("adv_eps", 0.1), dataset.mean, dataset.std)
        adversary = Adversary(eps, clip, config.get("adv_ratio", 0.5), config["adversarial"])
    return Trainer(
        model,
        loss,
        opt,
        train_loader,
        val_loader,
        schedule,
        out_dir=out_dir,
        config=config,
        progress=progress,
        num_classes=model.output_shape((1, *dataset.image_shape))[1],
        checkpoint_every=checkpoint_every,
        world=world,
        adversary=adversary,
        ema=config.get("ema") or None,
    )


def evaluation_loader(config, dataset, batch_size=500, world=None):
    """The test set in order (sharded over ``world``'s ranks when it has several)."""
    rank, size = (world.rank, world.size) if world is not None else (0, 1)
    return DataLoader(
        dataset.test_images,
        dataset.test_labels,
        batch_size,
        shuffle=False,
        mean=dataset.mean,
        std=dataset.std,
        rank=rank,
        world_size=size,
    )


def precompile(model_name, input_shape=None):
    """Compile (or load from the cache) every CPU kernel that training, evaluating and predicting
    with ``model_name`` uses, on synthetic batches: a full one (``FULL_BATCH`` images, the size from
    which every batch takes one path) and, for prediction, a tiny one. Returns the seconds it took."""
    import time

    import numpy as np

    from ..layers import Softmax
    from ..runtime import quick_start, warm_keys

    started = time.perf_counter()
    c, h, _ = input_shape or (1, 28, 28)  # the default data set's images
    full = warm_keys.FULL_BATCH
    config = resolve_config(model_name, dataset="synthetic", synthetic_size=full, batch_size=full, epochs=1)
    dataset = load_dataset("synthetic", train_size=full, test_size=full, channels=c, size=h, seed=0)
    trainer = build_trainer(dict(config, augment=True), dataset, progress=False)
    # Compile everything here, and record the signatures, so that quick start knows them warm.
    routing = quick_start.begin(numpy=False)
    try:
        trainer.fit(1, max_steps=1)
        x, _ = next(iter(evaluation_loader(config, dataset, batch_size=full).epoch(0)))
        for batch in (x, x[:2]):  # evaluation, and prediction of a few images
            Softmax()(trainer.model.eval().forward(np.ascontiguousarray(batch)))
    finally:
        if routing is not None:
            routing.close()
    return time.perf_counter() - started
