"""Loss slices: batched evaluation equals a naive in-place loop, grid layout, closed forms, integrity, bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from workbench.losses import BatchLoss, accuracy_of, batch_loss
from workbench.modes import eval_mode
from workbench.params import unflatten
from workbench.probes import loss_slice_1d, loss_slice_2d, pointwise, random_filter_normalized_direction

from .probe_models import QUADRATIC_DATA, Quadratic, conv_net_in_train_mode, identity_loss


@pytest.fixture(scope="module")
def cnn():
    """A conv net with BatchNorm (non-trivial running statistics), two data batches and two directions."""
    model, inputs, targets = conv_net_in_train_mode(seed=1, samples=24)
    batches = [(inputs[:9], targets[:9]), (inputs[9:], targets[9:])]
    d1 = random_filter_normalized_direction(model, seed=1)
    d2 = random_filter_normalized_direction(model, seed=2, include_biases_and_norms=True)
    return model, batches, d1, d2


def _naive_metrics(model, batches, offset: torch.Tensor) -> tuple[float, float]:
    """Perturb the parameters in place, evaluate every batch in eval mode, restore: the reference loop."""
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    total = sum(int(t.shape[0]) for _, t in batches)
    loss = correct = 0.0
    with torch.no_grad(), eval_mode(model):
        for p, piece in zip(params, unflatten(offset, params), strict=True):
            p.add_(piece)
        for inputs, targets in batches:
            outputs = model(inputs)
            loss += float(F.cross_entropy(outputs, targets)) * targets.shape[0] / total
            correct += float((outputs.argmax(1) == targets).sum()) / total
        for p, value in zip(params, saved, strict=True):
            p.copy_(value)
    return loss, correct


def test_batched_2d_slice_equals_a_naive_loop(cnn):
    model, batches, d1, d2 = cnn
    xs, ys = np.linspace(-1, 1, 4), np.linspace(-0.5, 0.7, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = loss_slice_2d(model, F.cross_entropy, batches, d1, d2, xs, ys, accuracy=True, chunk_size=5, vectorize=True)
    assert result.loss.shape == result.accuracy.shape == (3, 4)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            loss, accuracy = _naive_metrics(model, batches, x * d1 + y * d2)
            assert result.loss[i, j] == pytest.approx(loss, rel=1e-12)
            assert result.accuracy[i, j] == pytest.approx(accuracy, abs=1e-12)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and all(p.grad is None for p in model.parameters())
    assert result.direction_norms == (pytest.approx(float(d1.norm())), pytest.approx(float(d2.norm())))


def test_chunking_and_the_unvectorised_path_give_the_same_values(cnn):
    model, batches, d1, d2 = cnn
    grid = np.linspace(-1, 1, 5)
    reference = loss_slice_2d(model, F.cross_entropy, batches, d1, d2, grid, grid[:3], chunk_size=16, vectorize=True)
    for chunk_size, vectorize in [(1, True), (4, True), (6, False), (7, None)]:
        other = loss_slice_2d(
            model, F.cross_entropy, batches, d1, d2, grid, grid[:3], chunk_size=chunk_size, vectorize=vectorize
        )
        np.testing.assert_allclose(other.loss, reference.loss, rtol=1e-12)


# torch.compile's own internals call torch.jit.script_method (deprecated in torch 2.13); not our code.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_evaluation_equals_the_eager_one():
    """torch.compile paths, including the vmapped one whose last, shorter chunk is padded to a single shape."""
    generator = torch.Generator().manual_seed(0)
    root = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    theta, d1, d2 = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    model = Quadratic(root @ root.T, theta)
    xs, ys = [-1.0, 0.0, 2.0], [0.0, 1.0, 3.0, 4.0]
    eager = loss_slice_2d(model, identity_loss, QUADRATIC_DATA, d1, d2, xs, ys, vectorize=False)
    for vectorize in (True, False):
        compiled = loss_slice_2d(
            model, identity_loss, QUADRATIC_DATA, d1, d2, xs, ys, chunk_size=5, vectorize=vectorize, torch_compile=True
        )
        np.testing.assert_allclose(compiled.loss, eager.loss, rtol=1e-12)


def test_1d_slice_equals_the_loop_and_is_the_model_loss_at_zero(cnn):
    model, batches, d1, _ = cnn
    coords = [-0.5, 0.0, 0.25, 1.0]
    per_parameter = unflatten(d1, list(model.parameters()))
    result = loss_slice_1d(model, F.cross_entropy, batches, per_parameter, coords)
    assert result.accuracy is None
    for alpha, value in zip(coords, result.loss, strict=True):
        assert value == pytest.approx(_naive_metrics(model, batches, alpha * d1)[0], rel=1e-12)
    frame = result.to_frame()
    assert list(frame.columns) == ["coord", "loss"] and len(frame) == 4


def test_slices_of_a_quadratic_follow_the_closed_form():
    """L(θ + x·d₁ + y·d₂) = ½(θ + x·d₁ + y·d₂)ᵀA(θ + x·d₁ + y·d₂) on a non-square grid."""
    generator = torch.Generator().manual_seed(0)
    root = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    matrix = root @ root.T
    theta, d1, d2 = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    model = Quadratic(matrix, theta)
    xs, ys = [-2.0, 0.0, 1.0, 3.0], [-1.0, 0.5]
    result = loss_slice_2d(model, identity_loss, QUADRATIC_DATA, d1, d2, xs, ys, vectorize=True)
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            point = theta + x * d1 + y * d2
            assert result.loss[i, j] == pytest.approx(float(0.5 * point @ matrix @ point), rel=1e-13)
    frame = result.to_frame()
    assert len(frame) == 8 and frame.loc[5, "x"] == 0.0 and frame.loc[5, "y"] == 0.5
    assert frame.loc[5, "loss"] == result.loss[1, 1]


def test_bad_input_names_the_parameter(cnn):
    model, batches, d1, d2 = cnn
    with pytest.raises(ValueError, match="xs must be a non-empty 1-D sequence"):
        loss_slice_2d(model, F.cross_entropy, batches, d1, d2, [], [0.0])
    with pytest.raises(ValueError, match=r"ys .*non-finite"):
        loss_slice_2d(model, F.cross_entropy, batches, d1, d2, [0.0], [np.nan])
    with pytest.raises(ValueError, match="coords"):
        loss_slice_1d(model, F.cross_entropy, batches, d1, [[0.0, 1.0]])
    with pytest.raises(ValueError, match="d2 must be a flat tensor"):
        loss_slice_2d(model, F.cross_entropy, batches, d1, d2[:-1], [0.0], [0.0])
    with pytest.raises(ValueError, match="chunk_size"):
        loss_slice_1d(model, F.cross_entropy, batches, d1, [0.0], chunk_size=0)
    regression = [(inputs, torch.randn(inputs.shape[0], 3, dtype=torch.float64)) for inputs, _ in batches]
    with pytest.raises(ValueError, match=r"accuracy=True needs an \(outputs, targets\) loss with class scores"):
        loss_slice_1d(model, F.mse_loss, regression, d1, [0.0], accuracy=True)


def test_point_by_point_copy_is_cached_follows_the_model_and_leaves_it_untouched(cnn):
    model, batches, d1, d2 = cnn
    grid = np.linspace(-1, 1, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = loss_slice_2d(model, F.cross_entropy, batches, d1, d2, grid, grid, vectorize=False)
    copy = pointwise._CACHE[model]
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    saved = model.head.weight.detach().clone()
    with torch.no_grad():
        model.head.weight.mul_(1.5)
    try:
        moved = loss_slice_2d(model, F.cross_entropy, batches, d1, d2, grid, grid, vectorize=False)
        assert pointwise._CACHE[model] is copy  # same structure: the copy is reused, its values synced
        for i, y in enumerate(grid):
            for j, x in enumerate(grid):
                expected, _ = _naive_metrics(model, batches, x * d1 + y * d2)
                assert moved.loss[i, j] == pytest.approx(expected, rel=1e-12)
        assert not np.allclose(moved.loss, first.loss)
    finally:
        with torch.no_grad():
            model.head.weight.copy_(saved)


class _DictImageLoss(BatchLoss):
    """A (model, batch) loss on dict batches of images, with its own accuracy."""

    def __init__(self) -> None:
        super().__init__(lambda model, batch: F.cross_entropy(model(batch["image"]), batch["label"]), "dict")

    def loss_and_accuracy(self, model, batch):
        outputs = model(batch["image"])
        return F.cross_entropy(outputs, batch["label"]), accuracy_of(outputs, batch["label"])


def test_point_by_point_takes_any_batch_structure_and_the_loss_accuracy(cnn):
    """Dict batches of images through a BatchLoss: the private copy (channels-last on a CPU) gives the naive loop's
    loss and accuracy; a loss that cannot score its outputs gets main's accuracy message on this path too."""
    model, batches, d1, d2 = cnn
    dicts = [{"image": inputs, "label": targets} for inputs, targets in batches]
    grid = np.linspace(-1, 1, 3)
    result = loss_slice_2d(model, _DictImageLoss(), dicts, d1, d2, grid, grid, accuracy=True, vectorize=False)
    assert pointwise._CACHE[model].channels_last
    for i, y in enumerate(grid):
        for j, x in enumerate(grid):
            loss, accuracy = _naive_metrics(model, batches, x * d1 + y * d2)
            assert result.loss[i, j] == pytest.approx(loss, rel=1e-12)
            assert result.accuracy[i, j] == pytest.approx(accuracy, abs=1e-12)
    no_accuracy = batch_loss(lambda model, batch: F.cross_entropy(model(batch["image"]), batch["label"]))
    message = r"accuracy=True needs an \(outputs, targets\) loss.*got \{'image': Tensor\(9, 1, 8, 8\)"
    with pytest.raises(ValueError, match=message):
        loss_slice_1d(model, no_accuracy, dicts, d1, [0.0], accuracy=True, vectorize=False)


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_automatic_compilation_when_it_pays_and_not_otherwise(cnn, monkeypatch):
    model, batches, d1, d2 = cnn
    pointwise._CACHE.pop(model, None)  # no compiled forward or timings from earlier tests
    grid = np.linspace(-1, 1, 3)
    eager = loss_slice_2d(model, F.cross_entropy, batches, d1, d2, grid, grid, vectorize=False, torch_compile=False)
    automatic = loss_slice_2d(model, F.cross_entropy, batches, d1, d2, grid, grid, vectorize=False)
    assert not pointwise._CACHE[model].has_compiled(F.cross_entropy, False)  # 9 tiny points: never worth it
    np.testing.assert_array_equal(automatic.loss, eager.loss)
    monkeypatch.setattr(pointwise, "COMPILE_PAYS_SECONDS", 0.0)
    pointwise._CACHE[model].timings.clear()  # the 9-point verdict above would otherwise stand
    compiled = loss_slice_2d(model, F.cross_entropy, batches, d1, d2, grid, grid, vectorize=False)
    assert pointwise._CACHE[model].has_compiled(F.cross_entropy, False)  # each call wraps the function anew
    assert not pointwise._CACHE[model].has_compiled(batch_loss(F.cross_entropy), False)  # another loss form
    np.testing.assert_allclose(compiled.loss, eager.loss, rtol=1e-10)


def test_compiled_evaluation_is_dropped_when_not_faster_and_the_verdict_is_kept(cnn, monkeypatch):
    """Compiled points timed slower than eager ones: back to eager for the rest, and for the next slice at once."""
    model, batches, d1, d2 = cnn
    pointwise._CACHE.pop(model, None)  # no timings from earlier tests
    grid = np.linspace(-1, 1, 4)
    monkeypatch.setattr(pointwise, "COMPILE_PAYS_SECONDS", 0.0)
    original = pointwise._Choice.observe

    def slow_compiled(choice, index, seconds):  # pretend every compiled point took a second
        original(choice, index, 1.0 if choice.use_compiled else seconds)

    monkeypatch.setattr(pointwise._Choice, "observe", slow_compiled)
    first = loss_slice_2d(model, F.cross_entropy, batches, d1, d2, grid, grid, vectorize=False)
    timings = pointwise._CACHE[model].timings[pointwise.loss_key(F.cross_entropy, False)]
    assert timings["compiled"] == 1.0 > timings["eager"]
    choice = pointwise._Choice(pointwise._CACHE[model], F.cross_entropy, False, None, 16)
    assert choice.fixed is False and not choice.use_compiled  # decided: eager, no more timing
    again = loss_slice_2d(model, F.cross_entropy, batches, d1, d2, grid, grid, vectorize=False)
    np.testing.assert_allclose(again.loss, first.loss, rtol=1e-10)


def test_a_model_that_cannot_be_copied_is_evaluated_functionally(cnn):
    model, batches, d1, d2 = cnn
    grid = np.linspace(-1, 1, 3)
    reference = loss_slice_2d(model, F.cross_entropy, batches, d1, d2, grid, grid, vectorize=True)
    model.unpicklable = threading.Lock()  # deepcopy fails on it
    try:
        result = loss_slice_2d(model, F.cross_entropy, batches, d1, d2, grid, grid, vectorize=False)
    finally:
        del model.unpicklable
    np.testing.assert_allclose(result.loss, reference.loss, rtol=1e-12)
