"""Exact least squares y ~ X w + b in float64, streamed block by block (no torch tensor of the table):
a Householder QR of the numbers, with the one-hot blocks of a compact split (prepared.Encoded) projected
out first from their counts."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch

from stages.models import each_block, one_ahead
from stages.prepared import Encoded, release

# Rows per block of the streaming QR: memory independent of the row count.
QR_BLOCK_ROWS = 65536
# An eigenvalue of the one-hot columns' correlation matrix this small against the largest is a
# collinearity (a block's columns add up to the intercept), not information.
ONE_HOT_RCOND = 1e-12
# A numeric column whose part outside the one-hot columns' span is this small against its own spread is in
# that span (a missing indicator equal to a category, a number fixed per category): it gets weight 0.
IN_SPAN = 1e-9


@dataclass(frozen=True)
class LeastSquares:
    weight: torch.Tensor  # (n_features,) float64
    bias: torch.Tensor  # (1,) float64
    mse: float  # the smallest mean squared error any y = X w + b reaches on these rows


def solve_least_squares(
    X: np.ndarray, y: np.ndarray, block_rows: int = QR_BLOCK_ROWS, collective=None, first_row=None
) -> LeastSquares:
    """Least squares y ~ X w + b in float64 by a streaming Householder QR; never the normal equations.

    Columns are centred and scaled to unit norm (which removes the intercept column and balances the
    matrix: NIST Longley gets 13 correct digits), then [X | y] is reduced block by block to its small
    triangular factor R (torch.linalg.qr), so memory stays at one block of rows whatever the row count
    and the rows are read in one pass after the column statistics. The small system R w = Q'y is solved by
    SVD (gelsd), which also copes with collinear or constant columns.

    With train.distributed (`collective`), X and y are this worker's shard and the solution is that of all
    the workers' rows, as a tall-skinny QR: the column sums are summed over the workers (about `first_row`,
    one row every worker reads), each worker reduces its shard to its R, and the workers' R factors,
    stacked, are reduced once more. The coefficients equal one process's to rounding.
    """
    if isinstance(X, Encoded):
        return _solve_encoded(X, y, block_rows, collective, first_row)
    n_rows, n_features = X.shape
    if collective is None and n_rows <= block_rows:
        X_mean, y_mean = np.mean(X, axis=0, dtype=np.float64), float(np.mean(y, dtype=np.float64))
        squares = np.sum((X - X_mean) ** 2, axis=0)
    else:
        # One pass for both statistics, block by block (each block's pages of a mapped file released once
        # read): sums, and squares about the first row, a value of the data's own scale, so the
        # correction to squares about the mean, n (mean - first)^2, cancels nothing that matters. (The
        # norms only balance the columns; a constant column still comes out 0.)
        first = np.asarray(X[0] if first_row is None else first_row, dtype=np.float64)

        def block_sums(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, float]:
            block, y_block = X[start:stop], y[start:stop]
            sums = np.sum(block, axis=0, dtype=np.float64), np.sum((block - first) ** 2, axis=0)
            y_sum = float(np.sum(y_block, dtype=np.float64))
            release(block)
            release(y_block)
            return (*sums, y_sum)

        # Each block's sums on several threads, added up in block order: the bytes of one thread
        X_sum, y_sum, shifted = np.zeros(n_features), 0.0, np.zeros(n_features)
        for block_X_sum, block_shifted, block_y_sum in each_block(n_rows, block_sums, block_rows):
            X_sum += block_X_sum
            shifted += block_shifted
            y_sum += block_y_sum
        if collective is not None:
            totals = collective.sum_(torch.from_numpy(np.concatenate([X_sum, shifted, [y_sum, float(n_rows)]])))
            X_sum, shifted = totals[:n_features].numpy(), totals[n_features : 2 * n_features].numpy()
            y_sum, n_rows = float(totals[-2]), int(totals[-1])
        X_mean, y_mean = X_sum / n_rows, y_sum / n_rows
        squares = np.maximum(shifted - n_rows * (X_mean - first) ** 2, 0.0)
    norms = np.sqrt(squares)
    norms[norms == 0] = 1.0  # a constant column gets weight 0

    def centred(start: int) -> torch.Tensor:
        X_block, y_block = X[start : start + block_rows], y[start : start + block_rows]
        block = np.empty((len(y_block), n_features + 1))
        block[:, :n_features] = (X_block - X_mean) / norms
        block[:, n_features] = y_block - y_mean
        release(X_block)
        release(y_block)
        return torch.from_numpy(block)

    # The next block is read and centred on a second thread while this one is reduced
    R = torch.zeros(0, n_features + 1, dtype=torch.float64)
    for block in one_ahead(centred, range(0, len(X), block_rows), "centre"):
        R = torch.linalg.qr(torch.cat([R, block]), mode="r").R
    if collective is not None:  # every worker's R (zero rows below a short one change nothing), reduced again
        padded = torch.zeros(n_features + 1, n_features + 1, dtype=torch.float64)
        padded[: len(R)] = R
        R = torch.linalg.qr(torch.cat(collective.gather(padded)), mode="r").R
    R11, r = R[:, :n_features], R[:, n_features:]
    solution = torch.linalg.lstsq(R11, r, driver="gelsd").solution
    residual = float(torch.sum((R11 @ solution - r) ** 2))  # includes R[p, p]^2 when R is square
    weight = solution.squeeze(1).numpy() / norms
    bias = torch.tensor([y_mean - exact_dot(X_mean, weight)], dtype=torch.float64)
    return LeastSquares(torch.from_numpy(weight), bias, residual / n_rows)


def exact_dot(a: np.ndarray, b: np.ndarray) -> float:
    """sum(a * b), correctly rounded: the same bits on every CPU, where numpy's `@` goes through OpenBLAS,
    whose kernel (and so the last bits) depends on the CPU's vector width."""
    return math.fsum((np.asarray(a, dtype=np.float64) * np.asarray(b, dtype=np.float64)).tolist())


class _Projection:
    """The one-hot columns H (centred) of a compact split and what they explain of [D | y] (the numbers and
    the target, centred): B = pinv(H'H) H'[D | y], from counts and sums gathered in one pass."""

    def __init__(self, X: Encoded, y: np.ndarray, block_rows: int, collective, first_row) -> None:
        n_dense, widths = X.dense.shape[1], X.widths
        m = sum(widths)
        self.n_dense, self.starts = n_dense, np.cumsum([0, *widths[:-1]])
        shift = np.append(np.asarray(first_row, dtype=np.float64)[:n_dense], 0.0)

        n, sums, shifted = 0.0, np.zeros(n_dense + 1), np.zeros(n_dense + 1)
        pairs, by_slot = np.zeros((m, m)), np.zeros((m, n_dense + 1))  # H'H (upper blocks), H'[D | y]
        for start in range(0, len(X), block_rows):
            stop = min(start + block_rows, len(X))
            values = np.empty((stop - start, n_dense + 1))
            values[:, :n_dense], values[:, n_dense] = X.dense[start:stop], y[start:stop]
            slots = self.slots(X.codes[start:stop])
            release(X.dense[start:stop])
            release(X.codes[start:stop])
            n += stop - start
            sums += values.sum(axis=0)
            shifted += ((values - shift) ** 2).sum(axis=0)
            for j, column in enumerate(slots.T):
                hit = column >= 0
                pairs[np.arange(m), np.arange(m)] += np.bincount(column[hit], minlength=m)
                for c in range(n_dense + 1):
                    by_slot[:, c] += np.bincount(column[hit], weights=values[hit, c], minlength=m)
                for k in range(j + 1, len(widths)):  # rows in each pair of categories of two columns
                    other = slots[:, k]
                    both = hit & (other >= 0)
                    low, high = self.starts[j], self.starts[k]
                    pair = (column[both] - low) * widths[k] + other[both] - high
                    pairs[low : low + widths[j], high : high + widths[k]] += np.bincount(
                        pair, minlength=widths[j] * widths[k]
                    ).reshape(widths[j], widths[k])
        totals = [np.array([n]), sums, shifted, pairs, by_slot]
        if collective is not None:
            flat = collective.sum_(torch.from_numpy(np.concatenate([t.ravel() for t in totals]))).numpy()
            totals = [part.reshape(t.shape) for part, t in zip(np.split(flat, np.cumsum([t.size for t in totals])[:-1]),
                                                               totals, strict=True)]  # fmt: skip
        (n,), sums, shifted, pairs, by_slot = totals
        pairs = np.triu(pairs) + np.triu(pairs, 1).T  # each pair of columns was counted once
        self.n, self.mean = n, sums / n
        counts = np.diag(pairs).copy()
        self.p = counts / n  # each one-hot column's mean
        # centred sums: H_c' H_c and H_c' [D | y] (about their means)
        gram = pairs - np.outer(counts, counts) / n
        cross = by_slot - np.outer(counts, self.mean)
        scale = np.sqrt(np.clip(np.diag(gram), 0, None))
        scale[scale == 0] = np.inf  # a column constant on these rows: weight 0
        # torch's LAPACK and BLAS (MKL in the CPU-independent mode the stages set), not numpy's OpenBLAS, whose
        # kernels differ in their last bits from one CPU to the next (AVX2 against AVX-512)
        values, vectors = torch.linalg.eigh(torch.from_numpy(gram / np.outer(scale, scale)))
        kept = values > ONE_HOT_RCOND * max(float(values.max()) if len(values) else 0.0, 0.0)
        inverse = (vectors[:, kept] / values[kept]) @ vectors[:, kept].T
        B = inverse @ torch.from_numpy(cross / scale[:, None]) / torch.from_numpy(scale[:, None])
        self.B = B.numpy()  # (m, n_dense + 1)
        self.spread = np.maximum(shifted - n * (self.mean - shift) ** 2, 0.0)  # each column's centred squares
        self.offset = self.mean - (torch.from_numpy(self.p)[None] @ B)[0].numpy()  # what (H - p) B removes from
        # every row, beyond H B
        self.last = threading.local()  # block(): each thread's last block of residuals

    def slots(self, codes: np.ndarray) -> np.ndarray:
        """Each row's one-hot column per block, counted across the blocks (-1: none)."""
        codes = np.asarray(codes, dtype=np.int64)
        return np.where(codes >= 0, codes + self.starts, -1)

    def block(self, X: Encoded, y: np.ndarray, start: int, stop: int, keep: np.ndarray) -> np.ndarray:
        """residuals(), kept for the thread's next call: the QR reads a block's numbers and then its target
        (two _Residuals of one block, on one thread), which is then one computation."""
        key = (start, stop, keep.tobytes())
        if getattr(self.last, "key", None) != key:
            self.last.key, self.last.value = key, self.residuals(X, y, start, stop, keep)
        return self.last.value

    def residuals(self, X: Encoded, y: np.ndarray, start: int, stop: int, keep: np.ndarray) -> np.ndarray:
        """[D | y] of rows start:stop less their one-hot part and means; columns not in `keep` are 0."""
        out = np.empty((stop - start, self.n_dense + 1))
        out[:, : self.n_dense], out[:, self.n_dense] = X.dense[start:stop], y[start:stop]
        out -= self.offset
        for column in self.slots(X.codes[start:stop]).T:
            hit = column >= 0
            out[hit] -= self.B[column[hit]]
        out *= keep
        return out


class _Residuals:
    """The numbers (or the target) of a compact split with the one-hot part projected out, computed block
    by block as solve_least_squares reads them."""

    def __init__(self, X: Encoded, y: np.ndarray, projection: _Projection, keep: np.ndarray, columns) -> None:
        self.X, self.y, self.projection, self.keep, self.columns = X, y, projection, keep, columns
        self.shape = (len(X),) if isinstance(columns, int) else (len(X), projection.n_dense)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, _ = index.indices(len(self.X))
        return self.projection.block(self.X, self.y, start, stop, self.keep)[:, self.columns]


def _solve_encoded(X: Encoded, y: np.ndarray, block_rows: int, collective, first_row) -> LeastSquares:
    """Least squares on a compact split (Frisch-Waugh-Lovell): the one-hot columns' share of the numbers
    and the target is found from counts and per-category sums (one pass, never the one-hot matrix); the
    numbers' weights w solve the streaming QR on what is left; the one-hot weights are then B_y - B_D w.
    The numbers' weights are unique where those columns are not collinear; the one-hot weights are the
    minimum-norm answer in the centred, unit-variance one-hot columns (a block's columns add up to the
    intercept), as the QR of the whole matrix gives for the columns that are not numbers."""
    first_row = X[0] if first_row is None else first_row
    projection = _Projection(X, y, block_rows, collective, first_row)
    n_dense = X.dense.shape[1]
    left = np.zeros(n_dense + 1)
    for start, stop in ((s, min(s + block_rows, len(X))) for s in range(0, len(X), block_rows)):
        left += (projection.residuals(X, y, start, stop, np.ones(n_dense + 1)) ** 2).sum(axis=0)
    if collective is not None:
        left = collective.sum_(torch.from_numpy(left)).numpy()
    # a column constant on these rows (no spread) or in the categories' span keeps only rounding noise, which
    # the QR's unit-norm scaling would blow up into a weight: it gets weight 0
    spread = projection.spread[:n_dense]
    keep = np.append((spread > 0) & (left[:n_dense] > IN_SPAN**2 * spread), True).astype(np.float64)
    D, target = _Residuals(X, y, projection, keep, slice(0, n_dense)), _Residuals(X, y, projection, keep, n_dense)
    if collective is None and len(X) <= block_rows:
        D, target = D[0 : len(X)], target[0 : len(X)]
    if n_dense:
        inner = solve_least_squares(D, target, block_rows, collective, np.zeros(n_dense))
    else:  # categories only: what they leave of the target is the residual
        inner = LeastSquares(torch.zeros(0, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
                             float(left[n_dense] / projection.n))  # fmt: skip
    w = inner.weight.numpy() * keep[:n_dense]
    B = projection.B
    hot = B[:, n_dense] - (torch.from_numpy(np.ascontiguousarray(B[:, :n_dense])) @ torch.from_numpy(w)).numpy()
    bias = projection.mean[n_dense] - exact_dot(projection.mean[:n_dense], w) - exact_dot(projection.p, hot)
    bias += float(inner.bias)
    weight = np.concatenate([w, hot])
    return LeastSquares(torch.from_numpy(weight), torch.tensor([bias], dtype=torch.float64), inner.mse)
