"""The SAM family's step is lean: no host reads while stepping (a Ritz refresh: its projected matrices only), one
extra parameter copy, one tensor per record."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.diagnostics import HostSyncCounter, peak_tensor_bytes
from workbench.optim import ASAM, SAM, XSAM, EigenSAM
from workbench.optim.record import TRACKING_NAMES

BASE = {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )  # fmt: skip


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(32, 3, 16, 16, generator=generator), torch.randint(0, 4, (32,), generator=generator)


def closure_for(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]):
    def closure() -> torch.Tensor:
        loss = F.cross_entropy(model(data[0]), data[1])
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize(
    ("factory", "options"),
    [
        (SAM, {}),
        (ASAM, {}),
        (EigenSAM, {"freq": 2, "refresh": "power"}),
        (XSAM, {"freq": 2, "refresh": "power", "orientation": "along_gradient", "angle_gate": True}),
    ],
)
def test_steps_and_power_refreshes_read_nothing_on_the_host(factory, options):
    """Not one scalar read, host copy or data-dependent shape in five steps (two of them after power refreshes): on
    a GPU the step queues all its work."""
    model = cnn()
    optimizer = factory(model.parameters(), model=model, **options, **BASE)
    closure = closure_for(model, batch())
    with HostSyncCounter() as counter:
        for _ in range(5):
            optimizer.step(closure)
    assert counter.total == 0, counter.counts
    if optimizer.tracker is not None:
        assert optimizer.tracker.num_refreshes == 2


@pytest.mark.parametrize("factory", [EigenSAM, XSAM])
@pytest.mark.parametrize(("refresh_tol", "most_copies"), [(0.0, 1), (None, 3)])
def test_a_ritz_refresh_copies_only_its_projected_matrices_to_the_host(factory, refresh_tol, most_copies):
    """Steps without a refresh read nothing; a Ritz refresh step copies its small projected matrices to the host,
    once with a fixed budget and once per tolerance check (from the 2nd to the 4th product: at most 3), and nothing
    else. The copies go through ``to_host``, so this CPU count is the count on CUDA."""
    model = cnn()
    optimizer = factory(model.parameters(), model=model, freq=2, power_iters=4, refresh_tol=refresh_tol, **BASE)
    closure = closure_for(model, batch())
    counts = []
    for _ in range(5):
        with HostSyncCounter() as counter:
            optimizer.step(closure)
        assert set(counter.counts) <= {"device-to-host copy"}, counter.counts
        counts.append(counter.total)
    assert [counts[0], counts[1], counts[3]] == [0, 0, 0]  # refreshes before steps 2 and 4
    assert all(1 <= counts[index] <= most_copies for index in (2, 4)), counts
    assert optimizer.tracker.num_refreshes == 2


def test_the_record_is_one_tensor_read_once():
    model = cnn()
    optimizer = XSAM(model.parameters(), model=model, freq=1, **BASE)
    closure = closure_for(model, batch())
    for _ in range(2):
        optimizer.step(closure)
    record = optimizer.last_step
    assert record.scalar_names == TRACKING_NAMES and record.scalar_values.shape == (len(TRACKING_NAMES),)
    with HostSyncCounter() as counter:
        row = record.scalars()
    assert counter.counts == {"device-to-host copy": 1}  # the whole row, the eigenvalue included, in one copy
    assert record.eigenvalue == optimizer.tracker.eigenvalue
    assert list(row)[:3] == ["step", "refreshed", "eigenvalue"] and row["refreshed"] == 1.0


def minimal_sam_step(model: nn.Module, base: torch.optim.Optimizer, data: tuple[torch.Tensor, torch.Tensor]) -> None:
    """What a researcher writes by hand: save θ, add ρ·g/‖g‖, second gradient, restore θ, base step."""
    params = list(model.parameters())
    F.cross_entropy(model(data[0]), data[1]).backward()
    with torch.no_grad():
        scale = 0.05 / torch.linalg.vector_norm(torch.stack([param.grad.norm() for param in params]))
        saved = [param.detach().clone() for param in params]
        for param in params:
            param.add_(param.grad * scale)
    base.zero_grad()
    F.cross_entropy(model(data[0]), data[1]).backward()
    with torch.no_grad():
        for param, value in zip(params, saved, strict=True):
            param.copy_(value)
    base.step()
    base.zero_grad()


def test_peak_memory_is_at_most_one_parameter_copy_above_a_minimal_loop():
    template, data = cnn(), batch()
    minimal_model, ours_model = copy.deepcopy(template), copy.deepcopy(template)
    base = torch.optim.SGD(minimal_model.parameters(), **BASE)
    ours = SAM(ours_model.parameters(), model=ours_model, **BASE)
    closure = closure_for(ours_model, data)

    def our_step() -> None:
        ours.step(closure)
        ours.zero_grad()

    for _ in range(2):  # momentum buffers exist from here on, in both
        minimal_sam_step(minimal_model, base, data)
        our_step()
    copy_bytes = 4 * sum(param.numel() for param in template.parameters())
    minimal = peak_tensor_bytes(lambda: minimal_sam_step(minimal_model, base, data))
    peak = peak_tensor_bytes(our_step)
    assert peak <= minimal + copy_bytes + 1024, (peak - minimal) / copy_bytes
    torch.testing.assert_close(list(ours_model.parameters()), list(minimal_model.parameters()), rtol=1e-5, atol=1e-6)
