"""Models by name: MLP, small 1-D/2-D CNN, CIFAR ResNet-18 and WideResNet, each with or without BatchNorm."""

from workbench.models.layers import ACTIVATIONS, NORMS
from workbench.models.registry import MODELS, build_model, model_options, model_summary

__all__ = ["ACTIVATIONS", "MODELS", "NORMS", "build_model", "model_options", "model_summary"]
