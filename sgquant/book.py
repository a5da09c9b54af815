"""``sgquant book``: execute every chapter with papermill and build the HTML book.

    sgquant book [--profile quick|default|full|paper] [--only CHAPTER] [--out DIR]

``sgquant book`` executes the chapter templates ``notebooks/NN_name.ipynb`` in
order with papermill (:mod:`sgquant.chapter_run`, passing ``profile``), writes the
executed chapters to ``book/chapters/NN_name.ipynb`` and builds the HTML book with
Jupyter Book 1.x (``_config.yml``, ``_toc.yml``; Jupyter Book does not execute
anything). Results are cached (``$SGQUANT_RESULTS``), so a rerun only builds. With
``--out DIR`` the book's sources are copied to ``DIR`` and everything generated
(executed chapters, ``DIR/_build/html``) goes there, leaving the checkout
untouched; ``DIR`` must be new, empty or an earlier ``--out`` build (marked by
:data:`BOOK_MARKER`), so that no file sgquant did not write is overwritten.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .cache import writable_folder
from .checks import check_int, check_optional_int
from .chapter_run import (DEFAULT_CELL_TIMEOUT, ChapterInterrupted, PaperNotebookError,
                        add_cell_timeout_argument, add_run_cli, chapters, execute_chapter,
                        exit_code, kernel_name, preflight, repo_root, select_chapter)
from .parameters import notebook_parameters, parse_value, validate_parameters

__all__ = [
    "CHAPTER_DIR", "BOOK_FILES", "BOOK_MARKER", "PaperNotebookError", "ChapterInterrupted",
    "BookResult", "repo_root", "chapters", "select_chapter", "notebook_parameters",
    "parse_value", "validate_parameters", "kernel_name", "execute_chapter",
    "check_book_folder", "stage_sources", "build_html", "external_references",
    "write_build_info", "build_book", "add_cli",
]

#: Where executed chapters go, relative to the book's source root.
CHAPTER_DIR = Path("book") / "chapters"
#: Files and folders of the book besides the chapters and its pages ``book/*.md``
#: (copied by ``--out``).
BOOK_FILES = ("_config.yml", "_toc.yml", "CITATION.cff", "book/_static", "book/references.bib")
#: The file that marks a folder as written by ``sgquant book --out``.
BOOK_MARKER = ".sgquant-book"


@dataclass
class BookResult:
    """What ``build_book`` did: executed chapters with their seconds, the HTML folder."""

    profile: str
    chapters: dict[str, float] = field(default_factory=dict)
    html: Optional[Path] = None
    build_seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"profile {self.profile}:"]
        lines += [f"  {name:24s} {sec:8.1f} s" for name, sec in self.chapters.items()]
        if self.html is not None:
            lines.append(f"  {'HTML build':24s} {self.build_seconds:8.1f} s -> "
                         f"{self.html / 'index.html'}")
        total = sum(self.chapters.values()) + self.build_seconds
        lines.append(f"  {'total':24s} {total:8.1f} s")
        return "\n".join(lines)


def check_book_folder(dest: "str | os.PathLike") -> Path:
    """Refuse (``ValueError`` naming it) a ``--out`` folder that is a file, cannot
    be written, or holds files but is not an earlier ``sgquant book --out`` build
    (no :data:`BOOK_MARKER`): the build would overwrite files sgquant did not write."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"--out {dest} is a file, not a folder")
    if dest.is_dir() and not (dest / BOOK_MARKER).is_file() and any(dest.iterdir()):
        raise ValueError(f"--out {dest} is not empty and is not an earlier sgquant book build "
                         f"(no {BOOK_MARKER} file): refusing to overwrite its files; give a new "
                         "or empty folder")
    return writable_folder(dest, "the book (--out)")


def stage_sources(root: Path, dest: Path) -> None:
    """Copy the book's sources (:data:`BOOK_FILES` and every page ``book/*.md``)
    from ``root`` to ``dest`` (checked by :func:`check_book_folder`, then marked
    with :data:`BOOK_MARKER`)."""
    dest = check_book_folder(dest)
    (dest / BOOK_MARKER).write_text(
        "Written by `sgquant book --out`: a later build may overwrite the files here.\n")
    pages = sorted(p.relative_to(root).as_posix() for p in (root / "book").glob("*.md"))
    for rel in (*BOOK_FILES, *pages):
        src, dst = root / rel, dest / rel
        if not src.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)


def _write_toc(source: Path, present: set[str]) -> None:
    """Drop chapters that were never executed (stems not in ``present``) from
    ``source/_toc.yml`` (a partial build with ``--only``); only used on staged copies."""
    import yaml

    toc_path = source / "_toc.yml"
    toc = yaml.safe_load(toc_path.read_text())

    def keep(entries: list) -> list:
        out = []
        for e in entries:
            f = e.get("file")
            if f and f.startswith(CHAPTER_DIR.as_posix()) and Path(f).stem not in present:
                continue
            if "sections" in e:
                e = {**e, "sections": keep(e["sections"])}
            out.append(e)
        return out

    for part in toc.get("parts", []):
        part["chapters"] = keep(part.get("chapters", []))
    if "parts" in toc:
        toc["parts"] = [p for p in toc["parts"] if p["chapters"]]  # no empty parts
    if "chapters" in toc:
        toc["chapters"] = keep(toc["chapters"])
    toc_path.write_text(yaml.safe_dump(toc, sort_keys=False))


def build_html(source: "str | os.PathLike", quiet: bool = True) -> Path:
    """``jupyter-book build`` of ``source`` (this environment's executable); returns
    ``source/_build/html``. A failed build raises ``RuntimeError`` with its log tail."""
    source = Path(source).resolve()
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyter_book.cli.main"]
    cmd += ["build", str(source), "--builder", "html", "--path-output", str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    if not quiet:
        print(proc.stdout[-2000:])
    return source / "_build" / "html"


_EXTERNAL = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*["'](?:https?:)?//[^"']+["']""",
    re.IGNORECASE)


def external_references(html_dir: "str | os.PathLike") -> dict[str, list[str]]:
    """Scripts, stylesheets, images or frames a built page loads from the network
    (``http(s)://`` or ``//`` URLs), per page; empty when the book works offline.
    Ordinary ``<a href>`` links are not loads and are not reported."""
    out: dict[str, list[str]] = {}
    for page in sorted(Path(html_dir).rglob("*.html")):
        hits = _EXTERNAL.findall(page.read_text(errors="replace"))
        if hits:
            out[str(page.relative_to(html_dir))] = hits
    return out


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in ("sgquant", "torch", "torch-geometric", "xgboost-cpu", "xgboost", "numpy",
                 "pandas", "scikit-learn", "papermill", "jupyter-book", "sphinx", "myst-nb",
                 "matplotlib", "seaborn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _hardware() -> dict[str, str]:
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"platform": platform.platform(), "cpu": cpu, "cores": str(os.cpu_count())}
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory"] = f"{pages * size / 2**30:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import torch
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none used"
    except Exception:  # pragma: no cover - torch always importable here
        pass
    return info


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _machines_table() -> str:
    """:func:`~sgquant.provenance.record_machines` of the results folder, as Markdown."""
    from .provenance import record_machines

    df = record_machines()
    return _md_table(["CPU capability", "device", "torch", "FP32 models", "fine-tunes",
                      "records"], df.itertuples(index=False)) if len(df) else "none yet."


def write_build_info(source: Path, result: BookResult, timings_file: Optional[Path] = None) -> Path:
    """Write ``book/chapters/build_info.md`` (included by the reproducibility page):
    the profile, chapter wall times, versions, hardware, the machines the results
    folder's records were made on and every profile's budgets."""
    from datetime import datetime, timezone

    from .profiles import PROFILES

    chapter_dir = source / CHAPTER_DIR
    chapter_dir.mkdir(parents=True, exist_ok=True)
    times_path = timings_file or chapter_dir / "build_times.json"
    times = json.loads(times_path.read_text()) if times_path.is_file() else {}
    for name, sec in result.chapters.items():
        times[name] = {"seconds": sec, "profile": result.profile}
    times_path.write_text(json.dumps(times, indent=1, sort_keys=True))
    fields = list(PROFILES["default"].to_dict())
    fields.remove("name")
    text = [
        f"Built {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} with "
        f"`sgquant book --profile {result.profile}`.", "",
        "**Chapter wall times** (papermill execution; a cached rerun is much faster):", "",
        _md_table(["chapter", "profile", "seconds"],
                  [[k, v["profile"], f"{v['seconds']:.1f}"] for k, v in sorted(times.items())]),
        "", "**Software**:", "",
        _md_table(["package", "version"],
                  sorted(_versions().items(), key=lambda kv: kv[0] != "python")),
        "", "**Hardware**:", "",
        _md_table(["", ""], list(_hardware().items())),
        "", "**Records in the results folder were made on** (`sgquant.provenance`: not part "
        "of any cache key; unknown: a record older than these notes):", "",
        _machines_table(),
        "", "**Profiles** (`sgquant.profiles`):", "",
        _md_table(["field"] + list(PROFILES),
                  [[f] + [", ".join(map(str, v)) if isinstance(v, tuple) else v
                          for v in (PROFILES[p].to_dict()[f] for p in PROFILES)] for f in fields]),
    ]
    path = chapter_dir / "build_info.md"
    path.write_text("\n".join(text) + "\n")
    return path


def _chapter_parameters(templates: Sequence[Path], parameters: dict) -> dict[Path, dict]:
    """Each chapter's share of ``parameters`` (those it declares), every one checked
    (:func:`~sgquant.parameters.validate_parameters`) before any chapter runs."""
    out = {}
    for tpl in templates:
        declared = notebook_parameters(tpl)
        out[tpl] = {k: v for k, v in parameters.items() if k in declared}
        validate_parameters(tpl, out[tpl])
    return out


def _run_chapters(runs: dict[Path, dict], chapter_dir: Path, cell_timeout: Optional[int],
                  progress: bool, result: BookResult) -> None:
    from tqdm import tqdm

    bar = tqdm(list(runs), desc="chapters", unit="chapter", disable=not progress)
    for tpl in bar:
        bar.set_postfix_str(tpl.stem)
        result.chapters[tpl.stem] = execute_chapter(tpl, chapter_dir / tpl.name, runs[tpl],
                                                    cell_timeout=cell_timeout)
    bar.close()


def build_book(profile: str = "default", only: Optional[str] = None,
               out: "str | os.PathLike | None" = None, *, workers: Optional[int] = None,
               build: bool = True, cell_timeout: Optional[int] = DEFAULT_CELL_TIMEOUT,
               progress: bool = True, root: "str | os.PathLike | None" = None,
               device: Optional[str] = None, scheduler: Optional[str] = None) -> BookResult:
    """Execute every chapter (or ``only`` one) with ``profile`` and build the HTML.

    The book's source root is the checkout, or ``out`` (sources copied there).
    Chapters not executed now keep their earlier executed version, if any; with a
    staged ``out`` the table of contents lists only the executed ones. Before the
    first cell: every chapter's parameters, ``device``, the ``scheduler`` (``None``:
    ``$SGQUANT_SCHEDULER``) and the results folder (:func:`~sgquant.chapter_run.preflight`).
    """
    from .profiles import get_profile

    prof = get_profile(profile).name
    workers = check_optional_int(workers, "workers", minimum=0)
    cell_timeout = check_optional_int(cell_timeout, "cell_timeout", minimum=1)
    if only is not None and not str(only).strip():
        raise ValueError(f"--only {only!r} selects no chapter: give a chapter's number or "
                         "name (e.g. 03 or overall), or leave --only out to build every chapter")
    src_root = repo_root(root)
    templates = [select_chapter(only, src_root)] if only is not None else chapters(src_root)
    source = src_root if out is None else Path(out).resolve()
    if source != src_root:
        check_book_folder(source)
    chapter_dir = source / CHAPTER_DIR
    parameters: dict[str, Any] = {"profile": prof}
    if workers is not None:
        parameters["workers"] = workers
    result = BookResult(profile=prof)
    if build and source == src_root:  # the checkout's _toc.yml lists every chapter
        running = {p.name for p in templates}
        missing = [p.name for p in chapters(src_root)
                   if p.name not in running and not (chapter_dir / p.name).is_file()]
        if missing:
            raise ValueError(
                f"chapters {', '.join(missing)} were never executed into {chapter_dir}: "
                "run sgquant book without --only first, or use --out DIR for a partial book")
    runs = _chapter_parameters(templates, parameters)
    if source != src_root:
        stage_sources(src_root, source)
    preflight(chapter_dir, device, scheduler)
    _run_chapters(runs, chapter_dir, cell_timeout, progress, result)
    write_build_info(source, result)
    if build:
        if source != src_root:
            _write_toc(source, {p.stem for p in chapter_dir.glob("*.ipynb")})
        start = time.perf_counter()
        result.html = build_html(source)
        result.build_seconds = time.perf_counter() - start
    return result


# -------------------------------------------------------------------- CLI
def _book_cli(args: argparse.Namespace) -> int:
    check_int(args.cell_timeout, "--cell-timeout (seconds)", minimum=1)
    return exit_code("book", lambda: build_book(
        args.profile, args.only, args.out, workers=args.workers, build=not args.no_build,
        cell_timeout=args.cell_timeout, progress=not args.no_progress, device=args.device,
        scheduler=args.scheduler).summary())


def add_cli(subparsers: Any) -> None:
    """Register ``sgquant book`` and ``sgquant run``
    (:func:`sgquant.chapter_run.add_run_cli`)."""
    from .profiles import PROFILES
    from .settings import add_settings_arguments

    b = subparsers.add_parser(
        "book", help="run every chapter with papermill and build the HTML book",
        description="Execute the chapters (notebooks/NN_*.ipynb) with papermill into "
                    "book/chapters/ and build the HTML book with Jupyter Book into "
                    "_build/html (results are cached: a rerun only builds).")
    b.add_argument("--profile", default="default", choices=list(PROFILES),
                   help="compute budget: quick (CI, minutes), default (CPU: hours on 2 cores "
                        "when nothing is cached, see the reproducibility page), paper")
    b.add_argument("--only", default=None, metavar="CHAPTER",
                   help="run only this chapter (number or name, e.g. 03 or overall)")
    b.add_argument("--out", default=None, metavar="DIR",
                   help="write executed chapters and the HTML under DIR (sources copied "
                        "there); DIR must be new, empty or an earlier --out build")
    b.add_argument("--workers", type=int, default=None,
                   help="measurement processes per chapter (default: all cores; 0: in-process)")
    add_cell_timeout_argument(b)
    add_settings_arguments(b)
    b.add_argument("--no-build", action="store_true", help="execute chapters, skip the HTML")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=_book_cli)
    add_run_cli(subparsers)
