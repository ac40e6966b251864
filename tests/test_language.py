"""The language example: Python source as characters and a small causal transformer, trained through the
default loss (logits (B, vocabulary, L)) and through dict batches with a custom loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from workbench import HessianOperator, batch_loss, top_eigenpairs
from workbench.datasets import load_dataset
from workbench.datasets.text import ALPHABET, VOCABULARY
from workbench.models import build_model
from workbench.train import TrainConfig, Trainer

SMALL = {"length": 16, "num_chars": 6000}
TINY_MODEL = {"width": 16, "depth": 1, "heads": 2}


@pytest.fixture(scope="module")
def text():
    return load_dataset("pysource", **SMALL)


def test_windows_predict_the_next_character(text):
    inputs, targets = text.train.tensors
    assert inputs.shape[1] == 16 and inputs.dtype == torch.int64 and text.num_classes == len(VOCABULARY)
    assert torch.equal(inputs[0, 1:], targets[0, :-1]) and torch.equal(targets[0, -1], inputs[1, 0])
    decoded = "".join(VOCABULARY[int(token)] for token in inputs[0])
    assert all(char in ALPHABET for char in decoded)


def test_the_transformer_is_causal_and_its_hessian_is_exact(text):
    model = build_model("transformer", input_shape=text.input_shape, num_classes=text.num_classes, seed=0, **TINY_MODEL)
    tokens = text.train.tensors[0][:3]
    changed = tokens.clone()
    changed[:, 10:] = 0
    logits, changed_logits = model(tokens), model(changed)
    assert logits.shape == (3, text.num_classes, 16)
    torch.testing.assert_close(changed_logits[:, :, :10], logits[:, :, :10])  # the past never sees the future
    model = model.double()
    batch = (tokens, text.train.tensors[1][:3])
    op = HessianOperator(model, F.cross_entropy, batch)
    params = [p for p in model.parameters() if p.requires_grad]
    flat = torch.cat([p.detach().flatten() for p in params])

    def loss_of(vector: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(vector, [p.numel() for p in params])
        values = {name: piece.view_as(p) for (name, p), piece in zip(model.named_parameters(), pieces, strict=True)}
        return F.cross_entropy(torch.func.functional_call(model, values, (batch[0],)), batch[1])

    vector = torch.randn(flat.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = torch.func.jvp(torch.func.grad(loss_of), (flat,), (vector,))[1]
    torch.testing.assert_close(op.matvec(vector), exact, rtol=1e-9, atol=1e-10)


def test_named_pair_trains_with_the_default_loss_and_probes(text):
    config = TrainConfig(dataset="pysource", dataset_options=SMALL, model="transformer", model_options=TINY_MODEL,
                         optimizer="sam", lr=0.05, batch_size=32, steps=12, probe_every=6, probe_batch_size=32,
                         trace_samples=6, schedule="constant", device="cpu")  # fmt: skip
    trainer = Trainer(config, data=text)
    trainer.run()
    history = trainer.history.to_frame()
    losses = history[history.metric == "train_loss"].value
    assert losses.iloc[-3:].mean() < losses.iloc[:3].mean()
    assert trainer.history.last("lambda_1") > 0 and 0 <= trainer.history.last("test_accuracy") <= 1


class Tokens(Dataset):
    """Hugging Face style samples of the same windows: {"input_ids", "labels"}."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.inputs[index], "labels": self.targets[index]}


def next_token_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    return F.cross_entropy(model(batch["input_ids"]), batch["labels"], label_smoothing=0.1)


def test_dict_batches_and_a_custom_loss_train_the_same_model(text):
    model = build_model("transformer", input_shape=text.input_shape, num_classes=text.num_classes, seed=0, **TINY_MODEL)
    train = DataLoader(Tokens(*text.train.tensors), batch_size=32, shuffle=True)
    test = DataLoader(Tokens(*text.test.tensors), batch_size=64)
    config = TrainConfig(optimizer="eigensam", freq=4, lr=0.05, steps=8, probe_every=4, probe_batch_size=32,
                         trace_samples=6, schedule="constant", device="cpu")  # fmt: skip
    trainer = Trainer(config, model=model, train_data=train, test_data=test, loss_fn=next_token_loss)
    assert trainer.run().status == "finished"
    assert trainer.history.last("test_loss") > 0 and trainer.optimizer.tracker.num_refreshes == 1
    op = HessianOperator(model, batch_loss(next_token_loss), trainer.inputs.probe_batch)
    assert top_eigenpairs(op, k=1, tol=1e-2).eigenvalues[0] > 0
