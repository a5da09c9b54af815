"""The datasets sgquant loads by name: aliases, folders, raw files, reader, own split.

================  ==================  =======================  =======================
name              folder (raw files)  reader                   split by default
================  ==================  =======================  =======================
Cora              ``Cora/raw``        Planetoid (pickles)      Planetoid public split
CiteSeer          ``CiteSeer/raw``    Planetoid (pickles)      Planetoid public split
PubMed            ``PubMed/raw``      Planetoid (pickles)      Planetoid public split
Amazon-Computers  ``Computers/raw``   Amazon (npz)             random 60/30/10, seed 0
Reddit            ``Reddit/raw``      Reddit (npz)             Reddit's own split
Amazon-Photo      ``Photo/raw``       Amazon (npz)             random 60/30/10, seed 0
Coauthor-CS       ``CS/raw``          Coauthor (npz)           random 60/30/10, seed 0
Coauthor-Physics  ``Physics/raw``     Coauthor (npz)           random 60/30/10, seed 0
WikiCS            ``WikiCS/raw``      WikiCS (json)            WikiCS split 0 of 20
Flickr            ``Flickr/raw``      Flickr (npz, npy, json)  Flickr's own split
ogbn-arxiv        ``ogbn_arxiv``      ogb (csv.gz)             OGB time split
================  ==================  =======================  =======================

The first five are the paper's (:data:`DATASETS`). Raw files read by a pickle reader
(Planetoid) all have a known checksum (``raw_checksums.csv``); the others are read
only by non-pickle readers (``numpy.load`` without pickles, JSON, CSV).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .paths import data_root

__all__ = ["DATASETS", "REGISTERED", "DatasetSpec", "lookup", "spec_for", "raw_files", "raw_dir",
           "accepted_names"]

_PLANETOID = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


@dataclass(frozen=True)
class DatasetSpec:
    """How one registered dataset is stored and read.

    ``folder`` (relative to the data root) holds the raw ``files``; ``processed`` is
    the folder PyG writes. ``loader``/``loader_name`` pick the reader class and the
    name passed to it. ``own_split`` describes the masks the dataset ships (None:
    none, the seeded random split is the default). ``pickle_reader``: the reader
    unpickles the raw files, so each must match a known checksum.
    """

    name: str
    aliases: tuple[str, ...]
    folder: str
    processed: str
    files: tuple[str, ...]
    loader: str
    loader_name: str
    own_split: Optional[str]
    pickle_reader: bool = False


def _planetoid(name: str) -> DatasetSpec:
    return DatasetSpec(name, (), f"{name}/raw", f"{name}/processed",
                       tuple(f"ind.{name.lower()}.{s}" for s in _PLANETOID), "planetoid", name,
                       "Planetoid public split", pickle_reader=True)


def _npz(name: str, aliases: tuple[str, ...], loader: str, pyg: str, file: str) -> DatasetSpec:
    return DatasetSpec(name, aliases, f"{pyg}/raw", f"{pyg}/processed", (file,), loader, pyg, None)


_SPECS: tuple[DatasetSpec, ...] = (
    _planetoid("Cora"),
    _planetoid("CiteSeer"),
    _planetoid("PubMed"),
    _npz("Amazon-Computers", ("computers", "amazoncomputers"), "amazon", "Computers",
         "amazon_electronics_computers.npz"),
    DatasetSpec("Reddit", (), "Reddit/raw", "Reddit/processed",
                ("reddit_data.npz", "reddit_graph.npz"), "reddit", "Reddit",
                "Reddit's own split (GraphSAGE)"),
    _npz("Amazon-Photo", ("photo", "amazonphoto"), "amazon", "Photo",
         "amazon_electronics_photo.npz"),
    _npz("Coauthor-CS", ("cs", "coauthorcs"), "coauthor", "CS", "ms_academic_cs.npz"),
    _npz("Coauthor-Physics", ("physics", "coauthorphysics"), "coauthor", "Physics",
         "ms_academic_phy.npz"),
    DatasetSpec("WikiCS", ("wiki-cs",), "WikiCS/raw", "WikiCS/processed", ("data.json",),
                "wikics", "WikiCS", "WikiCS split 0 of 20"),
    DatasetSpec("Flickr", (), "Flickr/raw", "Flickr/processed",
                ("adj_full.npz", "feats.npy", "class_map.json", "role.json"), "flickr", "Flickr",
                "Flickr's own split (GraphSAINT)"),
    DatasetSpec("ogbn-arxiv", ("arxiv",), "ogbn_arxiv", "ogbn_arxiv/processed",
                tuple(f"raw/{f}.csv.gz" for f in ("edge", "node-feat", "node-label", "node_year",
                                                  "num-edge-list", "num-node-list"))
                + tuple(f"split/time/{s}.csv.gz" for s in ("train", "valid", "test"))
                + ("RELEASE_v1.txt",),
                "ogb", "ogbn-arxiv", "OGB time split"),
)

#: The paper's five datasets.
DATASETS: tuple[str, ...] = ("Cora", "CiteSeer", "PubMed", "Amazon-Computers", "Reddit")
#: Every dataset :func:`~sgquant.data.load_dataset` knows by name.
REGISTERED: tuple[str, ...] = tuple(s.name for s in _SPECS)

_BY_NAME = {s.name: s for s in _SPECS}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


_ALIASES: dict[str, str] = {}
for _s in _SPECS:
    for _alias in (_s.name, *_s.aliases):
        _ALIASES[_key(_alias)] = _s.name


def lookup(name: object) -> Optional[DatasetSpec]:
    """The spec of a registered dataset named ``name`` (case-insensitive alias, ``_``
    or space for ``-``), or None."""
    if not isinstance(name, str):
        return None
    canon = _ALIASES.get(_key(name))
    return None if canon is None else _BY_NAME[canon]


def accepted_names() -> str:
    """The accepted names, for error messages."""
    aliases = sorted(a for a, c in _ALIASES.items() if a != _key(c))
    return (f"{', '.join(REGISTERED)} (case-insensitive; aliases {', '.join(aliases)}, "
            f"amazon_computers)")


def spec_for(name: str) -> DatasetSpec:
    """The spec of a registered dataset; :class:`ValueError` listing the accepted names
    otherwise."""
    spec = lookup(name)
    if spec is None:
        raise ValueError(f"Unknown dataset {name!r}; allowed: {accepted_names()}")
    return spec


def raw_files(name: str) -> list[str]:
    """The raw files (paths relative to :func:`raw_dir`) that ``name`` needs."""
    return list(spec_for(name).files)


def raw_dir(name: str, root: "str | os.PathLike[str] | None" = None) -> Path:
    """The folder that holds ``name``'s raw files, e.g. ``<root>/Cora/raw``."""
    return data_root(root) / spec_for(name).folder
