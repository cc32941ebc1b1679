"""XPS: read instrument files, fit regions across etch depth, quantify."""

from .read import read, stack_series

__all__ = ["read", "stack_series"]
