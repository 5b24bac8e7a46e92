"""Transformer building blocks, each a small nn.Module with its equation in the docstring."""
