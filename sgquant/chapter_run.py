"""Executing one chapter notebook with papermill, and ``sgquant run``.

    sgquant run notebooks/03_overall.ipynb -p dataset CiteSeer -p model gat

The chapter templates are ``notebooks/NN_name.ipynb`` (committed without outputs,
one cell tagged ``parameters``). Before anything executes,
:func:`~sgquant.parameters.validate_parameters` checks a run's parameters (names,
types, values), :func:`check_output` the output notebook (a folder, an unwritable
place or a file that sgquant did not write is refused; the default name,
:func:`default_output`, stays short whatever the parameters) and :func:`preflight`
what the chapter needs from outside (the device, a reachable scheduler, a writable
results folder). :func:`execute_chapter` runs it with papermill in a kernel of this
interpreter. Ctrl-C interrupts the running cell (as a notebook's interrupt button
does), and the partly executed notebook is kept, marked interrupted
(:func:`mark_interrupted`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .cache import (RESULTS_ENV, check_results_folder, results_root, stale_records_notice,
                    writable_folder)
from .checks import check_int, check_optional_int
from .parameters import notebook_parameters, parse_value, validate_parameters

__all__ = [
    "DEFAULT_CELL_TIMEOUT", "PaperNotebookError", "ChapterInterrupted",
    "repo_root", "chapters", "select_chapter", "notebook_parameters", "parse_value",
    "validate_parameters", "kernel_name", "default_output", "check_output", "writable_folder",
    "preflight", "mark_interrupted", "execute_chapter", "exit_code", "add_run_cli",
    "add_cell_timeout_argument",
]

#: Generous per-cell limit (seconds): a chapter's search cell can run for long.
DEFAULT_CELL_TIMEOUT = 6 * 3600
#: Characters of the parameters kept readable in a default output name.
NAME_CHARS = 60
_CHAPTER_RE = re.compile(r"^(\d\d)_([a-z0-9_]+)\.ipynb$")
#: papermill's tag on the markdown cells it adds to a notebook that stopped on an error.
_PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"


class PaperNotebookError(RuntimeError):
    """A chapter failed while executing (the partly executed notebook is kept)."""


class ChapterInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a chapter; the partly executed notebook is kept, marked
    interrupted. The message says where."""


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


# ---------------------------------------------------------------- outputs
def default_output(template: "str | os.PathLike", parameters: dict[str, Any],
                   out_dir: "str | os.PathLike") -> Path:
    """``out_dir/<chapter>-<parameters>-<hash>.ipynb``: the parameters as
    ``name=value`` pairs, cut to :data:`NAME_CHARS` characters, and the first 8 hex
    digits of their SHA-1, so that different parameters get different names and
    no name is too long for the file system (``<chapter>.ipynb`` without any)."""
    stem = Path(template).stem
    if not parameters:
        return Path(out_dir) / f"{stem}.ipynb"
    text = re.sub(r"[\s'\"()\[\]{}]+", "", "-".join(f"{k}={v}" for k, v in parameters.items()))
    readable = re.sub(r"[^A-Za-z0-9.,=+-]+", "_", text)[:NAME_CHARS].strip("_-.,")
    digest = hashlib.sha1(json.dumps(parameters, sort_keys=True, default=repr).encode())
    return Path(out_dir) / f"{stem}-{readable}-{digest.hexdigest()[:8]}.ipynb"


def _written_by_papermill(path: Path) -> bool:
    try:
        meta = json.loads(path.read_text(errors="replace")).get("metadata", {})
    except (OSError, ValueError, RecursionError, AttributeError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("papermill"), dict)


def check_output(output: "str | os.PathLike", template: "str | os.PathLike") -> Path:
    """Refuse an output notebook path before anything runs (``ValueError`` naming
    it): a folder, the template itself, an existing file that is not a notebook
    executed by papermill (sgquant never overwrites a file it did not write), or
    a place where no file can be created. Creates the output's folder."""
    output = Path(output)
    if output.is_dir():
        raise ValueError(f"output {output} is a folder; give a notebook file, "
                         f"e.g. {output / Path(template).name}")
    if output.exists():
        if output.resolve() == Path(template).resolve():
            raise ValueError(f"output {output} is the chapter template itself; give another file")
        if not _written_by_papermill(output):
            raise ValueError(f"output {output} exists and is not a notebook executed by sgquant "
                             "run: refusing to overwrite it; give another file")
    writable_folder(output.parent, f"the output notebook {output}")
    return output


def preflight(kernel_cwd: "str | os.PathLike", device: Optional[str] = None,
              scheduler: Optional[str] = None) -> Path:
    """Check, before a chapter's first cell, what its cells need from outside: the
    ``device`` and the Dask ``scheduler`` (``None``: ``$SGQUANT_SCHEDULER``; one that
    does not answer is :class:`~sgquant.runner.SchedulerUnreachable`), and
    the results folder (:func:`~sgquant.cache.results_root`: ``$SGQUANT_RESULTS``, else
    ``./results``, both seen from the directory the command runs in, never from
    ``kernel_cwd`` where the kernel starts: ``make book`` at the repository root and
    ``sgquant search`` there share one cache; created, writable, else a ``ValueError``;
    records of an older results version in it are announced once on stderr,
    :func:`~sgquant.cache.stale_records_notice`). That folder is then set, absolute, in
    ``$SGQUANT_RESULTS`` so the kernel uses the one checked; returns it."""
    from .settings import current_scheduler, use_run_settings

    use_run_settings(device, current_scheduler() if scheduler is None else scheduler,
                     probe_scheduler=True)
    folder = check_results_folder(results_root().resolve(), option=f"${RESULTS_ENV}")
    notice = stale_records_notice(folder)
    if notice:
        print(f"sgquant: {notice}", file=sys.stderr)
    os.environ[RESULTS_ENV] = str(folder.resolve())
    return folder


def mark_interrupted(output: "str | os.PathLike") -> Optional[int]:
    """Mark a partly executed notebook as interrupted: papermill's notebook
    metadata gets ``status: interrupted`` and ``exception: true``, the cell that
    was running ``interrupted``, and every cell that never started ``not
    executed`` (papermill alone leaves them "completed"). Returns the
    interrupted cell's execution count (``None`` if no code cell started, or no
    readable notebook is there)."""
    import nbformat

    try:
        nb = nbformat.read(str(output), as_version=4)
    except (OSError, ValueError):  # missing, or cut short by the interrupt
        return None
    started = [c for c in nb.cells if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    last = started[-1] if started else None
    count = None
    for cell in nb.cells:
        pm = cell.get("metadata", {}).get("papermill")
        if pm is None:
            continue
        if cell is last:
            pm.update(status="interrupted", exception=True)
            count = cell.get("execution_count")
        elif not pm.get("start_time"):
            pm.update(status="not executed", exception=None)
    where = f'<a href="#papermill-error-cell">In [{count}]</a>' if count is not None else "start"
    for cell in nb.cells:  # papermill's note at the top and its anchor above the cell
        if _PAPERMILL_ERROR_TAG in cell.get("metadata", {}).get("tags", []):
            anchor = 'id="papermill-error-cell"' in cell.source
            cell.source = ('<span id="papermill-error-cell">Execution was interrupted here '
                           '(Ctrl-C):</span>' if anchor else
                           f"<span>Interrupted (Ctrl-C) at {where}; the cells after it were "
                           "not executed.</span>")
    meta = nb.metadata.setdefault("papermill", {})
    meta.update(status="interrupted", exception=True,
                end_time=datetime.now(timezone.utc).isoformat())
    output = Path(output)
    tmp = output.with_name(f".{output.name}.tmp")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, output)
    return count


@contextlib.contextmanager
def _interrupt_kernel_on_sigint(kernels: list) -> Iterator[dict]:
    """While papermill runs: the first Ctrl-C interrupts the kernel's running cell
    (so the cell fails with ``KeyboardInterrupt`` and papermill stops cleanly); a
    second one, or one before the kernel started, interrupts this process."""
    state = {"interrupted": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def on_sigint(signum: int, frame: Any) -> None:
        pid = next((getattr(getattr(km, "provisioner", None), "pid", None)
                    for km in reversed(kernels)), None)
        first = not state["interrupted"]
        state["interrupted"] = True
        if first and pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
                return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def execute_chapter(template: "str | os.PathLike", output: "str | os.PathLike",
                    parameters: Optional[dict] = None, *,
                    cell_timeout: Optional[int] = DEFAULT_CELL_TIMEOUT,
                    cwd: "str | os.PathLike | None" = None, progress: bool = False) -> float:
    """Run one chapter with papermill; return its wall time in seconds.

    ``cell_timeout``: seconds one cell may run (>= 1; ``None``: no limit). Raises
    :class:`PaperNotebookError` (with the failing cell's error) if a cell fails,
    :class:`ChapterInterrupted` on Ctrl-C; either way the partly executed notebook
    is left at ``output`` (marked interrupted by :func:`mark_interrupted`).
    """
    import papermill
    from jupyter_client.manager import AsyncKernelManager
    from papermill.exceptions import PapermillExecutionError

    cell_timeout = check_optional_int(cell_timeout, "cell_timeout", minimum=1)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    kernels: list = []

    class TrackedKernelManager(AsyncKernelManager):
        """papermill's kernel manager, remembered so Ctrl-C can interrupt its kernel."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            kernels.append(self)

        async def start_kernel(self, **kwargs: Any) -> None:
            # in a session of its own: a Ctrl-C at the terminal reaches the kernel once,
            # through _interrupt_kernel_on_sigint, not also as the process group's
            # SIGINT (two interrupts at once could abort its ZMQ loop mid-poll, which
            # printed libzmq's "Assertion failed: pfd.revents & POLLIN" on stderr)
            kwargs.setdefault("independent", True)
            await super().start_kernel(**kwargs)

    start = time.perf_counter()
    with _interrupt_kernel_on_sigint(kernels) as state:
        try:
            papermill.execute_notebook(
                str(template), str(output), parameters=parameters or {},
                kernel_name=kernel_name(), progress_bar=progress, log_output=False,
                cwd=str(cwd or output.parent), execution_timeout=cell_timeout,
                start_timeout=180, kernel_manager_class=TrackedKernelManager,
                # the kernel's own log (start-up warnings about its local TCP transport,
                # "KeyboardInterrupt caught in kernel" when Ctrl-C lands between cells)
                # is not the chapter's output: what a cell prints or raises reaches the
                # notebook through the kernel's messages, and a dead kernel is our error
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
        except PapermillExecutionError as exc:
            if not (state["interrupted"] and exc.ename == "KeyboardInterrupt"):
                raise PaperNotebookError(
                    f"{Path(template).name} failed in cell {exc.exec_count}: {exc.ename}: "
                    f"{exc.evalue} (partly executed notebook: {output})") from None
            _interrupted(template, output)
        except KeyboardInterrupt:
            _interrupted(template, output)
        except Exception:  # e.g. the kernel died of an interrupt while starting
            if not state["interrupted"]:
                raise
            _interrupted(template, output)
    return time.perf_counter() - start


def _interrupted(template: "str | os.PathLike", output: Path) -> None:
    count = mark_interrupted(output)
    where = f" in cell {count}" if count is not None else ""
    raise ChapterInterrupted(
        f"{Path(template).name} interrupted{where}; the partly executed notebook, marked "
        f"interrupted, is {output} (measured results are kept in the cache)") from None


# -------------------------------------------------------------------- CLI
def _parse_pairs(pairs: Optional[list[list[str]]]) -> dict[str, Any]:
    return {name: parse_value(value, name) for name, value in pairs or []}


def _run_cli(args: Any) -> int:
    template = Path(args.notebook)
    if not template.is_file():
        try:
            template = select_chapter(args.notebook)
        except ValueError:
            raise ValueError(f"notebook {args.notebook!r} does not exist") from None
    cell_timeout = check_int(args.cell_timeout, "--cell-timeout (seconds)", minimum=1)
    params = _parse_pairs(args.parameters)
    dataset = params.get("dataset")
    if isinstance(dataset, str) and os.path.exists(dataset):
        params["dataset"] = os.path.abspath(dataset)  # the kernel runs in another folder
    validate_parameters(template, params)
    output = Path(args.output) if args.output else default_output(template, params,
                                                                  args.out_dir)
    check_output(output, template)
    # a scheduler parameter is the one the chapter uses, else --scheduler, else the variable's
    preflight(output.parent, args.device, params.get("scheduler") or args.scheduler)

    def run() -> str:
        seconds = execute_chapter(template, output, params, cell_timeout=cell_timeout,
                                  progress=not args.no_progress)
        return f"executed {template.name} in {seconds:.1f} s -> {output}"
    return exit_code("run", run)


def exit_code(command: str, work: Callable[[], str]) -> int:
    """Run ``work`` for ``sgquant COMMAND`` and print the line it returns (exit 0);
    a chapter that failed prints one line and exits 1, Ctrl-C one line and 130."""
    try:
        line = work()
    except PaperNotebookError as exc:
        print(f"sgquant {command}: error: {exc}", file=sys.stderr)
        return 1
    except ChapterInterrupted as exc:
        print(f"sgquant {command}: {exc}", file=sys.stderr)
        return 130
    print(line)
    return 0


def add_run_cli(subparsers: Any) -> None:
    """Register ``sgquant run``."""
    from .settings import add_settings_arguments

    r = subparsers.add_parser(
        "run", help="run one chapter with other parameters",
        description="Execute one chapter notebook with papermill, e.g. "
                    "sgquant run notebooks/03_overall.ipynb -p dataset CiteSeer -p model gat")
    r.add_argument("notebook", help="chapter notebook (path, number or name)")
    r.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append",
                   metavar=("NAME", "VALUE"), help="set a parameter of the notebook")
    r.add_argument("-o", "--output", default=None,
                   help="executed notebook (default: in --out-dir, named by the parameters)")
    r.add_argument("--out-dir", default="runs",
                   help="folder for executed notebooks (default runs/)")
    add_cell_timeout_argument(r)
    add_settings_arguments(r)
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_run_cli)


def add_cell_timeout_argument(parser: Any) -> None:
    """``--cell-timeout SECONDS`` (checked by the command: an integer >= 1)."""
    parser.add_argument("--cell-timeout", type=int, default=DEFAULT_CELL_TIMEOUT,
                        help=f"seconds one notebook cell may run, >= 1 "
                             f"(default {DEFAULT_CELL_TIMEOUT})")
