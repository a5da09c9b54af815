"""Chapter 2 (Tables I and II): the models and datasets we train, beside the paper's, and
the machines that made the records of the results folder (:mod:`sgquant.provenance`)."""
from __future__ import annotations

import dataclasses
from functools import cached_property
from typing import Any, Optional, Sequence

import pandas as pd

from ..data import DATASETS, available_datasets, dataset_statistics, load_dataset
from ..models import MODELS, build_model, get_model
from ..paper import paper_sizes, paper_table
from ..plots import MODEL_LABELS, format_architectures, format_datasets, table
from ..profiles import Profile, get_profile
from ..provenance import record_machines
from .common import NO_FILES, BaseChapter, markdown, resolve_datasets

__all__ = ["architecture_table", "dataset_table", "reading_setup", "MACHINE_COLUMNS",
           "Chapter"]

FROM_DATA = "computed from data"
#: Cora's feature width and classes: the graph on which weights are counted.
CORA_FEATURES, CORA_CLASSES = 1433, 7
#: The columns of the machines table (:func:`sgquant.provenance.record_machines`).
MACHINE_COLUMNS = {"cpu_capability": "CPU capability", "device": "device",
                   "torch": "torch", "fp32_models": "FP32 models",
                   "fine_tunes": "fine-tunes", "records": "records"}


def architecture_table(profile: "str | Profile" = "default",
                       models: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Table I: the paper's architectures beside the ones this profile trains (``models``:
    these instead of the profile's), with their quantization points (``emb`` per layer,
    ``att`` per layer with edges); a model the paper does not have (``in_paper`` false)
    has no paper columns."""
    prof = get_profile(profile)
    paper = paper_table("table1_architectures").set_index("model")
    rows = []
    for m in prof.models if models is None else models:
        entry, arch = get_model(m), prof.architecture(m)
        net = build_model(m, CORA_FEATURES, CORA_CLASSES, **arch)
        specs = net.layer_specs
        ours = {"hidden": arch.get("hidden"), "layers": net.num_layers,
                **{k: arch.get(k) for k in entry.options}}
        theirs = ({"hidden": int(paper.loc[m, "hidden"]), "layers": int(paper.loc[m, "layers"]),
                   **entry.options} if m in paper.index else {})
        rows.append({
            "model": m, "paper_hidden": theirs.get("hidden"),
            "paper_layers": theirs.get("layers"), "paper_heads": theirs.get("heads"),
            "hidden": ours["hidden"], "layers": ours["layers"], "heads": ours.get("heads"),
            "quantized_fields": sum(1 + (s.heads > 0) for s in specs),
            "weights_on_cora": sum(p.numel() for p in net.parameters()),
            "same_as_paper": bool(theirs) and ours == theirs, "in_paper": bool(theirs),
        })
    return pd.DataFrame(rows)


def dataset_table(datasets: "str | Sequence[str] | None" = None,
                  data_root: Optional[str] = None) -> pd.DataFrame:
    """Table II: statistics computed from the data (:func:`sgquant.data.dataset_statistics`)
    beside the paper's, with differences (ours - paper). Datasets whose files are
    absent keep the paper's numbers and ``status`` says so."""
    names = list(DATASETS) if datasets is None or datasets == "all" else \
        resolve_datasets(datasets, "paper")
    present = set(available_datasets(data_root))
    paper = paper_sizes()
    rows = []
    for name in names:
        p = paper[name]
        row: dict[str, Any] = {"dataset": name, "paper_nodes": p["nodes"],
                               "paper_edges": p["edges"], "paper_features": p["features"],
                               "paper_classes": p["classes"]}
        if name in present:
            s = dataset_statistics(load_dataset(name, data_root))
            row.update(status=FROM_DATA, nodes=s["nodes"], edges=s["edges"],
                       undirected_edges=s["undirected_edges"], features=s["features"],
                       classes=s["classes"], train=s["train"], val=s["val"], test=s["test"],
                       isolated_nodes=s["isolated_nodes"], split=s.get("split"))
            row.update(nodes_diff=s["nodes"] - p["nodes"], edges_diff=s["edges"] - p["edges"],
                       undirected_diff=s["undirected_edges"] - p["edges"],
                       features_diff=s["features"] - p["features"],
                       classes_diff=s["classes"] - p["classes"])
        else:
            row.update(status=NO_FILES)
        rows.append(row)
    cols = ["dataset", "status", "nodes", "paper_nodes", "nodes_diff", "edges", "paper_edges",
            "edges_diff", "undirected_edges", "undirected_diff", "features", "paper_features",
            "features_diff",
            "classes", "paper_classes", "classes_diff", "train", "val", "test", "isolated_nodes",
            "split"]
    df = pd.DataFrame(rows).reindex(columns=cols)
    for col in cols[2:-1]:
        df[col] = df[col].astype("Int64")
    return df


def reading_setup(arch: pd.DataFrame, stats: pd.DataFrame) -> str:
    """Closing paragraph of chapter 2."""
    same = arch[arch["same_as_paper"]]["model"].map(MODEL_LABELS).tolist()
    diff = arch[~arch["same_as_paper"] & arch["in_paper"]]
    extra = arch[~arch["in_paper"]]
    parts = []
    if same:
        parts.append(f"{', '.join(same)} use the paper's Table I architecture")
    for r in diff.itertuples():
        heads = f", {int(r.heads)} heads" if r.heads and not pd.isna(r.heads) else ""
        pheads = (f", {int(r.paper_heads)} heads"
                  if r.paper_heads and not pd.isna(r.paper_heads) else "")
        parts.append(f"{MODEL_LABELS[r.model]} uses hidden {r.hidden}{heads} against the "
                     f"paper's {r.paper_hidden}{pheads} (the `paper` profile uses the paper's)")
    if len(extra):
        ours = ", ".join(f"{MODEL_LABELS[r.model]} hidden {r.hidden}, {r.layers} layers"
                         for r in extra.itertuples())
        parts.append(f"{' and '.join(extra['model'].map(MODEL_LABELS))} "
                     f"{'is' if len(extra) == 1 else 'are'} not in the paper (ours: {ours})")
    text = "; ".join(parts) + ". "
    got = stats[stats["status"] == FROM_DATA]
    exact = got[(got["nodes_diff"] == 0) & (got["features_diff"] == 0) & (got["classes_diff"] == 0)]
    if len(got):
        text += (f"Nodes, feature width and classes match the paper for "
                 f"{len(exact)} of {len(got)} datasets loaded here"
                 + (f" ({', '.join(exact['dataset'])})" if len(exact) else "") + ". ")
        edge_bits = []
        for r in got.itertuples():
            if r.edges_diff == 0 or r.undirected_diff == 0:
                continue
            closer = "undirected" if abs(r.undirected_diff) < abs(r.edges_diff) else "directed"
            edge_bits.append(f"{r.dataset}: directed {int(r.edges_diff):+d}, undirected "
                             f"{int(r.undirected_diff):+d}, closest to our {closer} count")
        if edge_bits:
            text += ("Edge counts differ (ours minus paper; " + "; ".join(edge_bits) +
                     "). PyG stores each undirected edge in both directions; the paper does "
                     "not say how it counts edges, nor which version of each dataset it used. ")
    missing = stats[stats["status"] != FROM_DATA]["dataset"].tolist()
    if missing:
        text += (f"{', '.join(missing)}: files not available here, so only the paper's "
                 "numbers are shown.")
    return text


@dataclasses.dataclass
class Chapter(BaseChapter):
    """Chapter 2 (``notebooks/02_setup.ipynb``)."""

    unused = ("seeds",)

    @cached_property
    def architectures(self) -> pd.DataFrame:
        """:func:`architecture_table` of the profile, the chosen models only."""
        return architecture_table(self.profile, [m for m in MODELS if m in self.models])

    @cached_property
    def statistics(self) -> pd.DataFrame:
        """:func:`dataset_table` of the chosen datasets."""
        return dataset_table(self.dataset)

    def table_i(self) -> Any:
        return table(format_architectures(self.architectures),
                     caption=f"Table I: the paper's architectures and those of profile "
                             f"'{self.profile}' (weights counted on Cora)")

    def table_ii(self) -> Any:
        return table(format_datasets(self.statistics),
                     caption="Table II: dataset statistics computed from the data beside the "
                             "paper's (diff = ours - paper; unavailable*: the files are not "
                             "here, only the paper's numbers are shown)")

    def reading(self) -> Any:
        return markdown(reading_setup(self.architectures, self.statistics))

    def machines(self) -> Any:
        """The machines the records of the results folder were made on when this chapter
        ran (:func:`~sgquant.provenance.record_machines`)."""
        folder = self.run_settings.results
        machines = record_machines(folder)
        if machines.empty:
            return markdown(f"The results folder {folder.name}/ holds no FP32 model or "
                            "fine-tune record yet.")
        return table(machines, columns=MACHINE_COLUMNS,
                     caption=f"Records in the results folder {folder.name}/ were made on "
                             "(CPU capability, device, torch; not part of any cache key; "
                             "unknown: a record older than these notes)")
