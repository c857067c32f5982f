"""Weights: exact analytic parameter counts from a config (`tensors`), the bytes they are stored in under the
config's `quantization_config` (`stored`), and measured sizes from safetensors headers (`safetensors`). Never
imports torch.
"""
