"""Models by name: output shapes on every compatible input, published parameter counts, norm switch, seeds, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.curvature import HessianOperator
from workbench.datasets import load_dataset
from workbench.models import MODELS, NORMS, build_model, model_options

SMALL = {
    "mlp": {},
    "cnn": {"width": 4, "depth": 2},
    "resnet18": {"width": 4},
    "wideresnet": {"depth": 10, "widen_factor": 1},
}
SHAPES = {
    "mlp": [(2,), (1, 40), (1, 8, 8)],
    "cnn": [(1, 40), (1, 8, 8), (3, 16, 16)],
    "resnet18": [(1, 8, 8), (3, 16, 16)],
    "wideresnet": [(3, 16, 16)],
}
# The transformer (token windows, LayerNorm only) has its own tests: tests/test_language.py.
CASES = [(name, shape, norm) for name in SHAPES for shape in SHAPES[name] for norm in NORMS]


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize(("name", "shape", "norm"), CASES)
def test_logits_shape_and_norm_switch(name: str, shape: tuple[int, ...], norm: str) -> None:
    model = build_model(name, input_shape=shape, num_classes=5, seed=0, norm=norm, **SMALL[name])
    logits = model(torch.randn(3, *shape))
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    assert has_batchnorm(model) == (norm == "batch")


def test_cnn_dimension_follows_the_input_shape() -> None:
    sequence = build_model("cnn", input_shape=(1, 40), num_classes=10)
    image = build_model("cnn", input_shape=(3, 32, 32), num_classes=10)
    assert any(isinstance(m, nn.Conv1d) for m in sequence.modules())
    assert not any(isinstance(m, nn.Conv2d) for m in sequence.modules())
    assert any(isinstance(m, nn.Conv2d) for m in image.modules())


def test_mlp_layer_sizes_by_hand() -> None:
    model = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden_sizes=(32, 16))
    assert parameter_count(model) == (64 * 32 + 32) + (32 * 16 + 16) + (16 * 10 + 10)
    with_norm = build_model("mlp", input_shape=(64,), num_classes=10, hidden_sizes=(32, 16), norm="batch")
    assert parameter_count(with_norm) == 64 * 32 + 2 * 32 + 32 * 16 + 2 * 16 + 16 * 10 + 10  # BN replaces biases
    logistic = build_model("mlp", input_shape=(2,), num_classes=3, hidden_sizes=())
    assert parameter_count(logistic) == 2 * 3 + 3


def test_resnet18_matches_the_published_count() -> None:
    ten = build_model("resnet18", input_shape=(3, 32, 32), num_classes=10)
    hundred = build_model("resnet18", input_shape=(3, 32, 32), num_classes=100)
    assert parameter_count(ten) == 11_173_962  # kuangliu/pytorch-cifar ResNet18, CIFAR-10
    assert parameter_count(hundred) - parameter_count(ten) == 90 * (512 + 1)  # only the head grows


def test_wideresnet_28_10_matches_the_published_count() -> None:
    model = build_model("wideresnet", input_shape=(3, 32, 32), num_classes=10)
    assert model_options("wideresnet")["depth"] == 28 and model_options("wideresnet")["widen_factor"] == 10
    assert parameter_count(model) == 36_479_194  # Zagoruyko & Komodakis WRN-28-10, CIFAR-10


def test_wideresnet_count_by_hand_for_wrn_10_1() -> None:
    model = build_model("wideresnet", input_shape=(3, 32, 32), num_classes=10, depth=10, widen_factor=1)
    stem = 3 * 16 * 9
    group1 = 2 * 16 + 16 * 16 * 9 + 2 * 16 + 16 * 16 * 9  # equal widths: identity shortcut
    group2 = 2 * 16 + 16 * 32 * 9 + 2 * 32 + 32 * 32 * 9 + 16 * 32  # strided 1×1 shortcut
    group3 = 2 * 32 + 32 * 64 * 9 + 2 * 64 + 64 * 64 * 9 + 32 * 64
    head = 2 * 64 + 64 * 10 + 10
    assert parameter_count(model) == stem + group1 + group2 + group3 + head


def test_seed_makes_init_reproducible_and_leaves_global_rng() -> None:
    torch.manual_seed(99)
    before = torch.get_rng_state()
    a = build_model("cnn", input_shape=(1, 8, 8), num_classes=10, seed=3)
    b = build_model("cnn", input_shape=(1, 8, 8), num_classes=10, seed=3)
    c = build_model("cnn", input_shape=(1, 8, 8), num_classes=10, seed=4)
    assert torch.equal(torch.get_rng_state(), before)
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), key
    assert not torch.equal(a.state_dict()["layers.0.weight"], c.state_dict()["layers.0.weight"])
    torch.manual_seed(7)
    d = build_model("mlp", input_shape=(2,), num_classes=2)
    torch.manual_seed(7)
    e = build_model("mlp", input_shape=(2,), num_classes=2)
    assert all(torch.equal(x, y) for x, y in zip(d.parameters(), e.parameters(), strict=True))


@pytest.mark.parametrize(("dataset", "model"), [("digits", "cnn"), ("digits", "mlp"), ("blobs", "mlp")])
def test_dataset_input_shape_feeds_the_model(dataset: str, model: str) -> None:
    splits = load_dataset(dataset, seed=0)
    net = build_model(model, input_shape=splits.input_shape, num_classes=splits.num_classes, seed=0)
    assert net(splits.test.tensors[0][:4]).shape == (4, splits.num_classes)


def test_mlp_learns_the_moons() -> None:
    splits = load_dataset("moons", seed=0, num_samples=400)
    model = build_model("mlp", input_shape=splits.input_shape, num_classes=2, seed=0, hidden_sizes=(32, 32))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    inputs, targets = splits.train.tensors
    for _ in range(60):
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    test_inputs, test_targets = splits.test.tensors
    accuracy = (model(test_inputs).argmax(1) == test_targets).float().mean().item()
    assert accuracy > 0.95  # the two moons are separable up to the noise (std 0.1)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("vgg", {}, "model must be one of 'mlp', 'cnn', 'resnet18', 'wideresnet'"),
        ("mlp", {"hidden": (8,)}, "unknown option.*'hidden'.*allowed options: 'hidden_sizes', 'activation', 'norm'"),
        ("mlp", {"hidden_sizes": 8}, "hidden_sizes must be a sequence"),
        ("mlp", {"hidden_sizes": (8, 0)}, r"hidden_sizes\[1\] must be an integer >= 1"),
        ("mlp", {"activation": "swish"}, "activation must be one of 'relu'"),
        ("mlp", {"norm": "layer"}, "norm must be one of 'batch', 'none'"),
        ("mlp", {"num_classes": 1}, "num_classes must be an integer >= 2"),
        ("mlp", {"seed": -1}, "seed must be an integer >= 0"),
        ("resnet18", {"input_shape": (2,)}, r"input_shape for 'resnet18' must be \(C, H, W\)"),
        ("cnn", {"input_shape": (2,)}, r"input_shape for 'cnn' must be \(C, L\) or \(C, H, W\)"),
        ("cnn", {"input_shape": (1, 1)}, "spatial sizes >= 2"),
        ("cnn", {"input_shape": (1, 8, 8), "depth": 4}, r"depth must be an integer in \[1, 3\] for input_shape"),
        ("cnn", {"kernel_size": 4}, "kernel_size must be an odd integer"),
        ("wideresnet", {"depth": 27}, "depth must be 6n \\+ 4"),
        ("wideresnet", {"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ("wideresnet", {"input_shape": (3, 32)}, r"input_shape for 'wideresnet' must be \(C, H, W\)"),
    ],
)
def test_bad_input_names_the_option(name: str, kwargs: dict, message: str) -> None:
    arguments = {"input_shape": (1, 8, 8), "num_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_model(name, **arguments)


@pytest.mark.parametrize("name", list(SHAPES))  # the transformer: tests/test_language.py
def test_models_support_both_hessian_vector_product_backends(name: str) -> None:
    """No in-place activations or other ops that break double backprop or torch.func: both HVPs agree."""
    inputs = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    targets = torch.arange(6) % 3
    model = build_model(name, input_shape=(3, 8, 8), num_classes=3, seed=0, **SMALL[name]).double()
    with torch.no_grad():  # non-trivial BatchNorm running statistics
        model(inputs.double() * 2 + 1)
    ops = [HessianOperator(model, F.cross_entropy, (inputs.double(), targets), hvp=hvp) for hvp in ("graph", "func")]
    vector = torch.randn(ops[0].num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ops[0].matvec(vector), ops[1].matvec(vector))


def test_every_registered_model_is_covered_here_or_in_the_language_tests() -> None:
    assert set(MODELS) == set(SHAPES) | {"transformer"}
