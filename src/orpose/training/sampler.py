"""Which images each iteration trains on: a pure function of (seed, iteration), for exact resume.

Epochs are random permutations of the dataset (numpy generator seeded by (seed, epoch)); an
iteration takes the next ``batch_size`` positions of that endless sequence. Each sample also gets an
augmentation seed derived from its global position. Under DistributedDataParallel, rank r of W
takes every W-th sample of the batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def samples_for_iteration(
    n: int, batch_size: int, seed: int, iteration: int, rank: int = 0, world_size: int = 1
) -> list[tuple[int, int]]:
    """(image index, augmentation seed) pairs of one iteration's batch, for one rank."""
    out = []
    for k in range(rank, batch_size, world_size):
        position = iteration * batch_size + k
        epoch, offset = divmod(position, n)
        out.append((int(_permutation(n, seed, epoch)[offset]), seed * 1_000_003 + position))
    return out


class IterationBatchSampler:
    """Batch sampler for ``torch.utils.data.DataLoader``, from ``start`` to ``stop`` iterations."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        start: int,
        stop: int,
        rank: int = 0,
        world_size: int = 1,
    ):
        if n == 0:
            raise ValueError("the training set holds no image")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world_size = start, stop, rank, world_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for it in range(self.start, self.stop):
            yield samples_for_iteration(
                self.n, self.batch_size, self.seed, it, self.rank, self.world_size
            )

    def __len__(self) -> int:
        return max(0, self.stop - self.start)
