"""What every chapter shares: its parameters, the measurement pool, and the
:class:`Chapter` base class a notebook drives.

A chapter's parameters are those of its notebook's ``parameters`` cell
(``dataset``, ``model``, ``profile``, ``seeds`` and the chapter's own, such as
``tolerance`` or ``bits``); :func:`check_parameters` validates them all, for
``sgquant run`` before anything executes and for the chapter itself.
Measurements run through one :class:`~sgquant.runner.Runner` per chapter
(:func:`measurement_runner`): named jobs on an executor, the cache in the driver.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from typing import (TYPE_CHECKING, Any, ClassVar, Iterable, Iterator, Optional,
                    Sequence)

import numpy as np
import pandas as pd

from ..checks import (check_bool, check_int, check_int_list, check_number,
                      check_optional_int)
from ..data import canonical_name, is_available, load_dataset
from ..models import MODELS
from ..profiles import Profile, get_profile
from ..quantize import check_bits
from ..runner import FinetuneJob, Job, Runner, accounting, running
from ..seeds import evaluation_finetune_seed, get_plan
from ..settings import RunSettings

if TYPE_CHECKING:
    from ..assignment import BitAssignment
    from ..variants import Variant

__all__ = [
    "NOT_AVAILABLE", "NOT_IN_PROFILE", "NO_FILES",
    "resolve_datasets", "resolve_models", "resolve_seeds", "check_parameters",
    "dataset_available", "require_dataset", "mean_std", "percent", "run_info",
    "default_workers", "chapter_settings", "measurement_runner", "search_settings", "pretrain",
    "final_finetune_jobs", "run_labelled",
    "markdown", "BaseChapter", "SearchChapter", "SingleDatasetChapter",
]

NOT_AVAILABLE = "not run: data unavailable"
NOT_IN_PROFILE = "not run: not in this profile"
NO_FILES = "files unavailable: paper's numbers only"


# ------------------------------------------------------------------ parameters
def _is_all(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() == "all")


def resolve_datasets(dataset: "str | Sequence[str] | None", profile: "str | Profile") -> list[str]:
    """``"all"`` / ``None``: the profile's datasets; else canonical names of a
    name, a comma-separated string or a list (unknown names raise ``ValueError``)."""
    if _is_all(dataset):
        return list(get_profile(profile).datasets)
    items = dataset.split(",") if isinstance(dataset, str) else list(dataset)
    out = [canonical_name(d.strip() if isinstance(d, str) else d) for d in items]
    return list(dict.fromkeys(out))


def resolve_models(model: "str | Sequence[str] | None", profile: "str | Profile") -> list[str]:
    """``"all"`` / ``None``: the profile's models (the paper's); else the named ones,
    any of :data:`sgquant.models.MODELS`."""
    if _is_all(model):
        return list(get_profile(profile).models)
    items = model.split(",") if isinstance(model, str) else list(model)
    out = []
    for m in items:
        key = str(m).strip().lower()
        if key not in MODELS:
            raise ValueError(f"unknown model {m!r}; choose one of {', '.join(MODELS)} or 'all'")
        out.append(key)
    return list(dict.fromkeys(out))


def resolve_seeds(seeds: "int | Sequence[int] | None", profile: "str | Profile") -> list[int]:
    """``None``: the profile's seeds; an int ``n``: seeds ``0..n-1``; a list: those
    seeds (non-negative, duplicates dropped)."""
    if seeds is None:
        return get_profile(profile).seed_list()
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        return list(range(check_int(seeds, "seeds (a number of seeds or a list of seeds)",
                                    minimum=1)))
    return list(dict.fromkeys(check_int_list(seeds, "seeds", minimum=0)))


def _check_bits_list(values: Any, name: str) -> list[int]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable) or not values:
        raise ValueError(f"{name} must be a non-empty list, e.g. [1, 2, 4], got {values!r}")
    return [check_bits(v) for v in values]


def _check_device(value: Any) -> Any:
    from ..device import check_device_spec, resolve_device

    return resolve_device(check_device_spec(value))


def _check_scheduler(value: Any) -> Any:
    from ..runner.scheduler import check_scheduler

    return check_scheduler(value)


def _check_variants(values: Any) -> list[str]:
    from ..variants import get_variant

    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable) or not values:
        raise ValueError(f"variants must be a non-empty list, e.g. ['sgquant', 'sgquant+'], "
                         f"got {values!r}")
    return [get_variant(v).name for v in values]


#: Checks of the chapter parameters other than dataset, model, profile and seeds.
_CHECKS = {
    "workers": lambda v: check_optional_int(v, "workers", minimum=0),
    "tolerance": lambda v: check_number(v, "tolerance", minimum=0),
    "search_seed": lambda v: check_int(v, "search_seed", minimum=0),
    "search_seeds": lambda v: check_optional_int(v, "search_seeds", minimum=1),
    "ablation": lambda v: check_bool(v, "ablation"),
    "device": lambda v: None if v is None else _check_device(v),
    "scheduler": lambda v: None if v is None else _check_scheduler(v),
    "variants": lambda v: _check_variants(v),
    "budget": lambda v: check_optional_int(v, "budget", minimum=1),
    "samples": lambda v: check_optional_int(v, "samples", minimum=1),
    "bits": lambda v: _check_bits_list(v, "bits"),
    "chunk_sizes": lambda v: check_int_list(v, "chunk_sizes", minimum=1),
    "peak_bits": check_bits,
    "plan": get_plan,
}


def check_parameters(*, dataset: Any = None, model: Any = None, profile: Any = "default",
                     seeds: Any = None, **others: Any) -> dict:
    """Validate a chapter's parameters (raises ``ValueError`` naming the bad value).

    Returns the profile's name and the resolved ``datasets``, ``models`` and
    ``seeds``; the other known parameters (``workers``, ``tolerance``,
    ``search_seed``, ``budget``, ``samples``, ``bits``, ``chunk_sizes``,
    ``peak_bits``, ``plan``) are checked, unknown ones ignored."""
    prof = get_profile(profile)
    checked = {"profile": prof.name, "datasets": resolve_datasets(dataset, prof),
               "models": resolve_models(model, prof), "seeds": resolve_seeds(seeds, prof)}
    for name, value in others.items():
        if name in _CHECKS:
            _CHECKS[name](value)
    return checked


def dataset_available(name: str, data_root: Optional[str] = None) -> bool:
    """Whether ``name``'s files are here or can be fetched (a networked machine
    downloads them now; offline the answer is immediate)."""
    try:
        require_dataset(name, data_root)
    except ValueError:  # sgquant.data.DatasetUnavailableError is a ValueError
        return False
    return True


def require_dataset(name: str, data_root: Optional[str] = None) -> None:
    """Raise :class:`sgquant.data.DatasetUnavailableError` (one line naming the
    folder and the files to put there) unless ``name`` can be loaded."""
    if not is_available(name, data_root):
        load_dataset(name, data_root)  # downloads on a networked machine, or raises


# ------------------------------------------------------------------ numbers
def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; NaN for one value)."""
    arr = np.asarray([v for v in values if v is not None and not pd.isna(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def percent(x: Any) -> float:
    """A fraction as a percentage (NaN for a missing value)."""
    return math.nan if x is None or pd.isna(x) else 100.0 * float(x)


def run_info(profile: "str | Profile", **parameters: Any) -> pd.DataFrame:
    """The profile's budgets and a chapter's parameters, as a two-column table."""
    prof = get_profile(profile)
    rows = [{"setting": k, "value": str(v)} for k, v in parameters.items()]
    rows += [{"setting": f"profile.{k}", "value": str(v)} for k, v in prof.to_dict().items()]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ measuring
def default_workers(profile: "str | Profile", workers: Optional[int] = None) -> int:
    """Measurement processes: ``workers`` if given; else 0 (in this process) for the
    ``quick`` profile, whose tiny budgets cost less than starting a process pool, and
    every core otherwise."""
    if workers is not None:
        return check_optional_int(workers, "workers", minimum=0)
    return 0 if get_profile(profile).name == "quick" else (os.cpu_count() or 1)


def chapter_settings(profile: "str | Profile | RunSettings",
                     workers: Optional[int] = None) -> RunSettings:
    """The run settings of a chapter function: ``profile`` itself when it is a
    :class:`~sgquant.settings.RunSettings`, else the current ones
    (:func:`sgquant.settings.get_config`) with that profile; without a Dask scheduler,
    the measurement processes are :func:`default_workers`."""
    from ..settings import as_run_settings

    base = as_run_settings(profile)
    chosen = base.workers if workers is None else workers
    if base.scheduler is None:
        chosen = default_workers(base.profile, chosen)
    return dataclasses.replace(base, workers=chosen)


@contextlib.contextmanager
def measurement_runner(profile: "str | Profile | RunSettings",
                       workers: Optional[int] = None, asked_by: str = "chapter"
                       ) -> Iterator[Runner]:
    """One :class:`~sgquant.runner.Runner` for all the measurements of a chapter, on the
    executor of :func:`chapter_settings` (a process pool, in-process, or the run's Dask
    scheduler): the driver reads and writes the cache, the workers only compute. Its
    jobs (and its searches') are in the ledger as asked by ``asked_by``
    (:func:`sgquant.runner.accounting`; also their default purpose)."""
    with accounting(asked_by), running(chapter_settings(profile, workers)) as runner:
        yield runner


def search_settings(runner: Runner) -> dict[str, Any]:
    """What a chapter's search takes from its runner: its run settings (profile,
    results and data folders, device) and its executor, so the search measures through
    the same cache."""
    return {"settings": runner.settings, "executor": runner.executor}


def pretrain(runner: Runner, items: Iterable[tuple[str, str, int]]) -> dict[tuple, dict]:
    """Train the FP32 models of ``(dataset, model, seed)`` items in parallel on the
    runner's executor (:class:`~sgquant.runner.TrainJob`; the driver writes them to the
    cache) before any search or fine-tuning needs them; their summaries by item."""
    keys = list(dict.fromkeys(items))
    return dict(zip(keys, runner.run([runner.train_job(d, m, s) for d, m, s in keys])))


def final_finetune_jobs(runner: Runner, dataset: str, model: str, seeds: Iterable[int],
                        assignment: "BitAssignment", variant: "Variant") -> list[FinetuneJob]:
    """Jobs fine-tuning ``assignment`` with ``variant``'s quantizer and final fine-tune
    from the FP32 model of every seed in ``seeds``, each with that model's evaluation
    stream (:func:`sgquant.seeds.evaluation_finetune_seed`)."""
    final = variant.final_finetune(runner.settings.profile)
    return [runner.finetune_job(dataset, model, int(e), assignment, options=variant.options,
                                finetune=final, finetune_seed=evaluation_finetune_seed(int(e))
                                ).for_purpose("final") for e in seeds]


def run_labelled(runner: Runner, labels: Sequence[dict], jobs: Sequence[Job]) -> list[dict]:
    """``runner.run(jobs)``, each record merged into its label (``{**label, **record}``),
    in order (a failed job raises)."""
    return [{**label, **rec} for label, rec in zip(labels, runner.run(jobs), strict=True)]


# ------------------------------------------------------------------ chapters
def markdown(text: str) -> Any:
    """``text`` as a notebook's Markdown output."""
    from IPython.display import Markdown

    return Markdown(text)


@dataclasses.dataclass
class BaseChapter:
    """A chapter with its notebook's parameters: validated when made (a
    ``ValueError`` names the bad one), then each method shows one table, figure
    or the reading (computations are cached on the object).

    ``single_dataset`` chapters take one dataset and one model and refuse a
    dataset whose data is unavailable with its one-line
    :class:`~sgquant.data.DatasetUnavailableError`; the others list it as
    :data:`NOT_AVAILABLE`. ``unused`` parameters are not listed by
    :meth:`configuration`. The run's settings (profile, ``device``, ``scheduler``,
    ``workers``, results and data folders; ``None``: ``$SGQUANT_DEVICE``,
    ``$SGQUANT_SCHEDULER`` ...) are resolved once, here, into :attr:`run_settings` (a
    :class:`~sgquant.settings.RunSettings`) that the chapter's runs take as one argument;
    device and scheduler are also exported to the environment
    (:func:`sgquant.settings.use_run_settings`), the way the run's child processes
    (measurement workers) see them. The run table shows the device that ran.
    """

    dataset: Any = "all"
    model: Any = "all"
    profile: str = "default"
    seeds: Any = None
    device: Optional[str] = None
    scheduler: Optional[str] = None

    single_dataset: ClassVar[bool] = False
    unused: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        from .. import plots
        from ..settings import use_run_settings

        params = self.parameters()
        checked = check_parameters(**params)
        self.run_settings = RunSettings.resolve(checked["profile"], self.device,
                                                self.scheduler, params.get("workers"))
        self.settings = use_run_settings(self.run_settings.device, self.run_settings.scheduler)
        self.prof = self.run_settings.profile
        self.datasets, self.models = checked["datasets"], checked["models"]
        self.seed_list = checked["seeds"]
        if self.single_dataset:
            if len(self.datasets) != 1:
                raise ValueError(f"this chapter takes one dataset, got {self.dataset!r}")
            if len(self.models) != 1:
                raise ValueError(f"this chapter takes one model ({', '.join(MODELS)}), "
                                 f"got {self.model!r}")
            require_dataset(self.datasets[0])
        plots.setup_style()

    def parameters(self) -> dict[str, Any]:
        """The notebook parameters this chapter was made with."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def dataset_name(self) -> str:
        """The canonical name of a single-dataset chapter's dataset."""
        return self.datasets[0]

    @property
    def model_name(self) -> str:
        """The model of a single-dataset chapter (``gcn``, ``agnn`` or ``gat``)."""
        return self.models[0]

    def configuration(self) -> Any:
        """The run's parameters and the profile's budgets, as a table."""
        from .. import plots

        shown = {k: v for k, v in self.parameters().items()
                 if k not in ("profile", "workers", "device", "scheduler") + self.unused}
        return plots.table(run_info(self.profile, **shown, **self.settings),
                           caption="Run configuration (parameters and profile budgets)")


@dataclasses.dataclass
class SearchChapter(BaseChapter):
    """A chapter built on searches: ``tolerance`` (validation points a choice may
    lose), the first search seed and how many (``None``: the profile's
    ``search_seeds``), and the measurement processes (``None``: every core)."""

    tolerance: float = 0.5
    search_seed: int = 0
    search_seeds: Optional[int] = None
    workers: Optional[int] = None


@dataclasses.dataclass
class SingleDatasetChapter(BaseChapter):
    """A chapter on one (dataset, model), Cora and GCN unless told otherwise."""

    dataset: Any = "Cora"
    model: Any = "gcn"

    single_dataset = True
