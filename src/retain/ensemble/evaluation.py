"""The evaluation after each task for all members of an ensemble: one row of each member's
accuracy matrix, every member on its own test sets, in one pass per test batch.

Permuted inputs (P-MNIST, permuted digits: every member reads one stored test set through its own
pixel permutation) take a path of their own, prepared once per run (:class:`PermutedTests`). A
permutation of the inputs is a permutation of the first layer's columns (``x[:, p] @ W.T ==
x @ W[:, argsort(p)].T``), so the stored images are never permuted; and since a stored zero
converts to 0.0, each image's first-layer sums need only its nonzero pixels (a fifth of MNIST's
784). Each image is kept as the list of its nonzero pixels with their float values (a "bag"), and
the first layer of a member is one ``embedding_bag`` per task over a table of that member's
first-layer columns in stored-pixel order: a weighted sum of ~150 table rows per image instead of a
product over 784 columns. One round at N = 5 (20 tasks, MNIST's 10,000 test images, 2 threads)
took 0.64 s against 1.36 s with the dense product (commit 877b3aa, an ad-hoc script timing both
on one model). The sums are the same terms (the zeros dropped add exactly 0.0), taken in another
order. A conversion that subtracts a mean (a stored zero is not 0.0) takes the dense product.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from retain.benchmarks.base import Experience
from retain.ensemble.data import member_test_batches, shared_permutations
from retain.ensemble.stacked import StackedModel
from retain.training.evaluation import _class_mask


def evaluate_members(model, tested: list[list[Experience]], *, task_il: bool, num_classes: int) -> list[list[float]]:
    """One row of each member's accuracy matrix: member i's model on member i's test set of every
    task (``tested[i]``), all members in one forward pass per test batch. For repeated rounds on
    the same test sets, :func:`member_evaluator` prepares them once."""
    return member_evaluator(model, tested, task_il=task_il, num_classes=num_classes)(model)


def member_evaluator(model, tested: list[list[Experience]], *, task_il: bool, num_classes: int):
    """A function of the model giving :func:`evaluate_members`' rows, with what does not change
    between rounds (the permuted path's bags, labels and masks) prepared once."""
    prepared = PermutedTests.of(model, tested, task_il=task_il, num_classes=num_classes)
    if prepared is not None:
        return prepared
    return lambda m: _evaluate_batches(m, tested, task_il=task_il, num_classes=num_classes)


@torch.inference_mode()
def _evaluate_batches(model, tested: list[list[Experience]], *, task_il: bool, num_classes: int,
                      batch_size: int = 2048) -> list[list[float]]:
    """The generic path: each task's test batches of all members stacked, one forward pass each."""
    n_members, n_tasks = len(tested), len(tested[0])
    device = model.parameters()[0].device
    counts, sizes = [], []
    for t in range(n_tasks):
        exps = [member[t] for member in tested]
        sizes.append(max(int(exps[0].test_y.shape[0]), 1))
        correct = torch.zeros(n_members, dtype=torch.int64, device=device)
        masks = (torch.stack([_class_mask(e.classes, num_classes) for e in exps])[:, None].to(device)
                 if task_il else None)
        for x, y in member_test_batches(exps, batch_size, device):
            logits = model(x)
            if masks is not None:
                logits = logits + masks
            correct += (logits.argmax(2) == y).sum(1)
        counts.append(correct)
    counts = torch.stack(counts).tolist()  # read from the device once
    return [[counts[t][m] / sizes[t] for t in range(n_tasks)] for m in range(n_members)]


class PermutedTests:
    """One stored test set read by every member through its own permutation for each task,
    prepared for repeated evaluation of a stacked MLP (see the module's docstring).

    ``inverse`` ``[tasks, N, pixels]``: each permutation's inverse (stored pixel -> input column);
    ``labels`` ``[tasks, N, samples]``; ``masks`` (task-IL) ``[tasks, N, classes]``; ``bags``:
    (pixel, value, start) of the stored images' nonzero pixels, or None when a stored zero does not
    convert to 0.0 (the dense product is used); ``chunks``: the test samples ``chunk`` at a time,
    with their bags' pixels, values and offsets."""

    def __init__(self, tested: list[list[Experience]], perms: Tensor, device: torch.device, *, task_il: bool,
                 num_classes: int, chunk: int = 1024):
        n_tasks = perms.shape[0]
        self.inverse = perms.to(device).argsort(2)
        exps = [[member[t] for member in tested] for t in range(n_tasks)]
        storage, self.to_float = tested[0][0].test_x, tested[0][0].transform.to_float
        self.flat = storage.reshape(storage.shape[0], -1)  # stays where it is; moved a batch at a time
        self.labels = torch.stack([torch.stack([e.test_y for e in row]) for row in exps]).to(device)
        self.masks = (torch.stack([torch.stack([_class_mask(e.classes, num_classes) for e in row]) for row in exps])
                      .to(device) if task_il else None)
        self.bags = _bags(self.flat, self.to_float, device)
        n = self.labels.shape[2]
        self.chunks = [(i, min(i + chunk, n)) for i in range(0, n, chunk)]
        if self.bags is not None:
            cols, vals, starts = self.bags
            bounds = starts.tolist()
            self.chunks = [(i, j, cols[bounds[i]: bounds[j]], vals[bounds[i]: bounds[j]], starts[i:j] - bounds[i])
                           for i, j in self.chunks]

    @classmethod
    def of(cls, model, tested: list[list[Experience]], *, task_il: bool, num_classes: int,
           chunk: int = 1024) -> PermutedTests | None:
        """The prepared test sets when ``model`` is a stacked MLP and ``tested`` permuted views of
        one stored test set; else None (the generic path)."""
        if not isinstance(model, StackedModel) or not model.layers:
            return None
        perms = shared_permutations(tested)
        if perms is None:
            return None
        return cls(tested, perms, model.device, task_il=task_il, num_classes=num_classes, chunk=chunk)

    @torch.inference_mode()
    def __call__(self, model: StackedModel) -> list[list[float]]:
        (_, first), rest = model.layers[0], model.layers[1:]
        weight, bias = model.params[f"{first}.weight"], model.params[f"{first}.bias"]
        n_tasks, n_members, _ = self.inverse.shape
        correct = torch.zeros(n_tasks, n_members, dtype=torch.int64, device=weight.device)
        later = [[(kind, None, None) if kind == "relu" else  # each member's later layers: (kind, W.T, b)
                  (kind, model.params[f"{name}.weight"][m].T, model.params[f"{name}.bias"][m]) for kind, name in rest]
                 for m in range(n_members)]
        first_layers = self._bagged if self.bags is not None else self._dense
        for t, m, rows, h in first_layers(weight, bias):  # h: member m's first-layer outputs on the rows
            for kind, w, b in later[m]:
                h = torch.relu_(h) if kind == "relu" else torch.addmm(b, h, w)
            if self.masks is not None:
                h = h + self.masks[t, m]
            correct[t, m] += (h.argmax(1) == self.labels[t, m, rows]).sum()
        n, counts = self.labels.shape[2], correct.tolist()  # read from the device once
        return [[counts[t][m] / max(n, 1) for t in range(n_tasks)] for m in range(n_members)]

    def _bagged(self, weight: Tensor, bias: Tensor):
        """(task, member, rows, first-layer outputs with bias) by ``embedding_bag``, one member and
        task at a time: row p of the table is the member's first-layer column for stored pixel p
        (``W_m[:, argsort(perm_tm)[p]]``, ~300 KiB: it stays in cache while the bags are summed),
        and each image's bag sums the rows of its nonzero pixels weighted by their values. Nothing
        is replicated per member (one stacked call over bags replicated per member, 8a8f29f, was as
        fast at N = 5 and slower at N = 10, and its benchmark peak for naive at N = 5 was 535-554
        MiB against 478 MiB at 9518e5d)."""
        n_tasks, n_members, _ = self.inverse.shape
        columns = weight.transpose(1, 2)  # [N, pixels, hidden]: row q of member m is its column q
        for t in range(n_tasks):
            for m in range(n_members):
                table = columns[m].index_select(0, self.inverse[t, m])
                for i, j, cols, vals, offsets in self.chunks:
                    h = F.embedding_bag(cols, table, offsets, mode="sum", per_sample_weights=vals)
                    yield t, m, slice(i, j), h.add_(bias[m])

    def _dense(self, weight: Tensor, bias: Tensor):
        """The same as :meth:`_bagged` by one product per task and test batch of the converted
        stored images with every member's first-layer columns in stored-pixel order."""
        n_tasks, n_members, pixels = self.inverse.shape
        hidden, device = weight.shape[1], weight.device
        first_layers = weight[None].expand(n_tasks, -1, -1, -1).gather(
            3, self.inverse[:, :, None, :].expand(n_tasks, n_members, hidden, pixels)).reshape(n_tasks, -1, pixels)
        first_bias = bias.reshape(1, -1)
        for i, j, *_ in self.chunks:
            x = self.to_float(self.flat[i:j].to(device))
            for t in range(n_tasks):
                h = torch.addmm(first_bias, x, first_layers[t].T)  # [rows, N * hidden]
                for m in range(n_members):
                    yield t, m, slice(i, j), h[:, m * hidden: (m + 1) * hidden]


def _bags(flat: Tensor, to_float, device: torch.device, rows_at_once: int = 1024
          ) -> tuple[Tensor, Tensor, Tensor] | None:
    """The stored images ``flat`` ``[samples, pixels]`` as bags of their nonzero pixels: (pixel
    index of each nonzero, its float value, ``[samples + 1]`` start of each image's run; indices
    int32), on ``device``; None when ``to_float`` maps a stored zero to something other than 0.0.
    Found ``rows_at_once`` images at a time (no index pair per nonzero of the whole set)."""
    if to_float(torch.zeros(1, 1, dtype=flat.dtype)).ne(0).any():
        return None
    cols, vals = [], []
    for i in range(0, flat.shape[0], rows_at_once):
        part = flat[i: i + rows_at_once]
        mask = part.ne(0)
        cols.append(mask.nonzero()[:, 1].to(torch.int32))
        vals.append(to_float(part[mask].reshape(-1, 1)).reshape(-1))
    starts = torch.zeros(flat.shape[0] + 1, dtype=torch.int32)
    starts[1:] = flat.ne(0).sum(1).cumsum(0)
    return torch.cat(cols).to(device), torch.cat(vals).to(device), starts.to(device)
