"""Measuring one bit assignment: the unit of work of every experiment and search.

:func:`prepare` loads a dataset, computes its degree buckets and trains (or
loads from the cache) the FP32 model of a (dataset, model, seed, profile);
:func:`measure` fine-tunes one :class:`~sgquant.assignment.BitAssignment` from those
FP32 weights and returns a flat record (a :class:`Measurement`: validation and test
accuracy, average bits, memory, saving, wall time), cached on disk.
:func:`finetune_record` is the same without the cache and :func:`train_fp32` the
FP32 training without it (what a worker runs: :mod:`sgquant.runner`).

Records read back from the cache are checked against :class:`Measurement` (and
FP32 models against their architecture, their weights finite): a record of the
wrong structure is discarded with a warning, measured again and rewritten. Before
any training, :func:`check_memory` refuses a run whose estimated memory exceeds the
machine's (:mod:`sgquant.memory.estimate`).
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Any, Iterator, Mapping, Optional

import torch
from torch_geometric.data import Data

from . import __version__
from .assignment import BitAssignment, as_assignment
from .cache import ResultCache
from .checks import check_int, check_number, check_optional_int
from .data import canonical_name, dataset_key, load_dataset
from .degree import DegreeBuckets, degree_buckets
from .device import resolve_device
from .memory import (FeatureLayout, check_training_fits, feature_layout, feature_memory,
                     layout_bound)
from .models import QuantGNN, build_model, get_model
from .profiles import Profile, get_profile
from .provenance import check_made_on, made_on
from .quantize import QuantOptions
from .train import Finetune, teacher_logits, train_model
from .train import finetune as finetune_model

__all__ = ["Measurement", "Setup", "prepare", "measure", "train_fp32", "finetune_record",
           "setup_from_state", "clear_setup_cache", "measurement_key", "memory_record",
           "fp32_key", "build_for", "check_memory", "single_thread", "check_fp32_summary",
           "check_state", "worker_name"]


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread (repeatable sums; parallelism comes from the executor)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def worker_name() -> str:
    """``host:pid`` of this process (which worker measured a record)."""
    return f"{socket.gethostname()}:{os.getpid()}"


_ACCURACIES = ("val_acc", "test_acc", "best_test_acc", "val_acc_before", "fp32_val_acc",
               "fp32_test_acc", "fp32_best_test_acc")
_AMOUNTS = ("average_bits", "memory_mb", "fp32_memory_mb", "saving", "paper_saving",
            "weight_mb", "seconds")


@dataclass(frozen=True)
class Measurement:
    """One fine-tuned configuration, as :func:`measure` returns it and the cache stores it.

    Accuracies are fractions in [0, 1] of the graph's validation / test nodes.

    * ``dataset``, ``model``: canonical dataset name and model key (``gcn`` ...);
    * ``seed``: the FP32 model's seed (weights and training);
    * ``finetune_seed``: the seed of this fine-tune (``seed`` unless re-measured);
    * ``assignment``: the :class:`BitAssignment` as a dict; ``config_key`` its key;
    * ``val_acc``: best validation accuracy over the fine-tuning epochs (selects
      configurations); ``test_acc``: test accuracy at that epoch; ``epoch``: that epoch
      (0 = the quantized FP32 weights, before any fine-tuning);
    * ``best_test_acc``: the best test accuracy of any epoch (the authors' protocol);
    * ``val_acc_before``: validation accuracy of the quantized FP32 weights;
    * ``fp32_val_acc``, ``fp32_test_acc``, ``fp32_best_test_acc``: the FP32 model's;
    * ``average_bits``, ``memory_mb``, ``fp32_memory_mb``, ``saving``,
      ``paper_saving``, ``weight_mb``: feature memory (:mod:`sgquant.memory`);
    * ``rounding``, ``clip_percentile``: the :class:`~sgquant.quantize.QuantOptions`
      (``options``: all of them, per kind of point, as a dict);
    * ``finetune``: the :class:`~sgquant.train.Finetune` settings, as a dict;
    * ``seconds``: wall time of the fine-tuning;
    * ``worker``: ``host:pid`` of the process that fine-tuned it;
    * ``epochs_run``: the epochs it ran (fewer than its ``finetune`` epochs when a
      :class:`~sgquant.fidelity.StopRule` stopped it; ``None`` in records from before);
    * ``made_on``: its CPU capability, device and torch version
      (:func:`sgquant.provenance.made_on`; not part of its key: ``unknown`` in a record
      made before the note).
    """

    dataset: str
    model: str
    seed: int
    finetune_seed: int
    assignment: dict
    config_key: str
    val_acc: float
    test_acc: float
    best_test_acc: float
    epoch: int
    val_acc_before: float
    fp32_val_acc: float
    fp32_test_acc: float
    fp32_best_test_acc: float
    average_bits: float
    memory_mb: float
    fp32_memory_mb: float
    saving: float
    paper_saving: float
    weight_mb: float
    rounding: str
    clip_percentile: Optional[float]
    options: dict
    finetune: dict
    seconds: float
    worker: str
    epochs_run: Optional[int] = None
    made_on: dict = field(default_factory=lambda: check_made_on(None))

    @classmethod
    def from_record(cls, record: Any) -> "Measurement":
        """Check a record (e.g. read from the cache) field by field; ``ValueError``
        names the first wrong field."""
        if not isinstance(record, Mapping):
            raise ValueError(f"a measurement record is a JSON object, got "
                             f"{type(record).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in record and n not in ("made_on", "epochs_run")]
        if missing:
            raise ValueError(f"a measurement record needs {', '.join(missing)}")
        values = {n: record.get(n) for n in names}
        values["made_on"] = check_made_on(values["made_on"])
        for name in ("dataset", "model", "config_key", "rounding", "worker"):
            if not isinstance(values[name], str):
                raise ValueError(f"{name} must be a string, got {values[name]!r}")
        for name in ("seed", "finetune_seed", "epoch"):
            values[name] = check_int(values[name], name, minimum=0)
        values["epochs_run"] = check_optional_int(values["epochs_run"], "epochs_run", minimum=0)
        for name in _ACCURACIES:
            values[name] = check_number(values[name], name, minimum=0.0, maximum=1.0)
        for name in _AMOUNTS:
            values[name] = check_number(values[name], name, minimum=0.0)
        if values["clip_percentile"] is not None:
            values["clip_percentile"] = check_number(values["clip_percentile"],
                                                     "clip_percentile", minimum=0, maximum=100)
        values["options"] = QuantOptions.from_dict(values["options"]).to_dict()
        values["finetune"] = Finetune.from_dict(values["finetune"]).to_dict()
        a = as_assignment(values["assignment"])
        if a.key() != values["config_key"]:
            raise ValueError(f"config_key {values['config_key']!r} is not the key of its "
                             f"assignment ({a.key()})")
        values["assignment"] = a.to_dict()
        return cls(**values)

    def to_record(self) -> dict:
        return asdict(self)


def check_fp32_summary(summary: Any) -> dict:
    """An FP32 training summary (:meth:`sgquant.train.TrainResult.summary`), checked."""
    if not isinstance(summary, Mapping):
        raise ValueError(f"an FP32 summary is a JSON object, got {type(summary).__name__}")
    for name in ("val_acc", "test_acc", "best_test_acc", "train_acc"):
        check_number(summary.get(name), name, minimum=0.0, maximum=1.0)
    for name in ("epoch", "epochs_run"):
        check_int(summary.get(name), name, minimum=0)
    check_number(summary.get("seconds"), "seconds", minimum=0.0)
    check_made_on(summary.get("made_on"))
    return dict(summary)


def check_state(state: Any, model: torch.nn.Module) -> dict:
    """A state dict with exactly ``model``'s entries, shapes and dtypes, every
    floating-point value finite (NaN or Inf weights give chance-level logits, so a
    record holding them is discarded and the model trained again)."""
    if not isinstance(state, Mapping):
        raise ValueError(f"a state dict is needed, got {type(state).__name__}")
    expected = model.state_dict()
    if set(state) != set(expected):
        raise ValueError(f"its entries {sorted(map(str, state))} are not the model's "
                         f"{sorted(expected)}")
    for name, ref in expected.items():
        t = state[name]
        if not isinstance(t, torch.Tensor) or t.shape != ref.shape or t.dtype != ref.dtype:
            raise ValueError(f"entry {name} is not a {ref.dtype} tensor of shape "
                             f"{tuple(ref.shape)}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"entry {name} holds {int(torch.isnan(t).sum()):,} NaN and "
                             f"{int(torch.isinf(t).sum()):,} Inf value(s) of {t.numel():,}")
    return dict(state)


@dataclass
class Setup:
    """A dataset, its degree buckets and a trained FP32 model."""

    dataset: str
    model_name: str
    seed: int
    profile: Profile
    data: Data
    buckets: DegreeBuckets
    model: QuantGNN
    fp32_state: dict
    fp32: dict
    layout: FeatureLayout
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _teacher: Optional[torch.Tensor] = field(default=None, repr=False)

    @property
    def num_layers(self) -> int:
        return self.model.num_layers

    def fp32_model(self) -> QuantGNN:
        """A fresh copy of the trained FP32 model on :attr:`device`, in eval mode (the
        cached :attr:`model` is shared: quantizing a copy leaves it as it is)."""
        net = build_for(self.data, self.model_name, self.profile).to(self.device)
        net.load_state_dict(self.fp32_state)
        return net.eval()

    def teacher(self) -> torch.Tensor:
        """The FP32 model's logits on every node (computed once; for distillation)."""
        if self._teacher is None:
            net = build_for(self.data, self.model_name, self.profile).to(self.device)
            self._teacher = teacher_logits(net, self.data, self.fp32_state)
        return self._teacher

    def fp32_key(self) -> dict:
        return fp32_key(self.dataset, self.model_name, self.seed, self.profile)


def fp32_key(dataset: str, model: str, seed: int, profile: Profile) -> dict:
    """Cache key of an FP32 model: everything that changes its weights. The dataset's
    identity (:func:`sgquant.data.dataset_key`: its name, or a graph file's path and
    content hash), model, seed, architecture, the model's training settings
    (:attr:`~sgquant.models.entry.ModelEntry.training`: learning rate, weight decay,
    dropout), the epoch cap, patience and learning-rate schedule
    (:mod:`sgquant.schedule`) and the package version; the code's semantics are in
    every record's file name (:data:`~sgquant.cache.RESULTS_VERSION`). The machine is
    not part of it (the CPU capability, device and torch version are noted in the record,
    :mod:`sgquant.provenance`): results are reused across machines, on which they agree
    to float tolerance."""
    return {"kind": "fp32", "dataset": dataset_key(dataset), "model": model, "seed": seed,
            "architecture": profile.architecture(model),
            "training": get_model(model).training,
            "epochs": profile.fp32_epochs_for(dataset, model),
            "patience": profile.fp32_patience_for(dataset, model),
            "schedule": profile.fp32_schedule_for(dataset, model).to_dict(),
            "version": __version__}


def check_memory(data: Data, net: QuantGNN, device: "torch.device | str", what: str) -> None:
    """Refuse (:class:`~sgquant.memory.InsufficientMemoryError`, naming ``what``) a run
    whose estimated training memory (:mod:`sgquant.memory.estimate`) exceeds what
    ``device`` (and its host) has; ``data`` and ``net`` may still be on the CPU."""
    edges = int(data.edge_index.size(1))
    check_training_fits(layout_bound(net, data.num_nodes, edges), int(data.y.max()) + 1,
                        edges, net.name, device, what)


def build_for(data: Data, model: str, profile: Profile) -> QuantGNN:
    return build_model(model, data.num_features, int(data.y.max()) + 1,
                       **profile.architecture(model))


def setup_from_state(dataset: str, model: str, seed: int, profile: Profile,
                     data_root: Optional[str], state: Mapping[str, torch.Tensor],
                     summary: Mapping[str, Any], net: Optional[QuantGNN] = None,
                     device: "torch.device | str | None" = "cpu") -> Setup:
    """The :class:`Setup` of given FP32 weights (no training, no cache: what a worker
    builds from the state a driver sends it); ``net``: the model to load them into;
    ``device``: where the data, the model and every fine-tune live."""
    device = resolve_device(device)
    data = load_dataset(dataset, data_root)
    net = build_for(data, model, profile) if net is None else net
    check_memory(data, net, device, f"{dataset} with {model}")
    data, net = data.to(device), net.to(device)
    buckets = degree_buckets(data.edge_index, data.num_nodes, profile.num_buckets)
    state = {k: v.to(device) for k, v in check_state(state, net).items()}
    net.load_state_dict(state)
    net.set_bits(None)
    layout = feature_layout(net, data.edge_index, data.num_nodes, buckets)
    return Setup(dataset, model, seed, profile, data, buckets, net, state,
                 check_fp32_summary(summary), layout, device)


def train_fp32(dataset: str, model: str, seed: int, profile: Profile,
               data_root: Optional[str] = None,
               device: "torch.device | str | None" = "cpu") -> tuple[dict, dict]:
    """Train the FP32 ``model`` of ``dataset`` with ``seed`` (weights initialised under
    the seed, torch on one thread: repeatable sums): its state dict and summary. The one
    training of an FP32 model, in the driver (:func:`prepare`) or a worker
    (:class:`sgquant.runner.TrainJob`)."""
    dev = resolve_device(device)
    data = load_dataset(dataset, data_root)
    torch.manual_seed(seed)
    net = build_for(data, model, profile)  # weights initialised under the seed
    check_memory(data, net, dev, f"{dataset} with {model}")
    data, net = data.to(dev), net.to(dev)
    with single_thread():
        result = train_model(net, data, epochs=profile.fp32_epochs_for(dataset, model),
                             patience=profile.fp32_patience_for(dataset, model), seed=seed,
                             schedule=profile.fp32_schedule_for(dataset, model))
    return result.state_dict, {**result.summary(), "made_on": made_on(dev)}


@lru_cache(maxsize=8)
def _prepare_cached(dataset: str, model: str, seed: int, profile: Profile,
                    results: Optional[str], data_root: Optional[str], device: str,
                    identity: str) -> Setup:
    dev = torch.device(device)
    torch.manual_seed(seed)
    net = build_for(load_dataset(dataset, data_root), model, profile)
    cache = ResultCache(results)
    key = fp32_key(dataset, model, seed, profile)
    state = cache.get_state("fp32", key, validate=lambda s: check_state(s, net))
    summary = cache.get("fp32", key, validate=check_fp32_summary)
    trained = state is None or summary is None
    if trained:  # checks the memory estimate before training; setup_from_state checks it too
        state, summary = train_fp32(dataset, model, seed, profile, data_root, dev)
        cache.put_state("fp32", key, state)
        cache.put("fp32", key, summary)
    _ledger(cache, "fp32", key, summary, (dataset, model, profile), cached=not trained)
    return setup_from_state(dataset, model, seed, profile, data_root, state, summary, net, dev)


def clear_setup_cache() -> None:
    """Forget the FP32 setups :func:`prepare` keeps in this process (they hold the
    dataset's features)."""
    _prepare_cached.cache_clear()


def prepare(dataset: str, model: str, seed: int = 0, profile: "str | Profile" = "default",
            results: Optional[str] = None, data_root: Optional[str] = None,
            device: "torch.device | str | None" = None) -> Setup:
    """Load ``dataset`` and the FP32 ``model`` trained with ``seed`` under ``profile``
    (trained once, then read from the results cache), on ``device``
    (:func:`sgquant.device.resolve_device`: ``None`` means ``$SGQUANT_DEVICE`` or auto)."""
    prof = get_profile(profile)
    name = canonical_name(dataset)
    key = str(model).lower()
    prof.architecture(key)  # validates the model name
    seed = check_int(seed, "seed", minimum=0)
    dev = resolve_device(device)
    return _prepare_cached(name, key, seed, prof,
                           None if results is None else str(results),
                           None if data_root is None else str(data_root), str(dev),
                           dataset_key(name))


def measurement_key(setup: Setup, assignment: BitAssignment,
                    options: Optional[QuantOptions] = None,
                    finetune_seed: Optional[int] = None,
                    finetune: Optional[Finetune] = None) -> dict:
    """Cache key of one fine-tune: everything that changes its record. The FP32 model's
    key (:func:`fp32_key`), the assignment, the degree buckets, every quantizer option,
    every fine-tune setting (:class:`~sgquant.train.Finetune`) and its epochs, the
    fine-tune's optimiser (the model's ``lr`` and ``weight_decay``; its dropout is in the
    FP32 key's ``training``) and the fine-tune seed (default: the FP32 model's). Like
    :func:`fp32_key`, not the machine."""
    opts = options or QuantOptions()
    ft = finetune or Finetune()
    return {"kind": "measure", "fp32": setup.fp32_key(), "assignment": assignment.to_dict(),
            "finetune_epochs": ft.epochs_for(setup.profile.finetune_epochs),
            "num_buckets": setup.buckets.num_buckets, "options": opts.to_dict(),
            "finetune": ft.to_dict(), "optimizer": get_model(setup.model_name).hparams,
            "finetune_seed": setup.seed if finetune_seed is None else finetune_seed}


def memory_record(setup: Setup, assignment: BitAssignment) -> dict:
    """Average bits, MB, saving (ours and the paper's) of ``assignment`` on ``setup``."""
    return feature_memory(setup.layout, assignment).summary()


def _checked(setup: Setup, assignment: "BitAssignment | dict",
             finetune_seed: Optional[int]) -> tuple[BitAssignment, int]:
    a = as_assignment(assignment)
    a.check_shape(setup.num_layers, setup.buckets.num_buckets)
    if finetune_seed is None:
        return a, setup.seed
    return a, check_int(finetune_seed, "finetune_seed", minimum=0)


def finetune_record(setup: Setup, assignment: "BitAssignment | dict", *,
                    options: Optional[QuantOptions] = None,
                    finetune_seed: Optional[int] = None,
                    finetune: Optional[Finetune] = None) -> dict:
    """Fine-tune ``assignment`` from the FP32 weights and score it, without the cache:
    a :class:`Measurement` record (as a dict). ``finetune`` (a
    :class:`~sgquant.train.Finetune`) sets the epochs (default: the profile's),
    distillation and whether epoch 0 may be chosen."""
    assignment, ft_seed = _checked(setup, assignment, finetune_seed)
    opts = options or QuantOptions()
    ft = finetune or Finetune()
    start = time.perf_counter()
    cpu = setup.device.type == "cpu"
    with single_thread() if cpu else contextlib.nullcontext():
        model = build_for(setup.data, setup.model_name, setup.profile).to(setup.device)
        result = finetune_model(model, setup.data, assignment, setup.fp32_state,
                          buckets=setup.buckets if assignment.num_buckets > 1 else None,
                          options=opts, epochs=ft.epochs_for(setup.profile.finetune_epochs),
                          seed=ft_seed, evaluate_before=ft.keep_epoch0, distill=ft.distill,
                          teacher=None if ft.distill is None else setup.teacher(), stop=ft.stop)
    return Measurement(
        dataset=setup.dataset, model=setup.model_name, seed=setup.seed,
        finetune_seed=ft_seed, assignment=assignment.to_dict(),
        config_key=assignment.key(), val_acc=float(result.val_acc),
        test_acc=float(result.test_acc), best_test_acc=float(result.best_test_acc),
        epoch=int(result.epoch), val_acc_before=float(result.history[0]["val"]),
        fp32_val_acc=float(setup.fp32["val_acc"]), fp32_test_acc=float(setup.fp32["test_acc"]),
        fp32_best_test_acc=float(setup.fp32["best_test_acc"]),
        **memory_record(setup, assignment), rounding=opts.rounding,
        clip_percentile=opts.clip_percentile, options=opts.to_dict(), finetune=ft.to_dict(),
        seconds=time.perf_counter() - start, worker=worker_name(),
        epochs_run=int(result.epochs_run), made_on=made_on(setup.device)).to_record()


def read_measurement(cache: ResultCache, key: dict) -> Optional[dict]:
    """The cached :class:`Measurement` record of ``key`` (checked), or ``None``."""
    return cache.get("measure", key, validate=Measurement.from_record)


def measure(setup: Setup, assignment: "BitAssignment | dict", *,
            options: Optional[QuantOptions] = None,
            results: Optional[str] = None, use_cache: bool = True,
            finetune_seed: Optional[int] = None,
            finetune: Optional[Finetune] = None) -> dict:
    """Fine-tune ``assignment`` from the FP32 weights and score it (cached).

    ``finetune_seed`` (default: the FP32 model's seed) seeds the fine-tuning
    alone, so one configuration can be re-measured from the same FP32 weights
    with other dropout draws (a confirmation of a borderline choice).

    Returns a :class:`Measurement` record (as a dict) plus ``cached`` (whether it
    was read from the cache): ``val_acc`` (selects configurations), ``test_acc``
    (at the best-validation epoch), ``best_test_acc`` (the authors' protocol),
    ``val_acc_before`` (quantized FP32 weights, no fine-tuning), memory fields
    and ``seconds`` (wall time of the fine-tuning).
    """
    a, ft_seed = _checked(setup, assignment, finetune_seed)
    cache = ResultCache(results)
    key = measurement_key(setup, a, options, ft_seed, finetune)
    if use_cache:
        hit = read_measurement(cache, key)
        if hit is not None:
            _ledger(cache, "measure", key, hit, _names(setup), cached=True)
            return {**hit, "cached": True}
    record = finetune_record(setup, a, options=options, finetune_seed=ft_seed,
                             finetune=finetune)
    cache.put("measure", key, record)
    _ledger(cache, "measure", key, record, _names(setup), cached=False)
    return {**record, "cached": False}


def _names(setup: Setup) -> "tuple[str, str, Profile]":
    return setup.dataset, setup.model_name, setup.profile


def _ledger(cache: ResultCache, kind: str, key: dict, record: dict,
            names: "tuple[str, str, Profile]", cached: bool) -> None:
    """The ledger line of a record this module read or made, ``names`` its (dataset,
    model, profile) (:func:`sgquant.runner.ledger.note_record`; a runner's jobs are
    noted by the runner)."""
    from .runner.ledger import note_record

    dataset, model, profile = names
    note_record(cache.root, kind=kind, key=key, record=record, purpose="", dataset=dataset,
                model=model, profile=profile.name, cached=cached)
