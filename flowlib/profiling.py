"""What a training step costs in memory on a CPU (chapter 10).

On a CPU there is no peak-memory counter; what grows with an objective's cost is the set of tensors
autograd saves for the backward pass (activations, and for a JVP their tangents too).

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(4, 4)
    >>> saved_activation_bytes(lambda: layer(torch.randn(8, 4)).square().sum()) > 0
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from flowlib._validate import check_callable


def saved_activation_bytes(compute: Callable[[], torch.Tensor]) -> int:
    """Bytes that autograd keeps for the backward pass of ``compute()``.

    Counts every tensor saved while ``compute`` runs under
    :func:`torch.autograd.graph.saved_tensors_hooks`, each storage once (forward-mode tensors by
    their size).

    Args:
        compute: a function that builds a differentiable scalar, e.g. ``lambda: loss(model, batch)``.

    Returns:
        The number of bytes saved for backward (the graph is freed afterwards).
    """
    check_callable(compute, "compute", "compute() -> loss")
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        try:
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        except RuntimeError:  # a forward-mode (dual) tensor has no plain storage: count its elements
            seen[id(tensor)] = tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = compute()
    del result
    return sum(seen.values())


def backward_seconds(compute: Callable[[], torch.Tensor], module: torch.nn.Module, repeats: int = 3) -> float:
    """Seconds of one forward and backward pass of ``compute()``, the best of ``repeats``.

    Args:
        compute: a function that builds a differentiable scalar from ``module``'s weights.
        module: the network whose gradients are cleared before and after each pass.
        repeats: passes timed; the fastest is returned (the least disturbed by other work).

    Returns:
        Seconds (wall clock).
    """
    check_callable(compute, "compute", "compute() -> loss")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    best = float("inf")
    for _ in range(repeats):
        module.zero_grad(set_to_none=True)
        start = time.perf_counter()
        compute().backward()
        best = min(best, time.perf_counter() - start)
    module.zero_grad(set_to_none=True)
    return best
