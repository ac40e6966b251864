"""Scale next to sharpness at every probe: was λ1 lowered, or did the weights and logits just grow?

λ1 of a cross-entropy loss shrinks when the logits grow and the softmax saturates, whether or not the minimum got
any flatter in a sense that survives rescaling. So every probe also logs

* ``weight_norm``: ‖θ‖ over the trained parameters (free);
* ``logit_norm``: the mean over the probe batch of each output's norm over the class dimension (dim 1), one
  forward pass in eval mode; logged for ``(outputs, targets)`` losses (the model's outputs are the logits), not for
  a ``(model, batch)`` loss, whose outputs the probe cannot see;
* ``adaptive_sharpness`` (opt-in, ``TrainConfig.probe_adaptive_rho``): the ASAM-scaled worst-case loss increase
  max over ‖δ / (|θ| + η)‖ ≤ ρ of L(θ + δ) − L(θ) (``workbench.probes.adaptive_worst_case_sharpness``), which
  does not change when a layer's weights are rescaled; it costs ``probe_adaptive_steps`` gradients.
"""

from __future__ import annotations

from typing import Any

import torch

from workbench.losses import LossOfOutputs, as_batch_loss
from workbench.modes import eval_mode
from workbench.probes.sharpness import adaptive_worst_case_sharpness


class ScaleProbe:
    """Measures ``weight_norm``, ``logit_norm`` and (with ``adaptive_rho``) ``adaptive_sharpness`` on the probe
    batch; see the module docstring.

    Args:
        model: the network (probed in eval mode; its own mode is restored).
        loss_fn: the training loss (either form).
        batch: the fixed probe batch, on the model's device.
        adaptive_rho: ρ of the adaptive sharpness (dimensionless), or None to skip it.
        adaptive_steps: ascent steps (gradients) of the adaptive sharpness, ≥ 1.
        seed: base seed of the ascent's fallback direction (each probe uses seed + step).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Any,
        batch: Any,
        *,
        adaptive_rho: float | None,
        adaptive_steps: int,
        seed: int,
    ) -> None:
        self.model = model
        self.loss = as_batch_loss(loss_fn)
        self.batch = batch
        self.adaptive_rho = adaptive_rho
        self.adaptive_steps = adaptive_steps
        self.seed = seed

    def measure(self, step: int) -> dict[str, float]:
        """The scale metrics at the current weights."""
        params = [param.detach() for param in self.model.parameters() if param.requires_grad]
        values = {"weight_norm": float(torch.sqrt(sum((param.double() ** 2).sum() for param in params)))}
        if isinstance(self.loss, LossOfOutputs):
            with torch.no_grad(), eval_mode(self.model):
                outputs = self.model(self.batch[0])
            norms = outputs.double().norm(dim=1) if outputs.dim() >= 2 else outputs.double().abs()
            values["logit_norm"] = float(norms.mean())
        if self.adaptive_rho is not None:
            sharpness = adaptive_worst_case_sharpness(
                self.model,
                self.loss,
                self.batch,
                rho=self.adaptive_rho,
                steps=self.adaptive_steps,
                seed=self.seed + step,
            )
            values["adaptive_sharpness"] = sharpness.value
        return values
