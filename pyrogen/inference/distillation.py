r"""Teacher-student distillation of a flow (Parallel WaveNet's probability density distillation).

A teacher with a cheap density (MAF: one pass) but slow sampling trains a
student with cheap sampling (IAF: one pass) by minimizing

.. math:: \mathrm{KL}(s \,\|\, t) = \mathbb E_{x \sim s}[\log s(x) - \log t(x)]

with the student's own reparametrized samples and their densities, which the
student gets from the same pass. The teacher stays fixed; gradients reach the
student through :math:`x`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from pyrogen.checks import integer as _positive_int
from pyrogen.inference.protocol import HasDistribution

__all__ = ["DistillResult", "distill"]


class _Student(Protocol):
    def rsample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def parameters(self) -> Any: ...

    def sample(self, n: int) -> torch.Tensor: ...


class _Teacher(Protocol):
    def log_prob(self, x: torch.Tensor) -> torch.Tensor: ...

    def parameters(self) -> Any: ...

    def sample(self, n: int) -> torch.Tensor: ...


@dataclass
class DistillResult:
    """What :func:`distill` measured.

    Attributes:
        kl: :math:`\\mathrm{KL}(s \\| t)` in nats, estimated on fresh student samples after training.
        kl_stderr: its Monte Carlo standard error.
        teacher_nll_of_student: :math:`-\\mathbb E_{x\\sim s} \\log t(x)`.
        teacher_nll_of_teacher: :math:`-\\mathbb E_{x\\sim t} \\log t(x)` (the teacher's entropy), for reference.
        teacher_nll_of_student_median, teacher_nll_of_teacher_median: the medians of the same two scores; a few
            far-tail samples dominate the means of a flow's self-scores, the medians compare the bulk.
        student_sample_ms, teacher_sample_ms: wall time to draw ``timing_n`` samples.
        speedup: ``teacher_sample_ms / student_sample_ms``.
        history: ``{"step", "kl"}`` every ``log_every`` steps.
    """

    kl: float
    kl_stderr: float
    teacher_nll_of_student: float
    teacher_nll_of_teacher: float
    teacher_nll_of_student_median: float
    teacher_nll_of_teacher_median: float
    student_sample_ms: float
    teacher_sample_ms: float
    speedup: float
    history: list[dict[str, float]] = field(default_factory=list)


def _timed(fn: Any, n: int, rounds: int = 3) -> float:
    best = math.inf
    for _ in range(rounds):
        t = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def distill(
    teacher: _Teacher,
    student: _Student,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    eval_samples: int = 4096,
    timing_n: int = 1024,
    log_every: int = 100,
) -> DistillResult:
    """Train ``student`` to match ``teacher`` by minimizing :math:`\\mathrm{KL}(s \\| t)` on its own samples.

    Args:
        teacher: a model with ``log_prob`` (its parameters are not changed).
        student: a model with ``rsample(n) -> (x, log_s(x))`` (e.g.
            :class:`~pyrogen.models.IAF`).
        steps, batch_size, lr: Adam on the student's parameters.
        seed: seeds the student's samples.
        eval_samples: samples of the final KL estimate.
        timing_n: samples drawn when timing both models.
        log_every: history interval.

    Returns:
        A :class:`DistillResult`.

    Raises:
        ValueError: a non-positive count or learning rate.
    """
    for name, v in (("steps", steps), ("batch_size", batch_size), ("eval_samples", eval_samples)):
        _positive_int(name, v)
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr!r}")
    # score through the teacher's Pyro distribution where it has one: the student's samples may
    # leave the data's support (e.g. a logit flow's margin) while staying in the teacher's
    if isinstance(teacher, HasDistribution):
        teacher_log_prob = lambda x: teacher.as_distribution().log_prob(x)  # noqa: E731
    else:
        teacher_log_prob = teacher.log_prob
    frozen = [p for p in teacher.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(list(student.parameters()), lr=lr)
    history: list[dict[str, float]] = []
    try:
        for step in range(1, steps + 1):
            x, log_s = student.rsample(batch_size)
            loss = (log_s - teacher_log_prob(x)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % log_every == 0 or step == steps:
                history.append({"step": step, "kl": float(loss.detach())})
        with torch.no_grad():
            x, log_s = student.rsample(eval_samples)
            log_t = teacher_log_prob(x)
            diff = (log_s - log_t).double()
            own = teacher_log_prob(teacher.sample(eval_samples)).double()
            own = own[torch.isfinite(own)]  # a far-tail teacher sample may fall outside float range
    finally:
        for p in frozen:
            p.requires_grad_(True)
    with torch.no_grad():
        s_ms, t_ms = _timed(student.sample, timing_n), _timed(teacher.sample, timing_n)
    return DistillResult(
        kl=float(diff.mean()),
        kl_stderr=float(diff.std() / math.sqrt(len(diff))),
        teacher_nll_of_student=float(-log_t.double().mean()),
        teacher_nll_of_teacher=float(-own.mean()),
        teacher_nll_of_student_median=float(-log_t.double().median()),
        teacher_nll_of_teacher_median=float(-own.median()),
        student_sample_ms=s_ms,
        teacher_sample_ms=t_ms,
        speedup=t_ms / s_ms,
        history=history,
    )
