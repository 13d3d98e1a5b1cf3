"""Cut lists of tensors into cache-sized blocks for ``torch._foreach_*`` update rules.

An optimizer step such as Adam is a chain of elementwise operations (update ``m``, update ``v``,
take ``sqrt(v)``, update ``w``). Run one after another over whole tensors, every operation streams
all its operands through main memory, so Adam reads and writes about 16 floats per parameter
although only 7 are needed (read ``w, g, m, v``, write ``w, m, v``). If the chain instead runs
on a block of elements small enough to stay in the CPU cache, only the first touch of each
operand comes from memory and the rest are cache hits: this is *cache blocking*.

:func:`cache_blocks` slices aligned tensors (a parameter and its gradient and state) into pieces
of at most ``block_numel`` elements and packs consecutive pieces into blocks of about that size,
so that each block is one short list per operand, ready for the ``torch._foreach_*`` calls.
:class:`Scratch` holds the temporaries of a step in one buffer that every block reuses: fresh
tensors per block would cost an allocation each and, measured on the CPU, made the next in-place
operation on them several times slower.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

__all__ = ["CPU_BLOCK_BYTES", "Scratch", "block_numel_for", "cache_blocks", "group_by_device_and_dtype"]

CPU_BLOCK_BYTES = 1 << 20
"""Bytes of one operand in a CPU block: a few operands of this size fit the L2/L3 caches."""


def block_numel_for(tensor: torch.Tensor) -> int | None:
    """Elements per block for tensors like ``tensor``: cache-sized on CPU, ``None`` (no blocking) elsewhere.

    GPUs run each ``torch._foreach_*`` call as one kernel over all tensors; cutting it into blocks
    would only add kernel launches, so blocking is used on the CPU only.
    """
    if tensor.device.type != "cpu":
        return None
    return max(1, CPU_BLOCK_BYTES // tensor.element_size())


def group_by_device_and_dtype(tensors: Sequence[torch.Tensor]) -> dict[tuple[torch.device, torch.dtype], list[int]]:
    """Indices of ``tensors`` grouped by ``(device, dtype)``, in first-seen order (each group keeps input order)."""
    keys = [(tensor.device, tensor.dtype) for tensor in tensors]
    if keys and keys.count(keys[0]) == len(keys):  # the common case, one group: no per-tensor dict work
        return {keys[0]: list(range(len(keys)))}
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return groups


def cache_blocks(
    tensor_lists: Sequence[Sequence[torch.Tensor]], block_numel: int | None
) -> Iterator[tuple[list[list[torch.Tensor]], list[int]]]:
    """Yield ``(block, owners)``: aligned pieces of ``tensor_lists``, about ``block_numel`` elements per block.

    ``tensor_lists[k][i]`` must have the shape of ``tensor_lists[0][i]`` for every operand ``k``.
    A block holds at most ``block_numel`` elements per operand, unless one tensor alone is larger
    and cannot be cut.
    ``block[k]`` is a list of views into the tensors of ``tensor_lists[k]``, and ``owners[j]`` is the
    index ``i`` of the tensor that piece ``j`` of every operand comes from (to look up per-tensor
    scalars). Writing into the pieces writes into the tensors. Tensors with more than
    ``block_numel`` elements are cut into flat slices when every operand is contiguous and are
    kept whole otherwise; ``block_numel=None`` yields everything as a single block.
    """
    if not tensor_lists or not tensor_lists[0]:
        return
    count = len(tensor_lists[0])
    if any(len(tensors) != count for tensors in tensor_lists):
        raise ValueError(f"tensor_lists must all have the same length, got {[len(t) for t in tensor_lists]}")
    if block_numel is None:
        yield [list(tensors) for tensors in tensor_lists], list(range(count))
        return
    if block_numel < 1:
        raise ValueError(f"block_numel must be a positive integer or None, got {block_numel!r}")
    pieces, owners = _cut_large_tensors(tensor_lists, block_numel)
    start, filled = 0, 0
    for end, piece in enumerate(pieces[0]):
        numel = piece.numel()
        if end > start and filled + numel > block_numel:  # this piece would overflow the block
            yield [operand[start:end] for operand in pieces], owners[start:end]
            start, filled = end, 0
        filled += numel
    yield [operand[start:] for operand in pieces], owners[start:]


def _cut_large_tensors(
    tensor_lists: Sequence[Sequence[torch.Tensor]], block_numel: int
) -> tuple[list[list[torch.Tensor]], list[int]]:
    """Pieces of every operand, tensors above ``block_numel`` elements cut into aligned flat slices
    (kept whole when an operand is not contiguous), and the index of each piece's tensor."""
    pieces: list[list[torch.Tensor]] = [[] for _ in tensor_lists]
    owners: list[int] = []
    for index, tensor in enumerate(tensor_lists[0]):
        operands = [tensors[index] for tensors in tensor_lists]
        if tensor.numel() > block_numel and all(t.is_contiguous() for t in operands):
            for operand_pieces, operand in zip(pieces, operands):
                operand_pieces.extend(operand.view(-1).split(block_numel))
            owners.extend([index] * (len(pieces[0]) - len(owners)))
        else:
            for operand_pieces, operand in zip(pieces, operands):
                operand_pieces.append(operand)
            owners.append(index)
    return pieces, owners


class Scratch:
    """One reusable buffer for the temporaries of a step; every block gets views into it.

    Create one per step (or per optimizer): the buffer grows to the largest block and stays hot
    in the cache from one block to the next.
    """

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None

    def sqrt(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """:math:`\\sqrt{x}` of each tensor, as new tensors that the next call may overwrite.

        On the CPU they are views of the reused buffer, written by one ``torch.sqrt(out=...)`` per
        tensor; elsewhere one ``torch._foreach_sqrt`` kernel makes them (GPU allocators cache
        memory, so allocating is cheap there).
        """
        if not tensors or tensors[0].device.type != "cpu":
            return list(torch._foreach_sqrt(tensors))
        roots = self._views_like(tensors)
        for tensor, root in zip(tensors, roots):
            torch.sqrt(tensor, out=root)
        return roots

    def _views_like(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        sizes = [tensor.numel() for tensor in tensors]
        total, first = sum(sizes), tensors[0]
        buffer = self._buffer
        if buffer is None or buffer.numel() < total or buffer.dtype != first.dtype or buffer.device != first.device:
            buffer = self._buffer = torch.empty(total, dtype=first.dtype, device=first.device)
        flats = buffer[:total].split_with_sizes(sizes)
        return [flat.view(tensor.shape) for flat, tensor in zip(flats, tensors)]
