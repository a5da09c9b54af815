"""The book's chapters: one module per notebook, each holding its chapter's runs,
tables, figures and reading, and a ``Chapter`` class the notebook drives.

    from sgquant import chapters as C
    chapter = C.overall.Chapter(dataset="Cora", model="gcn", profile="quick")
    chapter.accuracy_table()

============================  ===================================================
notebook                      module
============================  ===================================================
``01_memory_breakdown``       :mod:`~sgquant.chapters.memory_breakdown` (Fig. 1)
``02_setup``                  :mod:`~sgquant.chapters.setup` (Tables I, II)
``03_overall``                :mod:`~sgquant.chapters.overall` (Table III) with
                              :mod:`~sgquant.chapters.table3`,
                              :mod:`~sgquant.chapters.table3_display`,
                              :mod:`~sgquant.chapters.replication` and
                              :mod:`~sgquant.chapters.at_paper`
``04_granularity``            :mod:`~sgquant.chapters.granularity` (Figs. 4, 5, 7)
``05_autobit``                :mod:`~sgquant.chapters.autobit` (Fig. 8)
``06_rematching``             :mod:`~sgquant.chapters.rematching`
``07_below_one_bit``          :mod:`~sgquant.chapters.below_one_bit`
``08_peers``                  :mod:`~sgquant.chapters.peers` (peers, ablation)
============================  ===================================================

:mod:`~sgquant.chapters.common` holds what they share (parameters, the
measurement pool, the ``BaseChapter`` class); the paper's published numbers are
in :mod:`sgquant.paper`. Accuracies are in percent, memory in MB (10^6 bytes);
no number in a reading is typed by hand. Submodules are imported on first use,
so a measurement worker that needs only :mod:`~sgquant.chapters.common` does not
load the plotting stack.
"""
from __future__ import annotations

import importlib
import warnings
from types import ModuleType

# The chapters run as notebooks without ipywidgets and show progress as text; PyG
# imports ``tqdm.auto``, which would print this warning at the top of every chapter.
warnings.filterwarnings("ignore", message="IProgress not found")

#: Chapter notebook (``notebooks/NN_name.ipynb`` stem) -> its module.
CHAPTERS = {"01_memory_breakdown": "memory_breakdown", "02_setup": "setup",
            "03_overall": "overall", "04_granularity": "granularity", "05_autobit": "autobit",
            "06_rematching": "rematching", "07_below_one_bit": "below_one_bit",
            "08_peers": "peers"}
MODULES = ("common", *CHAPTERS.values(), "table3", "table3_display", "replication", "at_paper")

__all__ = ["CHAPTERS", "MODULES", *MODULES]


def __getattr__(name: str) -> ModuleType:
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
