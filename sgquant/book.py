"""``sgquant book`` and ``sgquant run``: execute the chapters with papermill, build the book.

    sgquant book [--profile quick|default|paper] [--only CHAPTER] [--out DIR]
    sgquant run notebooks/03_overall.ipynb -p dataset CiteSeer -p model gat

The chapter templates are ``notebooks/NN_name.ipynb`` (committed without outputs,
one cell tagged ``parameters``). ``sgquant book`` executes them in order with
papermill (passing ``profile``), writes the executed chapters to
``book/chapters/NN_name.ipynb`` and builds the HTML book with Jupyter Book 1.x
(``_config.yml``, ``_toc.yml``; Jupyter Book does not execute anything). Results
are cached (``$SGQUANT_RESULTS``), so a rerun only builds. With ``--out DIR`` the
book's sources are copied to ``DIR`` and everything generated (executed chapters,
``DIR/_build/html``) goes there, leaving the checkout untouched.
"""
from __future__ import annotations

import argparse
import ast
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

__all__ = [
    "CHAPTER_DIR", "BOOK_FILES", "PaperNotebookError", "BookResult",
    "repo_root", "chapters", "select_chapter", "notebook_parameters", "parse_value",
    "validate_parameters", "kernel_name", "execute_chapter", "stage_sources",
    "build_html", "external_references", "write_build_info", "build_book", "add_cli",
]

#: Where executed chapters go, relative to the book's source root.
CHAPTER_DIR = Path("book") / "chapters"
#: Files and folders of the book besides the chapters (copied by ``--out``).
BOOK_FILES = ("_config.yml", "_toc.yml", "CITATION.cff", "book/intro.md",
              "book/reproducibility.md", "book/_static")
#: Generous per-cell limit (seconds): a chapter's search cell can run for long.
DEFAULT_CELL_TIMEOUT = 6 * 3600
_CHAPTER_RE = re.compile(r"^(\d\d)_([a-z0-9_]+)\.ipynb$")


class PaperNotebookError(RuntimeError):
    """A chapter failed while executing (the partly executed notebook is kept)."""


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


# ------------------------------------------------------------ the checkout
def repo_root(start: "str | os.PathLike | None" = None) -> Path:
    """The checkout holding ``_config.yml`` and ``notebooks/``: ``start``, the
    current folder, or the folder above the installed package."""
    candidates = [Path(start)] if start else [Path.cwd(), Path(__file__).resolve().parents[1]]
    for c in candidates:
        if (c / "_config.yml").is_file() and (c / "notebooks").is_dir():
            return c.resolve()
    raise ValueError(
        f"no book sources (_config.yml and notebooks/) in {', '.join(map(str, candidates))}: "
        "run sgquant book from a checkout of the repository")


def chapters(root: "str | os.PathLike | None" = None) -> list[Path]:
    """The chapter templates ``notebooks/NN_name.ipynb``, in order."""
    folder = repo_root(root) / "notebooks"
    return sorted(p for p in folder.glob("*.ipynb") if _CHAPTER_RE.match(p.name))


def select_chapter(name: str, root: "str | os.PathLike | None" = None) -> Path:
    """The chapter named by its number (``3``, ``03``), name (``03_overall``,
    ``overall``) or file name."""
    all_ = chapters(root)
    key = Path(str(name)).name.removesuffix(".ipynb").lower()
    for p in all_:
        num, rest = _CHAPTER_RE.match(p.name).groups()
        if key in (p.stem, num, rest) or (key.isdigit() and int(key) == int(num)):
            return p
    raise ValueError(f"unknown chapter {name!r}; choose one of "
                     f"{', '.join(p.stem for p in all_)} (or its number)")


# -------------------------------------------------------------- parameters
def notebook_parameters(path: "str | os.PathLike") -> dict[str, Any]:
    """The parameters declared in a notebook's ``parameters`` cell, with defaults
    (:func:`papermill.inspect_notebook`)."""
    import papermill

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"notebook {str(path)!r} does not exist")
    info = papermill.inspect_notebook(str(path))
    if not info:
        raise ValueError(f"{path} has no cell tagged 'parameters'")
    out = {}
    for name, spec in info.items():
        try:
            out[name] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError):
            out[name] = spec["default"]
    return out


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal (``3``, ``0.5``, ``None``, ``[1, 2]``),
    ``true``/``false``/``null``, or else the string itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _single_dataset(path: Path) -> bool:
    """Whether a chapter trains on one dataset (so its files must be present);
    multi-dataset chapters list a missing dataset as "not run" instead."""
    meta = json.loads(path.read_text()).get("metadata", {}).get("sgquant", {})
    return bool(meta.get("single_dataset"))


def validate_parameters(path: "str | os.PathLike", parameters: dict[str, Any]) -> dict[str, Any]:
    """Check ``parameters`` against the notebook's ``parameters`` cell and their
    values (dataset, model, profile, seeds, workers ...); raise ``ValueError``
    naming the bad one. Returns the parameters with defaults filled in."""
    from .data import DatasetUnavailableError, available_datasets
    from .experiments import check_parameters

    path = Path(path)
    declared = notebook_parameters(path)
    unknown = [k for k in parameters if k not in declared]
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {path.name}; "
                         f"its parameters are {', '.join(declared)}")
    merged = {**declared, **parameters}
    checked = check_parameters(**{k: merged.get(k) for k in ("dataset", "model", "profile", "seeds")
                                  if k in merged})
    for key in ("workers",):
        v = merged.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ValueError(f"{key} must be an integer >= 0 or None, got {v!r}")
    for key in ("tolerance",):
        v = merged.get(key)
        if key in merged and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
            raise ValueError(f"{key} must be a number >= 0, got {v!r}")
    for key in ("budget", "samples"):
        v = merged.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{key} must be an integer >= 1 or None, got {v!r}")
    from .quantize import check_bits
    for key in ("bits", "chunk_sizes"):
        if key not in merged:
            continue
        values = merged[key]
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") or not values:
            raise ValueError(f"{key} must be a non-empty list, e.g. [1, 2, 4], got {values!r}")
        for v in values:
            if key == "bits":
                check_bits(v)
            elif isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"chunk_sizes must be integers >= 1, got {v!r}")
    if "peak_bits" in merged:
        check_bits(merged["peak_bits"])
    if _single_dataset(path) and "dataset" in merged:
        names = checked["datasets"]
        if len(names) != 1:
            raise ValueError(f"{path.name} takes one dataset, got {merged['dataset']!r}")
        if "model" in merged and len(checked["models"]) != 1:
            raise ValueError(f"{path.name} takes one model (gcn, agnn or gat), "
                             f"got {merged['model']!r}")
        if names[0] not in available_datasets():
            from .data import load_dataset
            try:  # downloads on a networked machine
                load_dataset(names[0])
            except DatasetUnavailableError as exc:
                raise ValueError(str(exc)) from None
    return merged


# ----------------------------------------------------------------- kernel
def kernel_name() -> str:
    """A kernel that runs this interpreter: ``python3`` when it resolves to
    ``sys.executable`` (a ``python`` argv is replaced by it), else a ``sgquant``
    kernelspec installed into this environment."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def runs_here(name: str) -> bool:
        try:
            argv = KernelSpecManager().get_kernel_spec(name).argv
        except NoSuchKernel:
            return False
        exe = argv[0] if argv else ""
        if exe in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
            return True  # jupyter_client launches sys.executable for these
        try:
            return os.path.samefile(exe, sys.executable)
        except OSError:
            return False

    if runs_here("python3"):
        return "python3"
    if not runs_here("sgquant"):
        from ipykernel.kernelspec import install
        install(kernel_name="sgquant", display_name="Python (sgquant)", prefix=sys.prefix)
    return "sgquant"


# -------------------------------------------------------------- execution
def execute_chapter(template: "str | os.PathLike", output: "str | os.PathLike",
                    parameters: Optional[dict] = None, *,
                    cell_timeout: Optional[int] = DEFAULT_CELL_TIMEOUT,
                    cwd: "str | os.PathLike | None" = None, progress: bool = False) -> float:
    """Run one chapter with papermill; return its wall time in seconds.

    Raises :class:`PaperNotebookError` (with the failing cell's error) if a cell
    fails; the partly executed notebook is left at ``output``.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(template), str(output), parameters=parameters or {}, kernel_name=kernel_name(),
            progress_bar=progress, log_output=False, cwd=str(cwd or output.parent),
            execution_timeout=cell_timeout, start_timeout=180,
            # the kernel's own start-up warnings (e.g. about its local TCP transport)
            # are not the chapter's output
            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except PapermillExecutionError as exc:
        raise PaperNotebookError(
            f"{Path(template).name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue} "
            f"(partly executed notebook: {output})") from None
    return time.perf_counter() - start


def stage_sources(root: Path, dest: Path) -> None:
    """Copy the book's sources (:data:`BOOK_FILES`) from ``root`` to ``dest``."""
    for rel in BOOK_FILES:
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


def write_build_info(source: Path, result: BookResult, timings_file: Optional[Path] = None) -> Path:
    """Write ``book/chapters/build_info.md`` (included by the reproducibility page):
    the profile, chapter wall times, versions, hardware and every profile's budgets."""
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
        "", "**Profiles** (`sgquant.profiles`):", "",
        _md_table(["field"] + list(PROFILES),
                  [[f] + [", ".join(map(str, v)) if isinstance(v, tuple) else v
                          for v in (PROFILES[p].to_dict()[f] for p in PROFILES)] for f in fields]),
    ]
    path = chapter_dir / "build_info.md"
    path.write_text("\n".join(text) + "\n")
    return path


def _run_chapters(templates: Sequence[Path], chapter_dir: Path, parameters: dict,
                  cell_timeout: Optional[int], progress: bool, result: BookResult) -> None:
    from tqdm import tqdm

    bar = tqdm(templates, desc="chapters", unit="chapter", disable=not progress)
    for tpl in bar:
        bar.set_postfix_str(tpl.stem)
        declared = notebook_parameters(tpl)
        params = {k: v for k, v in parameters.items() if k in declared}
        validate_parameters(tpl, params)
        result.chapters[tpl.stem] = execute_chapter(tpl, chapter_dir / tpl.name, params,
                                                    cell_timeout=cell_timeout)
    bar.close()


def build_book(profile: str = "default", only: Optional[str] = None,
               out: "str | os.PathLike | None" = None, *, workers: Optional[int] = None,
               build: bool = True, cell_timeout: Optional[int] = DEFAULT_CELL_TIMEOUT,
               progress: bool = True, root: "str | os.PathLike | None" = None) -> BookResult:
    """Execute every chapter (or ``only`` one) with ``profile`` and build the HTML.

    The book's source root is the checkout, or ``out`` (sources copied there).
    Chapters not executed now keep their earlier executed version, if any; with a
    staged ``out`` the table of contents lists only the executed ones.
    """
    from .profiles import get_profile

    prof = get_profile(profile).name
    if workers is not None and (isinstance(workers, bool) or workers < 0):
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
    src_root = repo_root(root)
    templates = [select_chapter(only, src_root)] if only else chapters(src_root)
    source = src_root if out is None else Path(out).resolve()
    if source != src_root:
        stage_sources(src_root, source)
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
    _run_chapters(templates, chapter_dir, parameters, cell_timeout, progress, result)
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
    result = build_book(args.profile, args.only, args.out, workers=args.workers,
                        build=not args.no_build, cell_timeout=args.cell_timeout,
                        progress=not args.no_progress)
    print(result.summary())
    return 0


def _parse_pairs(pairs: Optional[list[list[str]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs or []:
        out[name] = parse_value(value)
    return out


def _run_cli(args: argparse.Namespace) -> int:
    template = Path(args.notebook)
    if not template.is_file():
        try:
            template = select_chapter(args.notebook)
        except ValueError:
            raise ValueError(f"notebook {args.notebook!r} does not exist") from None
    params = _parse_pairs(args.parameters)
    validate_parameters(template, params)
    if args.output:
        output = Path(args.output)
    else:
        tag = "-".join(f"{k}={v}" for k, v in params.items()).replace("/", "_")
        name = template.stem + (f"-{tag}" if tag else "") + ".ipynb"
        output = Path(args.out_dir) / name
    try:
        seconds = execute_chapter(template, output, params, cell_timeout=args.cell_timeout,
                                  progress=not args.no_progress)
    except PaperNotebookError as exc:
        print(f"sgquant run: error: {exc}", file=sys.stderr)
        return 1
    print(f"executed {template.name} in {seconds:.1f} s -> {output}")
    return 0


def add_cli(subparsers: Any) -> None:
    """Register ``sgquant book`` and ``sgquant run``."""
    from .profiles import PROFILES

    b = subparsers.add_parser(
        "book", help="run every chapter with papermill and build the HTML book",
        description="Execute the chapters (notebooks/NN_*.ipynb) with papermill into "
                    "book/chapters/ and build the HTML book with Jupyter Book into "
                    "_build/html (results are cached: a rerun only builds).")
    b.add_argument("--profile", default="default", choices=list(PROFILES),
                   help="compute budget: quick (CI), default (CPU, < 1 h), paper")
    b.add_argument("--only", default=None, metavar="CHAPTER",
                   help="run only this chapter (number or name, e.g. 03 or overall)")
    b.add_argument("--out", default=None, metavar="DIR",
                   help="write executed chapters and the HTML under DIR (sources copied there)")
    b.add_argument("--workers", type=int, default=None,
                   help="measurement processes per chapter (default: all cores; 0: in-process)")
    b.add_argument("--cell-timeout", type=int, default=DEFAULT_CELL_TIMEOUT,
                   help=f"seconds one notebook cell may run (default {DEFAULT_CELL_TIMEOUT})")
    b.add_argument("--no-build", action="store_true", help="execute chapters, skip the HTML")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=_book_cli)

    r = subparsers.add_parser(
        "run", help="run one chapter with other parameters",
        description="Execute one chapter notebook with papermill, e.g. "
                    "sgquant run notebooks/03_overall.ipynb -p dataset CiteSeer -p model gat")
    r.add_argument("notebook", help="chapter notebook (path, number or name)")
    r.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append",
                   metavar=("NAME", "VALUE"), help="set a parameter of the notebook")
    r.add_argument("-o", "--output", default=None, help="executed notebook (default: in --out-dir)")
    r.add_argument("--out-dir", default="runs",
                   help="folder for executed notebooks (default runs/)")
    r.add_argument("--cell-timeout", type=int, default=DEFAULT_CELL_TIMEOUT,
                   help=f"seconds one notebook cell may run (default {DEFAULT_CELL_TIMEOUT})")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_run_cli)
