"""Weights: exact analytic parameter counts from a config (`tensors`), the bytes they are stored in, and
measured sizes from safetensors headers (`safetensors`). Never imports torch.
"""
