"""The rows of each Adam step: a seeded permutation of the rows every epoch, cut into batches, this worker's
share of each batch under train.distributed, and the rows gathered a chunk of batches at a time."""

from __future__ import annotations

import torch

from stages.models import one_ahead

# Minibatch training gathers the rows of this many batches at once.
GATHER_BATCHES = 64


def minibatches(n_rows: int, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"):
    """One epoch's batches of row indices: slices of a fresh permutation drawn from `generator` (on the
    CPU, so the order is the same on every device), each row exactly once."""
    # int32 indices where they fit: the same permutation in half the memory (305 MiB at 8e7 rows)
    dtype = torch.int32 if n_rows < 2**31 else torch.int64
    return torch.randperm(n_rows, generator=generator, dtype=dtype).to(device).split(batch_size)


def gathered(X: torch.Tensor, y: torch.Tensor, chunks: tuple[torch.Tensor, ...], ahead: bool = True):
    """(X rows, y rows) of each chunk of row indices in turn; on the CPU and with `ahead`, the next chunk's
    rows are gathered by a second thread while the caller trains on these.

    A chunk holds GATHER_BATCHES batches: one gather (index_select, faster than X[rows] for random rows)
    instead of one per batch, each batch then a slice of it. The gather is mostly waiting for memory
    (random rows of a table larger than the CPU's caches) and the training step one thread's arithmetic,
    so on two cores they overlap; the rows and the order are the same as gathering in line.
    """
    gather = lambda rows: (X.index_select(0, rows), y.index_select(0, rows))  # noqa: E731
    if X.device.type != "cpu" or not ahead:
        yield from map(gather, chunks)
    else:
        yield from one_ahead(gather, chunks, "gather")


def shard_batches(order: torch.Tensor, rank: int, n_rows: int, batch: int):
    """(this worker's rows in the order of the permutation `order` of all the workers' rows, how many of
    them each batch holds, each batch's size): worker `rank` holds rows rank * n_rows onwards."""
    sizes = [min(batch, len(order) - start) for start in range(0, len(order), batch)]
    if len(order) == n_rows:  # one process: every row is its own
        return order, sizes, sizes
    low = rank * n_rows
    mine = (order >= low) & (order < low + n_rows)
    flags = torch.zeros(len(sizes) * batch, dtype=torch.int32)
    flags[: len(mine)] = mine
    counts = flags.view(len(sizes), batch).sum(dim=1).tolist()
    return order[mine] - low, counts, sizes
