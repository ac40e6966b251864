"""Small engine additions the live notebooks need: boundary and pause/resume events, optimizer defaults by name."""

from __future__ import annotations

import threading

import pytest

from workbench.datasets import load_dataset
from workbench.optim import optimizer_entry
from workbench.optim.registry import OPTION_NAMES
from workbench.train import TrainConfig, Trainer


def test_pause_and_resume_are_announced_to_callbacks_with_the_history_flushed(tmp_path):
    config = TrainConfig(
        dataset="moons", dataset_options={"num_samples": 200}, model="mlp", batch_size=32, steps=10_000,
        probe_every=None, schedule="constant",
    )  # fmt: skip
    kinds: list[tuple[str, int]] = []
    paused = threading.Event()
    trainer = Trainer(config, run_dir=tmp_path, data=load_dataset("moons", num_samples=200))

    def on_event(event) -> None:
        kinds.append((event.kind, event.step))
        if event.kind == "step" and event.step == 3:
            trainer.pause()
        if event.kind == "pause":
            paused.set()

    trainer.callbacks.append(on_event)
    worker = threading.Thread(target=trainer.run)
    worker.start()
    assert paused.wait(timeout=60)
    assert trainer.status == "paused"
    assert (tmp_path / "history.csv").is_file()
    trainer.stop()
    worker.join(timeout=60)
    names = [kind for kind, _ in kinds]
    assert names.index("pause") < names.index("resume") < names.index("end")
    assert ("pause", 3) in kinds


def test_a_checkpoint_taken_at_a_boundary_event_resumes_exactly(tmp_path):
    config = TrainConfig(
        dataset="moons", dataset_options={"num_samples": 200}, model="mlp", batch_size=32, steps=12,
        probe_every=4, probe_batch_size=32, trace_samples=6, eval_every=3, schedule="constant",
    )  # fmt: skip
    data = load_dataset("moons", num_samples=200)
    boundaries: list[int] = []
    whole = Trainer(config, data=data)

    def on_event(event) -> None:
        if event.kind == "boundary":
            boundaries.append(event.step)
            if event.step == 6:  # right after an evaluation step: the eval rows of step 6 must be in it
                whole.save_checkpoint(tmp_path / "at6.pt")

    whole.callbacks.append(on_event)
    whole.run()
    assert boundaries == list(range(12))
    resumed = Trainer.from_checkpoint(tmp_path / "at6.pt", data=data)
    resumed.run()
    untimed = [row for row in resumed.history.rows_since(0) if row[2] != "seconds"]
    assert untimed == [row for row in whole.history.rows_since(0) if row[2] != "seconds"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sgd", {}),
        ("sam", {"rho": 0.05}),
        ("asam", {"rho": 0.5, "eta": 0.01}),
        (
            "eigensam",
            {"rho": 0.1, "alpha": 0.2, "freq": 100, "power_iters": None, "refresh": "ritz", "refresh_tol": None},
        ),
        (
            "xsam",
            {
                "rho": 0.05,
                "alpha": 0.2,
                "freq": 5,
                "power_iters": None,
                "refresh": "ritz",
                "refresh_tol": None,
                "normalize_direction": True,
                "angle_gate": False,
                "orientation": "as_computed",
            },
        ),
    ],
)
def test_optimizer_defaults_are_the_paper_values_a_none_stands_for(name, expected):
    assert optimizer_entry(name).defaults() == expected


def test_every_registered_option_is_a_config_field_and_config_rejects_strays():
    fields = TrainConfig().to_dict()
    assert set(OPTION_NAMES) <= set(fields)
    assert all(fields[name] is None for name in OPTION_NAMES)  # None: the optimizer's own default
    with pytest.raises(ValueError, match=r"optimizer 'sam' takes no alpha, orientation \(it takes: rho\)"):
        TrainConfig(optimizer="sam", alpha=0.2, orientation="along_gradient")
    with pytest.raises(ValueError, match="optimizer must be one of 'sgd', 'sam'"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="rho_schedule 'lr' needs an optimizer that takes rho; 'sgd' does not"):
        TrainConfig(rho_schedule="lr")
    assert TrainConfig(optimizer="xsam", orientation="along_adversarial").optimizer_options == {
        "orientation": "along_adversarial"
    }
