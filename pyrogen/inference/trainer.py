"""The trainer: one loop for every family, resumable, DDP-ready.

:func:`fit` trains a model under an :class:`~pyrogen.inference.objectives.Objective` (the loss, its
parameter groups and their update schedule; the model's registered default unless one is passed). It owns
the data order
(a :class:`~torch.utils.data.DistributedSampler` reseeded each epoch, so that
the order is a function of the seed and the step alone), one Adam optimizer
per parameter group, a stateless learning-rate schedule, periodic validation
with early stopping, atomic checkpoints and exact resumption.

Under ``torchrun --nproc_per_node=K`` it initialises the process group (gloo
on CPU, NCCL on CUDA), wraps the model in
:class:`~torch.nn.parallel.DistributedDataParallel`, gives each rank a
``batch_size / K`` shard of every global batch, writes checkpoints from rank
0 only and checks at the end that every rank holds the same parameters.
"""

from __future__ import annotations

import copy
import gc
import logging
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist
from torch import nn
from torch.utils.data import DistributedSampler

from pyrogen.data import Dataset
from pyrogen.data.batch import Batch
from pyrogen.inference.hooks import TrainingHook
from pyrogen.inference.objectives import Objective, objective_for, trusted
from pyrogen.inference.protocol import (
    Configured,
    GenerativeModelProtocol,
    TrainsOnDatasets,
    Validates,
    training_data,
)
from pyrogen.io import CheckpointError, _non_finite, load_checkpoint, save_checkpoint

__all__ = [
    "FitResult",
    "TrainConfig",
    "TrainingDiverged",
    "group_settings",
    "fit",
    "latest_checkpoint",
    "make_optimizers",
    "train_defaults_for",
    "training_step",
    "use_train_defaults",
]

log = logging.getLogger("pyrogen")

CKPT_PREFIX = "ckpt-"


@dataclass
class TrainConfig:
    """Settings of :func:`fit` (all JSON-serialisable; saved with every checkpoint).

    Attributes:
        steps: total number of optimisation steps.
        batch_size: global batch size (split evenly across DDP ranks).
        lr: peak learning rate of Adam.
        schedule: ``"constant"`` or ``"cosine"`` (decay to 0 at ``steps``, after
            ``warmup_steps`` of linear warm-up).
        warmup_steps: linear learning-rate warm-up.
        weight_decay: Adam's L2 penalty.
        grad_clip: clip the global gradient norm of each group, or ``None``.
        val_every: validate every this many steps (0: never).
        patience: stop after this many validations without improvement
            (``None``: never stop early).
        restore_best: end with the parameters of the best validation point.
        checkpoint_every: write a checkpoint every this many steps (0: never).
        keep_checkpoints: how many recent checkpoints to keep.
        seed: seeds the data order and the training noise.
        objective: ``"loss"`` (the model's own, possibly fused, loss) or
            ``"pyro"`` (Pyro's ELBO on ``model``/``guide``).
        log_every: record the mean training loss every this many steps.
        fused: use PyTorch's fused Adam kernel (one kernel for all parameters)
            where the parameters' device and dtype allow it; it gives the same
            update as the for-loop Adam, faster (``benchmarks/run.py`` shows
            both). ``False``: the for-loop Adam.
        groups: per-parameter-group optimizer settings that override the
            objective's ``settings()``, e.g. ``{"critic": {"lr": 1e-4,
            "betas": (0.0, 0.9)}}`` (keys ``lr``, ``betas``, ``weight_decay``,
            ``grad_clip``; see :func:`group_settings`). The learning-rate
            schedule scales every group's ``lr`` alike.
    """

    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    schedule: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float | None = None
    val_every: int = 100
    patience: int | None = None
    restore_best: bool = True
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    seed: int = 0
    objective: str = "loss"
    log_every: int = 50
    fused: bool = True
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate(self) -> None:
        def positive(name: str, allow_zero: bool = False) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if allow_zero else 1):
                need = "a non-negative" if allow_zero else "a positive"
                raise ValueError(f"{name} must be {need} integer; got {v!r}")

        for name in ("steps", "batch_size", "log_every", "keep_checkpoints"):
            positive(name)
        for name in ("val_every", "checkpoint_every", "warmup_steps"):
            positive(name, allow_zero=True)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number; got {self.lr!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine'; got {self.schedule!r}")
        if self.objective not in ("loss", "pyro"):
            raise ValueError(f"objective must be 'loss' or 'pyro'; got {self.objective!r}")
        if self.patience is not None and (
            isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1
        ):
            raise ValueError(f"patience must be a positive integer or None; got {self.patience!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None; got {self.grad_clip!r}")

    def lr_at(self, step: int, base: float | None = None) -> float:
        """The learning rate used for the update at ``step`` (0-based), for peak rate ``base`` (default ``lr``)."""
        lr = self.lr if base is None else base
        if step < self.warmup_steps:
            return lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return lr
        span = max(1, self.steps - self.warmup_steps)
        return 0.5 * lr * (1 + math.cos(math.pi * min(1.0, (step - self.warmup_steps) / span)))


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        step: the number of steps taken.
        history: records ``{"step", "loss"}`` (training) and
            ``{"step", "val"}`` (validation), in order.
        best_val: the best validation loss, or ``None``.
        best_step: the step it was reached at.
        stopped_early: whether patience ran out.
        world_size: the number of DDP ranks.
        warnings: what went wrong without stopping the run, e.g. a training
            loss that exploded far above its best value (also logged).
    """

    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float | None = None
    best_step: int | None = None
    stopped_early: bool = False
    world_size: int = 1
    warnings: list[str] = field(default_factory=list)


#: The optimizer settings a parameter group may set (the :class:`TrainConfig` values are the defaults).
GROUP_KEYS = ("lr", "betas", "weight_decay", "grad_clip")


def group_settings(model: nn.Module, cfg: TrainConfig, objective: Objective | None = None) -> dict[str, dict[str, Any]]:
    """Each parameter group's optimizer settings: ``TrainConfig`` defaults < the objective's < ``cfg.groups``.

    An objective declares its own in :meth:`~pyrogen.inference.objectives.Objective.settings` (e.g. a GAN's
    critic ``{"lr": 1e-4, "betas": (0.0, 0.9)}``); ``cfg.groups`` overrides both. ``objective`` defaults to
    the model's (:func:`~pyrogen.inference.objectives.objective_for`). The result is JSON-serialisable and
    saved in every checkpoint.

    Raises:
        ValueError: a setting for a group the objective does not train, an unknown
            key, or a bad value.
    """
    objective = objective if objective is not None else objective_for(model)
    names = list(objective.groups(model))
    layers = [objective.settings(model), cfg.groups or {}]
    out: dict[str, dict[str, Any]] = {}
    for g in names:
        s: dict[str, Any] = {
            "lr": cfg.lr,
            "betas": [0.9, 0.999],
            "weight_decay": cfg.weight_decay,
            "grad_clip": cfg.grad_clip,
        }
        for layer in layers:
            s.update(layer.get(g, {}))
        out[g] = s
    for layer, where in zip(layers, ("the objective's settings()", "groups"), strict=True):
        for g, d in layer.items():
            if g not in names:
                raise ValueError(f"{where} names parameter group {g!r}; the model has {names}")
            bad = set(d) - set(GROUP_KEYS)
            if bad:
                raise ValueError(f"{where}[{g!r}] has unknown settings {sorted(bad)}; allowed: {list(GROUP_KEYS)}")
    for g, s in out.items():
        _check_group(g, s)
        s["betas"] = [float(b) for b in s["betas"]]
    return out


def _check_group(g: str, s: Mapping[str, Any]) -> None:
    lr, wd, clip, betas = s["lr"], s["weight_decay"], s["grad_clip"], s["betas"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr of group {g!r} must be a positive finite number; got {lr!r}")
    if isinstance(wd, bool) or not isinstance(wd, (int, float)) or not (math.isfinite(wd) and wd >= 0):
        raise ValueError(f"weight_decay of group {g!r} must be a non-negative number; got {wd!r}")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0):
        raise ValueError(f"grad_clip of group {g!r} must be positive or None; got {clip!r}")
    ok = isinstance(betas, (list, tuple)) and len(betas) == 2
    if not ok or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas):
        raise ValueError(f"betas of group {g!r} must be two numbers in [0, 1); got {betas!r}")


class _Groups:
    """The parameter groups, their optimizers and settings, and the parameters to freeze while each trains."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, objective: Objective) -> None:
        self.objective = objective
        self.params: dict[str, list[torch.Tensor]] = {g: list(ps) for g, ps in objective.groups(model).items()}
        self.settings = group_settings(model, cfg, objective)
        self.opts = {g: _adam(ps, self.settings[g], cfg.fused) for g, ps in self.params.items()}
        ids = {g: {id(p) for p in ps} for g, ps in self.params.items()}
        everything = [p for ps in self.params.values() for p in ps]
        # while group g trains, every other group's parameters collect no gradient (and cost no backward work)
        self.frozen = {
            g: [p for p in everything if id(p) not in ids[g]] if len(self.params) > 1 else [] for g in self.params
        }
        #: the model's training hooks (EMA, replay buffers), found once
        self.hooks = [m for m in model.modules() if isinstance(m, TrainingHook)]
        #: per group, the updates skipped in a row because the clipped gradient was not finite
        self.skipped: dict[str, int] = dict.fromkeys(self.params, 0)


def training_step(
    model: nn.Module,
    wrapped: Callable[..., torch.Tensor] | None,
    batch: Data,
    step: int,
    groups: _Groups,
    cfg: TrainConfig,
    draw: Callable[[int], Data] | None = None,
) -> dict[str, torch.Tensor]:
    """One optimisation step of :func:`fit`: every group of the objective's ``schedule(model, step)`` in turn.

    The first update of each group trains on ``batch``; a group updated again in the same step (the ``i``-th
    update of the schedule) on ``draw(i)``, a batch of its own: WGAN's critic iterations each see a fresh
    minibatch (Arjovsky et al., 2017, Algorithm 1), while different groups share the step's batch, as the
    reference GAN, BiGAN and CycleGAN implementations train their two players on one. Without ``draw`` every
    update reuses ``batch``.

    ``wrapped`` computes a group's loss: a :class:`_Step` (the objective's ``loss`` on the model; ``None``
    makes one) on one process, or its DDP wrapper. (Going through ``PyroModule.__call__`` would issue a
    ``pyro.module`` statement for every child network on every step, about
    0.15 ms; the trainer needs no Pyro effects there.) While a group trains,
    the parameters of every other group have ``requires_grad`` off: their
    ``.grad`` stays as it was and autograd does no work for them.
    Returns the detached loss of each group updated (the last, where a group
    is updated several times). Where a group clips its gradient norm and that
    norm is not finite, its update is skipped (``groups.skipped`` counts the
    skips in a row).
    """
    if wrapped is None:
        wrapped = _Step(model, groups.objective)
    for hook in groups.hooks:
        hook.before_step(step)
    schedule = groups.objective.schedule(model, step)
    if not schedule:
        raise ValueError(f"{type(groups.objective).__name__}.schedule(model, {step}) returned no parameter group")
    losses: dict[str, torch.Tensor] = {}
    step_batch = batch
    for update, gname in enumerate(schedule):
        batch = draw(update) if gname in losses and draw is not None else step_batch
        opt, settings, frozen = groups.opts[gname], groups.settings[gname], groups.frozen[gname]
        for pg in opt.param_groups:
            pg["lr"] = cfg.lr_at(step, settings["lr"])
        opt.zero_grad(set_to_none=True)
        for p in frozen:
            p.requires_grad_(False)
        try:
            if cfg.objective == "pyro" and frozen:
                with warnings.catch_warnings():
                    # the other groups' parameters are frozen here on purpose: Pyro's notice that pyro.module
                    # leaves them out of the param store is no news
                    warnings.filterwarnings("ignore", message=".*not registered in the param store because")
                    loss = wrapped(batch, group=gname, pyro=True)
            else:
                loss = wrapped(batch, group=gname, pyro=cfg.objective == "pyro")
            loss.backward()
        finally:
            for p in frozen:
                p.requires_grad_(True)
        losses[gname] = loss.detach()
        if settings["grad_clip"] is not None:
            norm = torch.nn.utils.clip_grad_norm_(groups.params[gname], settings["grad_clip"])
            if not bool(torch.isfinite(norm)):
                # the gradient overflowed (a batch far in the data's tails): this update is skipped, since
                # clipping an infinite norm would write NaN into every parameter
                opt.zero_grad(set_to_none=True)
                groups.skipped[gname] += 1
                continue
            groups.skipped[gname] = 0
        opt.step()
    for hook in groups.hooks:
        hook.after_step(step)
    return losses


def make_optimizers(model: nn.Module, cfg: TrainConfig, objective: Objective | None = None) -> _Groups:
    """The parameter groups of ``objective`` (the model's default unless given) with one Adam optimizer each (see
    :func:`group_settings`)."""
    return _Groups(model, cfg, objective if objective is not None else objective_for(model))


def _adam(params: list[torch.Tensor], settings: Mapping[str, Any], fused: bool) -> torch.optim.Optimizer:
    kw = {"lr": settings["lr"], "betas": tuple(settings["betas"]), "weight_decay": settings["weight_decay"]}
    if fused:
        try:
            return torch.optim.Adam(params, fused=True, **kw)
        except (RuntimeError, TypeError):  # a device/dtype (or a torch) without the fused kernel
            pass
    return torch.optim.Adam(params, **kw)


_CKPT_NAME = re.compile(rf"{CKPT_PREFIX}(\d{{9}})\.safetensors")


def _checkpoints(run_dir: str | os.PathLike[str], up_to: int | None = None) -> list[Path]:
    """The checkpoint files in ``run_dir`` by step, oldest first: the names the trainer writes
    (``ckpt-<9 digits>.safetensors``), and with ``up_to`` only those of steps at most ``up_to``."""
    found = []
    for f in Path(run_dir).glob(f"{CKPT_PREFIX}*.safetensors"):
        m = _CKPT_NAME.fullmatch(f.name)
        if m and (up_to is None or int(m.group(1)) <= up_to):
            found.append((int(m.group(1)), f))
    return [f for _, f in sorted(found)]


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint file in ``run_dir``, or ``None``."""
    files = _checkpoints(run_dir)
    return files[-1] if files else None


def _dist_info() -> tuple[int, int]:
    if tdist.is_available() and tdist.is_initialized():
        return tdist.get_rank(), tdist.get_world_size()
    return 0, 1


def _maybe_init_distributed(device: torch.device) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not tdist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        tdist.init_process_group(backend=backend)


def _optimizer_tensors(
    opts: Mapping[str, torch.optim.Optimizer],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for gname, opt in opts.items():
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, st in sd["state"].items():
            for k, v in st.items():
                if isinstance(v, torch.Tensor):
                    tensors[f"optim.{gname}.{idx}.{k}"] = v
                else:
                    scalars.setdefault(str(idx), {})[k] = v
        meta[gname] = {"param_groups": sd["param_groups"], "scalars": scalars}
    return tensors, meta


def _load_optimizers(
    opts: Mapping[str, torch.optim.Optimizer],
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
) -> None:
    for gname, opt in opts.items():
        if gname not in meta:
            raise CheckpointError(f"checkpoint has no optimizer state for parameter group {gname!r}")
        state: dict[int, dict[str, Any]] = {}
        prefix = f"optim.{gname}."
        for key, v in tensors.items():
            if key.startswith(prefix):
                idx, k = key[len(prefix) :].split(".", 1)
                state.setdefault(int(idx), {})[k] = v
        for idx, sc in meta[gname]["scalars"].items():
            state.setdefault(int(idx), {}).update(sc)
        opt.load_state_dict({"state": state, "param_groups": meta[gname]["param_groups"]})


def _rng_tensors(device: torch.device, rank: int) -> dict[str, torch.Tensor]:
    out = {f"rng.rank{rank}.torch": torch.get_rng_state()}
    if device.type == "cuda":
        out[f"rng.rank{rank}.cuda"] = torch.cuda.get_rng_state(device)
    return out


def _set_rng(tensors: Mapping[str, torch.Tensor], device: torch.device, rank: int) -> None:
    key = f"rng.rank{rank}."
    if key + "torch" not in tensors:
        raise CheckpointError(f"checkpoint holds no RNG state for rank {rank}; was it written with more ranks?")
    torch.set_rng_state(tensors[key + "torch"].cpu())
    if device.type == "cuda" and key + "cuda" in tensors:
        torch.cuda.set_rng_state(tensors[key + "cuda"].cpu(), device)


def _state_tensors(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in module.state_dict().items()}


def _strip(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


class _Batches:
    """Global-batch ``step`` -> this rank's index tensor, from the seed and step alone."""

    def __init__(self, n: int, batch_size: int, rank: int, world: int, seed: int, device: torch.device):
        if batch_size % world:
            raise ValueError(f"batch_size={batch_size} must be divisible by the number of ranks {world}")
        self.local = min(batch_size // world, n // world)
        if self.local < 1:
            raise ValueError(f"the training data ({n} examples) are too few for {world} ranks")
        self.sampler: DistributedSampler[int] = DistributedSampler(
            range(n),  # type: ignore[arg-type]
            num_replicas=world,
            rank=rank,
            shuffle=True,
            seed=seed,
            drop_last=True,
        )
        self.per_epoch = (n // world) // self.local
        self.device = device
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.long)

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._order = torch.tensor(list(self.sampler), dtype=torch.long, device=self.device)
            self._epoch = epoch
        return self._order[i * self.local : (i + 1) * self.local]

    def extra(self, step: int, update: int) -> torch.Tensor:
        """The batch of the ``update``-th group update (``update >= 1``) of ``step``: a draw of its own, without
        replacement, from a generator seeded by the run's seed, the step and the update alone (so a resumed run
        draws what an uninterrupted one would; every rank takes its own part of one permutation)."""
        g = torch.Generator().manual_seed((self.sampler.seed * 0x9E3779B1 + step * 0x85EBCA6B + update) % 2**63)
        n = len(self.sampler.dataset)  # type: ignore[arg-type]
        perm = torch.randperm(n, generator=g)
        rank = self.sampler.rank
        return perm[rank * self.local : (rank + 1) * self.local].to(self.device)


#: Training data: examples, or examples with their context (e.g. class labels) for conditional models.
Data = torch.Tensor | tuple[torch.Tensor, ...] | Batch


def _check_data(data: Data, name: str, model: nn.Module) -> Data:
    parts: tuple[torch.Tensor, ...] = tuple(data) if isinstance(data, tuple) else (data,)  # type: ignore[arg-type]
    if not parts or not all(isinstance(p, torch.Tensor) for p in parts):
        kinds = ", ".join(type(p).__name__ for p in parts) if isinstance(data, tuple) else type(data).__name__
        also = " or a pyrogen.data.Dataset (pyrogen.data.load(name))" if name == "train" else ""
        raise TypeError(f"{name} must be a torch.Tensor or a tuple of tensors (examples, context){also}; got {kinds}")
    if len(parts[0]) == 0:
        raise ValueError(f"{name} is empty; at least one example is needed")
    if any(len(p) != len(parts[0]) for p in parts):
        raise ValueError(f"{name}: examples and context differ in length: {[len(p) for p in parts]}")
    if isinstance(model, Validates):  # the model's check, which also casts floating data to its parameters' dtype
        x = model.validate(parts[0], name=name)
        if isinstance(x, torch.Tensor) and x is not parts[0]:
            parts = (x, *parts[1:])
    if not isinstance(data, tuple):
        return parts[0]
    return Batch(*parts) if len(parts) == 2 else tuple(parts)  # examples and context: one Batch from here on


def _to(data: Data, dev: torch.device) -> Data:
    if isinstance(data, Batch):
        return Batch(data.x.to(dev), None if data.context is None else data.context.to(dev))
    return tuple(p.to(dev) for p in data) if isinstance(data, tuple) else data.to(dev)  # type: ignore[union-attr]


def _rows(data: Data, idx: torch.Tensor) -> Data:
    """The rows ``idx`` of the training data: a tensor, or a :class:`~pyrogen.data.batch.Batch` of examples and
    their context."""
    if isinstance(data, Batch):
        return data.index_select(idx)
    if isinstance(data, tuple):
        return tuple(p.index_select(0, idx) for p in data)  # type: ignore[union-attr]
    return data.index_select(0, idx)


def _len(data: Data) -> int:
    return len(data[0]) if isinstance(data, tuple) else len(data)


def fit(
    model: nn.Module,
    train: Data,
    val: Data | None = None,
    config: TrainConfig | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = False,
    run_metadata: Mapping[str, Any] | None = None,
    loss: Objective | None = None,
    **overrides: Any,
) -> FitResult:
    """Train ``model`` on ``train``, validating on ``val``.

    Args:
        model: the module to train (every registered pyrogen model, or any module given ``loss``).
        train: training examples, shape ``(n,) + event_shape``; for a
            conditional model a tuple ``(examples, context)`` (e.g. the class
            labels), batched together, and ``loss`` receives the tuple. Or a
            :class:`~pyrogen.data.Dataset`: the model trains on its ``train``
            part (with the labels, for a labelled model), validates on its
            ``val`` part (unless ``val`` is given) and, without ``config``, with
            the settings its recipe chooses for that dataset
            (:func:`train_defaults_for`); keyword ``overrides`` replace any.
        val: validation examples (a tuple likewise), or ``None`` (no
            validation, no early stopping).
        config: a :class:`TrainConfig`; keyword ``overrides`` replace its fields.
        out: a run directory for checkpoints (required by ``checkpoint_every``
            and ``resume``).
        resume: continue from the newest readable checkpoint in ``out``
            (the result equals an uninterrupted run's); start afresh if there is none.
        device: where to train (``"cpu"``, ``"cuda"``, ``"cuda:1"``); defaults to
            the device of the model's parameters.
        progress: show a tqdm progress bar with the loss (rank 0 only).
        run_metadata: extra JSON saved in every checkpoint (the CLI stores the
            model and dataset names there).

    The objective chooses what validation watches: its ``validation`` (its loss
    by default; a score-matching loss or a sample-quality distance such as
    MMD to ``val`` where the family has no likelihood), computed with input
    gradients when it sets ``validation_needs_grad``; an objective whose
    ``monitor`` is ``None`` (a curriculum whose phases' losses are no one score)
    is not validated and so never stops early.

    Returns:
        A :class:`FitResult`.

    Raises:
        ValueError: a bad setting, bad data, or ``resume``/``checkpoint_every``
            without ``out``.
        TrainingDiverged: the training loss became NaN or infinite (no
            checkpoint of the diverged parameters is written).
        pyrogen.io.CheckpointError: ``resume`` found checkpoints but none is readable.

    Example:
        >>> import pyrogen
        >>> from pyrogen.models import RealNVP
        >>> ds = pyrogen.data.load("moons")
        >>> flow = RealNVP(event_shape=(2,), num_layers=2, hidden=(16,))
        >>> result = fit(flow, ds.train[:512], ds.val[:256], steps=20, val_every=10)
        >>> result.step, len([h for h in result.history if "val" in h])
        (20, 2)
        >>> fit(flow, ds, steps=5).step  # the recipe's batch size, learning rate, schedule and clip
        5
    """
    if isinstance(train, Dataset):
        train, val, defaults = _from_dataset(model, train, val, config)
        config = TrainConfig(**defaults) if config is None else config
    elif isinstance(val, Dataset):
        raise TypeError("val must be examples (or an (examples, context) pair); a Dataset goes in train's place")
    cfg = _config(model, config, overrides, out, resume)
    objective = loss if loss is not None else objective_for(model)
    if not isinstance(objective, Objective):
        raise TypeError(f"loss must be a pyrogen.inference.objectives.Objective; got {type(loss).__name__}")
    dev = _device(model, device)
    _maybe_init_distributed(dev)
    rank, world = _dist_info()
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    train = _to(_check_data(train, "train", model), dev)
    if val is not None:
        val = _to(_check_data(val, "val", model), dev)
        if objective.monitor is None:
            log.info("%s has no validation monitor; training without validation", type(objective).__name__)
            val = None
    model.to(dev)
    objective.setup(model, train)
    st = _State(
        model=model,
        cfg=cfg,
        dev=dev,
        rank=rank,
        world=world,
        groups=_Groups(model, cfg, objective),
        batches=_Batches(_len(train), cfg.batch_size, rank, world, cfg.seed, dev),
        run_dir=Path(out) if out is not None else None,
        run_metadata=dict(run_metadata or {}),
    )
    torch.manual_seed(cfg.seed + rank)
    if dev.type == "cuda":
        torch.cuda.manual_seed(cfg.seed + rank)
    if resume:
        _resume(st)
    _loop(st, train, val, progress)
    if world > 1:
        _check_replicas(model)
    if cfg.restore_best and st.best_state is not None:
        model.load_state_dict(st.best_state)
    for hook in st.groups.hooks:  # annealed settings as at the step training stopped
        hook.before_step(st.result.step)
    model.eval()
    return st.result


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite; nothing of the diverged run is checkpointed."""


#: Each registered class's training settings for a dataset, ``(model, dataset) -> TrainConfig fields`` (set by
#: the registry from recipes; see :func:`use_train_defaults`).
_TRAIN_DEFAULTS: dict[type, Callable[[Any, Dataset], dict[str, Any]]] = {}


def use_train_defaults(cls: type, make: Callable[[Any, Dataset], dict[str, Any]]) -> None:
    """Make ``make(model, dataset)`` the training settings :func:`fit` takes for a model of ``cls`` (or a
    subclass) given a :class:`~pyrogen.data.Dataset` and no ``config`` (the registry calls this with a recipe's
    ``train``)."""
    _TRAIN_DEFAULTS[cls] = make


def train_defaults_for(model: nn.Module, data: Dataset) -> dict[str, Any]:
    """The :class:`TrainConfig` fields ``model`` trains on ``data`` with unless told: its recipe's (``{}`` for a
    class no recipe names)."""
    for cls in type(model).__mro__:
        make = _TRAIN_DEFAULTS.get(cls)
        if make is not None:
            return dict(make(model, data))
    return {}


def _from_dataset(
    model: nn.Module, data: Dataset, val: Any, config: TrainConfig | None
) -> tuple[Any, Any, dict[str, Any]]:
    """The training and validation parts of ``data`` that ``model`` takes (``(examples, labels)`` for a labelled
    model), and its recipe's settings for ``data`` (``{}`` when ``config`` is given: it says them all)."""
    if isinstance(model, (GenerativeModelProtocol, TrainsOnDatasets)):
        train, default_val = training_data(model, data, "train"), training_data(model, data, "val")
    else:
        train, default_val = data.train, data.val
    if len(data.val) == 0:
        default_val = None
    return train, default_val if val is None else val, train_defaults_for(model, data) if config is None else {}


def _config(
    model: nn.Module,
    config: TrainConfig | None,
    overrides: Mapping[str, Any],
    out: object,
    resume: bool,
) -> TrainConfig:
    cfg = copy.deepcopy(config) if config is not None else TrainConfig()
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise TypeError(f"fit() got an unexpected setting {k!r}")
        setattr(cfg, k, v)
    cfg.validate()
    if (resume or cfg.checkpoint_every) and out is None:
        raise ValueError("out (a run directory) is required for resume and checkpoint_every")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    return cfg


def _device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is None:
        p = next(model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was asked for but CUDA is not available")
    return dev


@dataclass
class _State:
    """Everything :func:`fit` carries from step to step (and into checkpoints)."""

    model: nn.Module
    cfg: TrainConfig
    dev: torch.device
    rank: int
    world: int
    groups: _Groups
    batches: _Batches
    run_dir: Path | None
    run_metadata: dict[str, Any]
    result: FitResult = field(default_factory=lambda: FitResult(step=0))
    best_state: dict[str, torch.Tensor] | None = None
    bad_vals: int = 0
    running: dict[str, torch.Tensor] = field(default_factory=dict)  # loss sums since the last record, per group
    n_running: int = 0

    def __post_init__(self) -> None:
        self.result.world_size = self.world


def _loop(st: _State, train: Data, val: Data | None, progress: bool) -> None:
    cfg, model = st.cfg, st.model
    wrapped: Callable[..., torch.Tensor] = _Step(model, st.groups.objective)
    if st.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # DDP calls the wrapper, not PyroModule.__call__ (no pyro.module statements in the training step)
        wrapped = DDP(wrapped, find_unused_parameters=len(st.groups.params) > 1)
    bar = None
    if progress and st.rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=st.result.step, desc="train", mininterval=0.5, dynamic_ncols=True)
    model.train()
    step = st.result.step
    check_each_step = st.dev.type != "cuda"  # free on the CPU; on a GPU the running sums are checked instead
    while step < cfg.steps and not st.result.stopped_early:

        def draw(update: int, step: int = step) -> Data:
            return _rows(train, st.batches.extra(step, update))

        losses = training_step(model, wrapped, _rows(train, st.batches(step)), step, st.groups, cfg, draw)
        for g, v in losses.items():
            st.running[g] = st.running[g] + v if g in st.running else v.clone()
        st.n_running += 1
        step += 1
        st.result.step = step
        if check_each_step:
            _check_finite(st, {g: float(v) for g, v in losses.items()}, step)
        if any(st.groups.skipped.values()):
            _note_skipped(st, step)
        if step % cfg.log_every == 0 or step == cfg.steps:
            _record(st, step, bar)
        if val is not None and cfg.val_every and (step % cfg.val_every == 0 or step == cfg.steps):
            _validation_point(st, val, step)
        due = cfg.checkpoint_every and (step % cfg.checkpoint_every == 0 or step == cfg.steps)
        if st.run_dir is not None and (due or (cfg.checkpoint_every and st.result.stopped_early)):
            _check_finite(st, {g: float(v) for g, v in st.running.items()}, step)
            _save(st)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if st.world > 1:
        # The DDP reducer holds the process group: release it here, before the CLI destroys the
        # group, so that nothing holding gloo's threads can reach interpreter shutdown.
        del wrapped
        gc.collect()


class _Step(nn.Module):
    """A group's loss under the objective, as a plain module (what DDP wraps): the batch is trusted, checked
    once when :func:`fit` began."""

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: Data, group: str, pyro: bool = False) -> torch.Tensor:
        with trusted():
            if pyro:
                return self.objective.pyro_loss(self.model, batch, group)
            return self.objective.loss(self.model, batch, group)


def _check_finite(st: _State, values: Mapping[str, float], step: int) -> None:
    for g, v in values.items():
        if not math.isfinite(v):
            where = f" of group {g!r}" if len(st.groups.params) > 1 else ""
            ours = _checkpoints(st.run_dir, up_to=step) if st.run_dir is not None else []
            keep = f"; the last good checkpoint is {ours[-1]}" if ours else ""
            raise TrainingDiverged(f"training loss{where} became {v} by step {step}: lower lr or set grad_clip{keep}")


#: Updates skipped in a row (a non-finite gradient) after which a run counts as diverged.
MAX_SKIPPED = 20


def _note_skipped(st: _State, step: int) -> None:
    """Warn (once per group) about an update skipped for a non-finite gradient; raise after ``MAX_SKIPPED`` in a
    row."""
    for g, n in st.groups.skipped.items():
        if not n:
            continue
        where = f" of group {g!r}" if len(st.groups.params) > 1 else ""
        if n >= MAX_SKIPPED:
            raise TrainingDiverged(
                f"the gradient{where} was not finite for {n} steps in a row by step {step}: lower lr"
            )
        tag = f"skipped: the gradient{where} was not finite"
        if not any(w.startswith(tag) for w in st.result.warnings):
            msg = f"{tag} at step {step} (a batch far in the data's tails?); later skips are not reported"
            st.result.warnings.append(msg)
            log.warning("%s", msg)


def _record(st: _State, step: int, bar: Any) -> None:
    """Append the mean training loss of each group since the last record to the history."""
    means = {g: float(st.running[g]) / st.n_running for g in st.groups.params if g in st.running}
    _check_finite(st, means, step)
    # "loss": the last group's (the only one's, for a single-group model; a GAN's generator)
    rec: dict[str, float] = {"step": step, "loss": means[next(reversed(means))]}
    if len(st.groups.params) > 1:
        rec.update({f"loss.{g}": v for g, v in means.items()})
    _check_explosion(st, means, step)
    st.result.history.append(rec)
    st.running, st.n_running = {}, 0
    if bar is not None:
        shown = {k.removeprefix("loss."): f"{v:.4f}" for k, v in rec.items() if k.startswith("loss.")}
        bar.set_postfix(shown or {"loss": f"{rec['loss']:.4f}"}, refresh=False)


#: A logged loss this many times its best scale above its best value counts as an explosion.
EXPLOSION_FACTOR = 100.0


def _check_explosion(st: _State, means: Mapping[str, float], step: int) -> None:
    """Warn (once per group) when a group's logged loss leaves its own running scale: it rose above its best
    logged value by ``EXPLOSION_FACTOR`` times ``max(1, |best|)`` (a learning rate too high, a density the
    defaults were not tuned for)."""
    earlier = [h for h in st.result.history if "val" not in h]
    for g, v in means.items():
        key = f"loss.{g}" if len(st.groups.params) > 1 else "loss"
        seen = [h[key] for h in earlier if key in h]
        if not seen or any(f"group {g!r}" in w for w in st.result.warnings):
            continue
        best = min(seen)
        if v > best + EXPLOSION_FACTOR * max(1.0, abs(best)):
            msg = (
                f"training loss of group {g!r} exploded at step {step}: {v:.4g}, against a best of {best:.4g}; "
                "lower lr or set grad_clip"
            )
            st.result.warnings.append(msg)
            log.warning("%s", msg)


def _validation_point(st: _State, val: Data, step: int) -> None:
    v = _validate(st.model, st.groups.objective, val, st.cfg.seed, st.dev)
    if not math.isfinite(v):
        raise TrainingDiverged(f"validation loss became {v} at step {step}: lower lr or set grad_clip")
    st.result.history.append({"step": step, "val": v})
    if st.result.best_val is None or v < st.result.best_val:
        st.result.best_val, st.result.best_step, st.bad_vals = v, step, 0
        st.best_state = {k: t.detach().clone() for k, t in st.model.state_dict().items()}
    else:
        st.bad_vals += 1
        if st.cfg.patience is not None and st.bad_vals >= st.cfg.patience:
            st.result.stopped_early = True
    st.model.train()


def _validate(model: nn.Module, objective: Objective, val: Data, seed: int, dev: torch.device) -> float:
    """Validation score with common random numbers that leave the training RNG untouched.

    Computed without gradients unless the objective sets ``validation_needs_grad``
    (a score-matching monitor differentiates with respect to the input).
    """
    model.eval()
    devices = [dev] if dev.type == "cuda" else []
    grad = torch.set_grad_enabled(objective.validation_needs_grad)
    with torch.random.fork_rng(devices=devices), grad, trusted():
        torch.manual_seed(seed + 7919)
        total = 0.0
        n = _len(val)
        for start in range(0, n, 1024):
            chunk = _rows(val, torch.arange(start, min(start + 1024, n), device=dev))
            total += float(objective.validation(model, chunk).detach()) * _len(chunk)
    return total / n


def _resume(st: _State) -> None:
    assert st.run_dir is not None
    loaded = _load_latest(st.run_dir, st.dev)
    if loaded is None:
        return
    tensors, meta = loaded
    try:
        saved_groups = meta["groups"]
        st.model.load_state_dict(_strip(tensors, "model."))
        _load_optimizers(st.groups.opts, tensors, meta["optim"])
        _set_rng(tensors, st.dev, st.rank)
        tr = meta["trainer"]
        st.result.step, st.result.history = tr["step"], tr["history"]
        st.result.best_val, st.result.best_step, st.bad_vals = tr["best_val"], tr["best_step"], tr["bad_vals"]
        st.result.stopped_early = tr["stopped_early"]
        st.result.warnings = list(tr.get("warnings", []))
        st.n_running = int(tensors["trainer.running_count"])
        st.running = {
            k.removeprefix("trainer.running_loss."): v.to(st.dev).clone()
            for k, v in tensors.items()
            if k.startswith("trainer.running_loss.")
        }
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"the checkpoint in {st.run_dir} does not fit this model or trainer: {e}") from None
    if saved_groups != st.groups.settings:
        raise CheckpointError(
            f"the run in {st.run_dir} was trained with group settings {saved_groups}; "
            f"resuming with {st.groups.settings} would not continue it"
        )
    best = _strip(tensors, "best.")
    st.best_state = best or None
    log.info("resumed from step %d", st.result.step)


def _save(st: _State) -> None:
    assert st.run_dir is not None
    rng = _rng_tensors(st.dev, st.rank)
    if st.world > 1:  # every rank's RNG state travels to rank 0
        gathered: list[dict[str, torch.Tensor] | None] = [None] * st.world
        tdist.all_gather_object(gathered, {k: v.cpu() for k, v in rng.items()})
        rng = {k: v for g in gathered if g is not None for k, v in g.items()}
    if st.rank == 0:
        model = st.model
        tensors = _state_tensors(model, "model.")
        opt_tensors, opt_meta = _optimizer_tensors(st.groups.opts)
        tensors.update(opt_tensors)
        tensors.update(rng)
        tensors.update({f"trainer.running_loss.{g}": v for g, v in st.running.items()})
        tensors["trainer.running_count"] = torch.tensor(st.n_running)
        if st.best_state is not None:
            tensors.update({"best." + k: v for k, v in st.best_state.items()})
        bad = _non_finite(tensors)  # NaN or +inf (-inf: a log-probability of zero, as a table's entry)
        if bad:
            what = "parameters" if any(k.startswith("model.") for k in bad) else "optimizer or trainer state"
            ours = _checkpoints(st.run_dir, up_to=st.result.step)  # this run's past, not a foreign later name
            keep = f"; the last good checkpoint is {ours[-1]}" if ours else ""
            raise TrainingDiverged(
                f"{what} {bad[:3]} became non-finite by step {st.result.step}: lower lr or set grad_clip{keep}"
            )
        res = st.result
        meta = {
            "trainer": {
                "step": res.step,
                "history": res.history,
                "best_val": res.best_val,
                "best_step": res.best_step,
                "bad_vals": st.bad_vals,
                "stopped_early": res.stopped_early,
                "world_size": st.world,
                "warnings": res.warnings,
            },
            "train_config": asdict(st.cfg),
            "groups": st.groups.settings,
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "model_config": model.config() if isinstance(model, Configured) else {},
            "optim": opt_meta,
            "run": st.run_metadata,
        }
        path = st.run_dir / f"{CKPT_PREFIX}{res.step:09d}.safetensors"
        save_checkpoint(path, tensors, meta)
        # rotation counts this run's past only: a file of a later step (a foreign one) is neither kept nor deleted
        for f in _checkpoints(st.run_dir, up_to=res.step)[: -st.cfg.keep_checkpoints]:
            f.unlink()
    if st.world > 1:
        tdist.barrier()


def _load_latest(run_dir: Path, dev: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    errors = []
    for f in reversed(_checkpoints(run_dir)):
        try:
            loaded = load_checkpoint(f, device=dev)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        for skipped in errors:  # said once a good one is found; if none is, the error below says it all
            log.warning("skipping unreadable checkpoint: %s", skipped)
        return loaded
    if errors:
        raise CheckpointError(
            f"no readable checkpoint in {run_dir} to resume from ({'; '.join(errors)}); delete the "
            "checkpoints (or the directory) to start afresh, or train into another --out"
        )
    return None


def _check_replicas(model: nn.Module) -> None:
    flat = torch.cat([p.detach().flatten().double() for p in model.parameters()])
    lo, hi = flat.clone(), flat.clone()
    tdist.all_reduce(lo, op=tdist.ReduceOp.MIN)
    tdist.all_reduce(hi, op=tdist.ReduceOp.MAX)
    if not torch.equal(lo, hi):
        raise RuntimeError("DDP ranks ended with different parameters")
