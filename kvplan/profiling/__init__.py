"""`kvplan profile`: real torch/transformers passes. The only package that may import torch, transformers
or accelerate (tests/test_imports.py enforces it).
"""
