"""Mutation testing: plant one small bug at a time in the core modules and see whether a test
catches it.

    python scripts/mutation.py                          # every core module, 2 workers
    python scripts/mutation.py --sample 60 --seed 1 --stages 1   # quick pass, 60 per module
    python scripts/mutation.py --only ID... --thorough  # confirm survivors in full
    python scripts/mutation.py --only ID --tests tests/test_new.py   # does it kill them?
    python scripts/mutation.py --list funcnn/losses.py  # show the mutants, run nothing

A mutant is one edit of the syntax tree of one library file: an arithmetic operator swapped
(+ ↔ −, · ↔ /, ** → ·), a comparison flipped (< ↔ ≤, > ↔ ≥, == ↔ ≠), `and` ↔ `or`, a
unary minus dropped, a numeric constant nudged (0 → 1, 1 → 2, c → 2c), `True` ↔ `False`,
or `jnp.maximum` ↔ `jnp.minimum` (and a few such pairs). Each mutant runs in a *fresh*
pytest process on a private copy of the repository, in up to three stages, stopping at the
first failure:

    1. the tests that executed the mutated line, read from a coverage map (pytest-cov with
       one context per test, built once into .mutation-coverage; --rebuild-coverage after
       the tests change) — usually a few tests, so most kills take seconds, not minutes;
    2. if it survives those: the module's mirrored test files (tests/test_<module>*.py);
    3. then every other test file that imports the module (leaving out the slow
       learning-run files unless --thorough).

Stage 1 only makes kills faster: a survivor has passed stages 2 and 3 in full, so a stale
or incomplete map (a test that reused a jit cache another test filled, a line run only at
import time) can cost time but never turns a survivor into a kill or back.

    killed    some test failed                          (the suite caught the bug)
    survived  every test passed                         (a gap — or an equivalent mutant)
    timeout   the tests ran past --timeout seconds      (NOT counted as killed)
    stale     the file changed since the plan was made  (not counted; rerun)
    error     pytest itself failed (usage/internal)     (not counted; printed)

Why not mutmut: mutmut 3 imports the code and runs the tests once in its own process, then
forks a child per mutant. By then JAX has started its thread pools (XLA's compiler and
runtime threads), and a forked child inherits their locks but not the threads — it hangs,
so nearly every mutant ends as a timeout. Here every mutant gets a fresh `python -m pytest`
(JAX starts clean; the compile-cache cost is paid per mutant, the price of being right), on
a private copy of the repository, so other work in the checkout is never touched.

Ids are `path:function+offset:col:kind` (offset: lines below the enclosing `def`), so an
edit elsewhere in the file leaves them — and `tests/mutation_equivalent.txt` — valid.
--sample draws from all of a module's mutants *before* the equivalents are dropped, so the
same --seed draws the same mutants after a survivor is listed; --only ID... reruns a few.

score = killed / (killed + survived + timeout), per module, with mutants listed in
`tests/mutation_equivalent.txt` (one `id  reason` per line: they change no observable
behaviour) left out of the denominator. Survivors are printed with their ids.
Not part of CI: it runs the tests hundreds of times.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from funcnn.lab import cli

REPO = Path(__file__).resolve().parents[1]
EQUIVALENT_FILE = REPO / "tests" / "mutation_equivalent.txt"

# The core modules (issue: activations, losses, nn, optim, reference, train/fit, checkpoint).
CORE: dict[str, list[str]] = {
    "activations": ["funcnn/activations.py"],
    "losses": ["funcnn/losses.py"],
    "nn": ["funcnn/nn"],
    "optim": ["funcnn/optim"],
    "reference": ["funcnn/reference"],
    "train": ["funcnn/train"],  # fit, checkpoint, resume, objectives
    "checkpoint": ["funcnn/train/checkpoint.py"],
}

BINARY = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.Pow: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
}
COMPARE = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
FUNCTION_SWAPS = {
    "maximum": "minimum",
    "minimum": "maximum",
    "max": "min",
    "min": "max",
    "sum": "mean",
    "mean": "sum",
    "exp": "expm1",
    "log": "log1p",
    "sqrt": "rsqrt",
}


@dataclass(frozen=True)
class Mutant:
    path: str  # repository-relative file
    line: int
    col: int
    kind: str  # e.g. "Sub→Add"
    index: int  # which candidate node, in walk order (locates the node when mutating)
    scope: str = ""  # enclosing def/class, dotted ("Adam.update"); "" at module level
    offset: int = 0  # line - the line of that def (so edits elsewhere in the file keep ids)
    repeat: int = 0  # n-th earlier mutant with the same place and kind (nested a - b - c)
    end_line: int = 0  # last line of the mutated node (the coverage lookup spans them all)

    @property
    def id(self) -> str:
        """`path:scope+offset:col:kind`, e.g. `funcnn/activations.py:softplus+7:32:0→1`:
        stable under edits outside the enclosing function (an absolute line number is not)."""
        place = f"{self.scope}+{self.offset}" if self.scope else str(self.line)
        suffix = f"#{self.repeat}" if self.repeat else ""
        return f"{self.path}:{place}:{self.col}:{self.kind}{suffix}"


def _is_docstring(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    parent = parents.get(node)
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and isinstance(parent, ast.Expr)
    )


def _number_replacement(value: float | int) -> float | int:
    if isinstance(value, bool):
        return not value
    if value == 0:
        return 1
    if value == 1:
        return 2
    return value * 2


class _Candidates:
    """Walks a module and yields (node, kind, apply) for every mutation it offers."""

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.parents = {
            child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)
        }

    def scope(self, node: ast.AST) -> tuple[str, int]:
        """The dotted name of the defs/classes around `node`, and the line of the innermost
        one's `def`/`class` keyword; ("", 0) at module level."""
        names, start, cur = [], 0, node
        while cur in self.parents:
            cur = self.parents[cur]
            if isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(cur.name)
                if not start:
                    start = cur.lineno
        return ".".join(reversed(names)), start

    def _in_annotation_or_skip(self, node: ast.AST) -> bool:
        cur = node
        while cur in self.parents:
            parent = self.parents[cur]
            if (
                isinstance(parent, (ast.arg, ast.AnnAssign))
                and getattr(parent, "annotation", None) is cur
            ):
                return True
            if isinstance(parent, ast.FunctionDef) and parent.returns is cur:
                return True
            # Error messages and argument checks: mutating an f-string changes only text.
            if isinstance(parent, ast.JoinedStr):
                return True
            if (
                isinstance(parent, ast.Subscript)
                and isinstance(parent.value, ast.Name)
                and parent.value.id in {"tuple", "dict", "list"}
            ):
                return True
            cur = parent
        return False

    def __iter__(self) -> Iterator[tuple[ast.AST, str, str, object]]:
        for node in ast.walk(self.tree):
            if self._in_annotation_or_skip(node):
                continue
            if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
                new = BINARY[type(node.op)]
                yield node, f"{type(node.op).__name__}→{new.__name__}", "op", new
            elif isinstance(node, ast.AugAssign) and type(node.op) in BINARY:
                new = BINARY[type(node.op)]
                yield node, f"{type(node.op).__name__}=→{new.__name__}=", "op", new
            elif (
                isinstance(node, ast.Compare)
                and len(node.ops) == 1
                and type(node.ops[0]) in COMPARE
            ):
                new = COMPARE[type(node.ops[0])]
                yield node, f"{type(node.ops[0]).__name__}→{new.__name__}", "cmp", new
            elif isinstance(node, ast.BoolOp):
                new = ast.Or if isinstance(node.op, ast.And) else ast.And
                yield node, f"{type(node.op).__name__}→{new.__name__}", "bool", new
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
                yield node, f"drop {type(node.op).__name__}", "unary", None
            elif isinstance(node, ast.Constant) and not _is_docstring(node, self.parents):
                if isinstance(node.value, bool):
                    yield node, f"{node.value}→{not node.value}", "const", not node.value
                elif isinstance(node.value, (int, float)):
                    new = _number_replacement(node.value)
                    yield node, f"{node.value!r}→{new!r}", "const", new
            elif isinstance(node, ast.Attribute) and node.attr in FUNCTION_SWAPS:
                new = FUNCTION_SWAPS[node.attr]
                if new != node.attr and isinstance(self.parents.get(node), ast.Call):
                    yield node, f".{node.attr}→.{new}", "attr", new


def candidates(path: Path, source: str | None = None) -> list[Mutant]:
    rel = str(path.relative_to(REPO))
    tree = ast.parse(path.read_text() if source is None else source)
    walk = _Candidates(tree)
    seen: dict[tuple[int, int, str], int] = {}
    out = []
    for i, (node, kind, _, _) in enumerate(walk):
        key = (node.lineno, node.col_offset, kind)
        scope, start = walk.scope(node)
        out.append(
            Mutant(
                rel,
                node.lineno,
                node.col_offset,
                kind,
                i,
                scope,
                node.lineno - start,
                seen.get(key, 0),
                getattr(node, "end_lineno", None) or node.lineno,
            )
        )
        seen[key] = seen.get(key, 0) + 1
    return out


def mutated_source(mutant: Mutant, source: str) -> str:
    """`source` with `mutant` applied. `source` is the text the plan was made from (the
    worker's private copy), so another edit to the repository mid-run cannot shift the
    walk order; a mismatch raises LookupError all the same."""
    tree = ast.parse(source)
    for i, (node, kind, how, new) in enumerate(_Candidates(tree)):
        if i != mutant.index:
            continue
        if (node.lineno, node.col_offset, kind) != (mutant.line, mutant.col, mutant.kind):
            break
        if how == "op":
            node.op = new()  # type: ignore[attr-defined]
        elif how == "cmp":
            node.ops = [new()]  # type: ignore[attr-defined]
        elif how == "bool":
            node.op = new()  # type: ignore[attr-defined]
        elif how == "unary":  # −x → x, not x → x
            _replace(tree, node, node.operand)  # type: ignore[attr-defined]
        elif how == "const":
            node.value = new  # type: ignore[attr-defined]
        elif how == "attr":
            node.attr = new  # type: ignore[attr-defined]
        return ast.unparse(ast.fix_missing_locations(tree))
    raise LookupError(f"mutant {mutant.id} (#{mutant.index}) no longer exists")


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return


# ---------------------------------------------------------------- which tests cover a file
def module_name(rel: str) -> str:
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def mirrored_tests(rel: str) -> list[str]:
    """The test files that mirror a module: tests/test_<a>_<b>*.py for funcnn/<a>/<b>.py
    (else tests/test_<b>*.py, else tests/test_<a>*.py); tests/test_<a>*.py for funcnn/<a>.py.
    The module's own name before its package's: test_decoding.py for nn/decoding.py, not
    every test_nn_*.py."""
    parts = tuple(p for p in Path(rel).with_suffix("").parts[1:] if p != "__init__")
    for stem in ("_".join(parts), parts[-1], parts[0]):
        found = sorted(str(t.relative_to(REPO)) for t in (REPO / "tests").glob(f"test_{stem}*.py"))
        if found:
            return found
    return []


# Learning runs and subprocess-heavy files: minutes each, so the second stage leaves them out
# unless --thorough (they train models; a bug they alone would catch is rare).
SLOW_TESTS = {
    "tests/test_architectures.py",
    "tests/test_experiments.py",
    "tests/test_sequence_learning.py",
    "tests/test_long_run.py",
    "tests/test_lm.py",
    "tests/test_readme.py",
    "tests/test_recipes.py",
    "tests/test_resume.py",
    "tests/test_faults.py",
    "tests/test_scripts_train.py",
    "tests/test_scripts_train_lm.py",
    "tests/test_distributed.py",
    "tests/test_doctests.py",
}


def test_files(*, thorough: bool = False) -> list[str]:
    """Every tests/test_*.py, repository-relative and sorted; without `thorough`, not the
    SLOW_TESTS."""
    found = (str(t.relative_to(REPO)) for t in sorted((REPO / "tests").glob("test_*.py")))
    return [name for name in found if thorough or name not in SLOW_TESTS]


def importing_tests(rel: str, *, thorough: bool = False) -> list[str]:
    """Every test file that names the module or a subpackage on its way down from `funcnn`
    (import statements or dotted references: `funcnn.optim.accumulators`, `from funcnn.optim
    import accumulators`, and — since the package re-exports it — `from funcnn import optim`
    or `funcnn.optim`); without `thorough`, not the SLOW_TESTS."""
    module = module_name(rel)
    names = module.split(".")
    patterns = []
    for depth in range(2, len(names) + 1):  # funcnn.optim, funcnn.optim.accumulators, …
        package, leaf = ".".join(names[: depth - 1]), names[depth - 1]
        dotted = re.escape(".".join(names[:depth]))
        patterns += [rf"\b{dotted}\b", rf"from {re.escape(package)} import [^\n]*\b{leaf}\b"]
    return [
        name
        for name in test_files(thorough=thorough)
        if any(re.search(p, (REPO / name).read_text()) for p in patterns)
    ]


# ---------------------------------------------------------------- running one mutant
def _worker_copy(base: Path) -> Path:
    root = Path(tempfile.mkdtemp(prefix="worker-", dir=base))
    for name in ("funcnn", "tests", "scripts", "pyproject.toml", "README.md", "benchmarks"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, root / name)
    return root


_COPIES: dict[int, Path] = {}


def _run_tests(root: Path, tests: list[str], timeout: float) -> str:
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "no:xdist", "-p", "no:randomly", *tests]
    try:
        result = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return "timeout"
    if result.returncode in (0, 5):  # 5: no test collected, so nothing caught it
        return "survived"
    if result.returncode in (1, 2):  # tests failed / collection error (an import-time raise)
        return "killed"
    if result.returncode in (3, 4):  # pytest's internal / usage error (e.g. an unknown test id)
        return "error"
    return "killed"  # a crash of the test process (segfault, abort) is a caught bug too


def run_mutant(
    mutant: Mutant,
    source: str,
    timeout: float,
    thorough: bool,
    base: Path,
    covering: list[str] | None = None,
    stages: int = 3,
    tests_given: list[str] | None = None,
) -> tuple[Mutant, str, float]:
    start = time.perf_counter()
    worker = os.getpid()
    root = _COPIES.get(worker)
    if root is None:
        # Under `base`, which the main process removes: a pool worker ends with os._exit,
        # so an atexit hook here would never run and leave its copy behind.
        root = _COPIES[worker] = _worker_copy(base)
    target = root / mutant.path
    try:
        try:
            target.write_text(mutated_source(mutant, source))
        except LookupError:
            return mutant, "stale", time.perf_counter() - start
        status = "survived"
        for stage, tests in _stages(mutant, covering, stages, thorough, tests_given):
            if not tests:
                continue
            status = _run_tests(root, tests, timeout)
            # A test id the map knows may have gone since it was built: go on to stage 2.
            if stage == "covering" and status == "error":
                status = "survived"
            if status != "survived":
                break
    finally:
        target.write_text(source)
    return mutant, status, time.perf_counter() - start


def _stages(
    mutant: Mutant,
    covering: list[str] | None,
    stages: int,
    thorough: bool,
    tests_given: list[str] | None,
) -> list[tuple[str, list[str]]]:
    """The (name, tests) stages for one mutant: just `tests_given` when set, else the first
    `stages` of covering → mirrored → importing."""
    if tests_given:
        return [("given", tests_given)]
    first = mirrored_tests(mutant.path)
    rest = [t for t in importing_tests(mutant.path, thorough=thorough) if t not in first]
    # Stage 1 runs the covering tests of the mirrored files first: they kill most often.
    covering = sorted(covering or [], key=lambda t: t.partition("::")[0] not in first)
    return [("covering", covering), ("mirrored", first), ("importing", rest)][:stages]


# ---------------------------------------------------------------- which tests run a line
COVERAGE_FILE = REPO / ".mutation-coverage"


def build_coverage_map(path: Path, jobs: int, thorough: bool) -> None:
    """Run the (non-slow) suite once under coverage with one context per test, into `path`.
    The unmutated suite must pass: a test that already fails would "kill" every mutant."""
    tests = test_files(thorough=thorough)
    path.unlink(missing_ok=True)
    env = dict(os.environ, COVERAGE_FILE=str(path))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(jobs)]
    command += ["--dist", "loadfile", "--cov=funcnn", "--cov-context=test", "--cov-report="]
    print(f"building the coverage map {path.name} over {len(tests)} test files …", flush=True)
    result = subprocess.run([*command, *tests], cwd=REPO, env=env)
    if result.returncode != 0:
        path.unlink(missing_ok=True)
        raise SystemExit(
            f"the unmutated suite does not pass (pytest exit {result.returncode}); fix it first"
        )


def read_coverage_map(path: Path) -> dict[str, dict[int, set[str]]]:
    """{repo-relative file: {line: ids of the tests that executed it}}. A line run only while
    importing (no test context) maps to no test. A line run while a fixture was set up maps
    to the test's whole file: a module-scoped fixture is built in the first test's setup, yet
    what it computes is checked by every test of the file."""
    from coverage import CoverageData

    data = CoverageData(basename=str(path))
    data.read()
    out: dict[str, dict[int, set[str]]] = {}
    for filename in data.measured_files():
        try:
            rel = str(Path(filename).resolve().relative_to(REPO))
        except ValueError:
            continue
        out[rel] = {
            line: {_context_target(c) for c in contexts if c}
            for line, contexts in data.contexts_by_lineno(filename).items()
        }
    return out


def _context_target(context: str) -> str:
    """pytest-cov's `tests/test_x.py::test_y[p]|run` → the node id; `…|setup` → the file."""
    node, _, phase = context.partition("|")
    return node.partition("::")[0] if phase == "setup" else node


def covering_tests(mutant: Mutant, coverage_map: dict[str, dict[int, set[str]]]) -> list[str]:
    """The ids of the tests that executed any line of the mutated node, sorted."""
    by_line = coverage_map.get(mutant.path, {})
    found: set[str] = set()
    for line in range(mutant.line, max(mutant.line, mutant.end_line) + 1):
        found |= by_line.get(line, set())
    whole = {t for t in found if "::" not in t}  # files chosen whole: drop their single tests
    return sorted(t for t in found if t in whole or t.partition("::")[0] not in whole)


# ---------------------------------------------------------------- the command line
def core_files(modules: list[str]) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for module in modules:
        found: list[Path] = []
        for entry in CORE[module]:
            path = REPO / entry
            if path.is_dir():
                found += sorted(p for p in path.rglob("*.py"))
            elif path.exists():
                found.append(path)
        files[module] = found
    return files


def read_equivalents() -> dict[str, str]:
    if not EQUIVALENT_FILE.exists():
        return {}
    out = {}
    for line in EQUIVALENT_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            mutant_id, _, reason = line.partition("  ")
            out[mutant_id.strip()] = reason.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--modules", nargs="+", choices=list(CORE), default=list(CORE))
    p.add_argument(
        "--sample", type=cli.nonnegative_int, default=0, help="mutants per module (0: all)"
    )
    p.add_argument("--seed", type=cli.nonnegative_int, default=0, help="for --sample")
    p.add_argument("--jobs", type=cli.positive_int, default=2, help="parallel worker processes")
    p.add_argument(
        "--timeout", type=cli.positive_float, default=300.0, help="seconds per pytest run"
    )
    p.add_argument("--thorough", action="store_true", help="second stage includes SLOW_TESTS")
    p.add_argument("--list", type=Path, metavar="FILE", help="print FILE's mutants and exit")
    p.add_argument(
        "--rebuild-coverage",
        action="store_true",
        help=f"rebuild the coverage map ({COVERAGE_FILE.name}) first; it is built when absent",
    )
    p.add_argument("--no-coverage", action="store_true", help="skip stage 1 (no coverage map)")
    p.add_argument(
        "--tests",
        nargs="+",
        metavar="TEST",
        help="run just these test files/ids instead of the stages (e.g. to check that a new "
        "test kills a survivor: --only ID --tests tests/test_new.py); a pass is 'survived'",
    )
    p.add_argument(
        "--stages",
        type=int,
        choices=(1, 2, 3),
        default=3,
        help="run stages 1..N only (--stages 1: just the covering tests — a quick first pass "
        "whose survivors are unconfirmed: stages 2-3 might still kill them, so its score "
        "errs low)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="ID",
        help="run just these mutant ids (e.g. the survivors of an earlier run); "
        "--modules/--sample still choose the modules, ids listed as equivalent are skipped",
    )
    return p


# Flags that would be silently ignored beside another one: (flag, the flag it needs absent
# or present, why).
_CONFLICTS = [
    ("rebuild_coverage", "no_coverage", "--no-coverage skips the coverage map it would rebuild"),
    ("tests", "stages", "--tests runs the chosen tests instead of the stages"),
    ("tests", "thorough", "--tests runs the chosen tests instead of the stages"),
    ("tests", "rebuild_coverage", "--tests neither builds nor reads the coverage map"),
    ("tests", "no_coverage", "--tests neither builds nor reads the coverage map"),
]


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    given = cli.explicit_flags(build_parser, argv)
    for a, b, why in _CONFLICTS:
        if {a, b} <= given:
            p.error(
                f"--{a.replace('_', '-')} and --{b.replace('_', '-')} exclude each other: {why}."
            )
    if "seed" in given and not args.sample:
        p.error("--seed draws the --sample; without --sample every mutant runs (drop --seed).")
    if args.list and given - {"list"}:
        p.error("--list prints a file's mutants and exits: it takes no other flag.")

    if args.list:
        for mutant in candidates(args.list.resolve()):
            print(mutant.id)
        return 0
    equivalents = read_equivalents()
    plan: list[tuple[str, Mutant]] = []
    sources: dict[str, str] = {}  # the text every mutant of a file is planted in
    excluded: dict[str, int] = {}
    for module, files in core_files(args.modules).items():
        mutants = []
        for f in files:
            source = sources[str(f.relative_to(REPO))] = f.read_text()
            mutants += candidates(f, source)
        # Sample first, then drop the equivalents: listing a survivor as equivalent must not
        # change which mutants the same --seed draws (so a rerun is comparable).
        if args.sample and len(mutants) > args.sample:
            mutants = random.Random(f"{args.seed}:{module}").sample(mutants, args.sample)
        if args.only:
            mutants = [m for m in mutants if m.id in args.only]
        excluded[module] = sum(m.id in equivalents for m in mutants)
        plan += [(module, m) for m in mutants if m.id not in equivalents]
    if args.only:
        missing = set(args.only) - {m.id for _, m in plan} - set(equivalents)
        for mutant_id in sorted(missing):
            print(f"warning: no mutant {mutant_id} in the chosen modules/sample", file=sys.stderr)
    coverage_map: dict[str, dict[int, set[str]]] = {}
    if plan and not (args.no_coverage or args.tests):  # --tests replaces the stages
        if args.rebuild_coverage or not COVERAGE_FILE.exists():
            build_coverage_map(COVERAGE_FILE, args.jobs, args.thorough)
        coverage_map = read_coverage_map(COVERAGE_FILE)
    print(f"{len(plan)} mutants over {len(args.modules)} modules, {args.jobs} workers", flush=True)

    results: dict[str, dict[str, list[Mutant]]] = {m: {} for m in args.modules}
    owner = {m.id + f"#{m.index}": module for module, m in plan}
    base = Path(tempfile.mkdtemp(prefix="funcnn-mutant-"))
    try:
        with concurrent.futures.ProcessPoolExecutor(args.jobs) as pool:
            futures = [
                pool.submit(
                    run_mutant,
                    m,
                    sources[m.path],
                    args.timeout,
                    args.thorough,
                    base,
                    covering_tests(m, coverage_map),
                    args.stages,
                    args.tests,
                )
                for _, m in plan
            ]
            for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
                mutant, status, seconds = future.result()
                module = owner[mutant.id + f"#{mutant.index}"]
                results[module].setdefault(status, []).append(mutant)
                print(f"[{done}/{len(plan)}] {status:8s} {seconds:5.1f}s {mutant.id}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print("\nmodule        killed  survived  timeout  stale  equivalent  score  (stale: + error)")
    worst = 1.0
    for module, by_status in results.items():
        killed, survived, timeout, stale, error = (
            len(by_status.get(s, [])) for s in ("killed", "survived", "timeout", "stale", "error")
        )
        total = killed + survived + timeout
        score = killed / total if total else 1.0
        worst = min(worst, score)
        shown = f"{100 * score:5.1f}%" if total else "  n/a"
        print(
            f"{module:12s} {killed:7d} {survived:9d} {timeout:8d} {stale + error:6d} "
            f"{excluded[module]:11d}  {shown}"
        )
    for by_status in results.values():
        for status in ("survived", "timeout", "stale", "error"):
            for mutant in sorted(by_status.get(status, []), key=lambda m: (m.path, m.line)):
                print(f"{status}: {mutant.id}")
    print(f"\n{len(equivalents)} mutants listed as equivalent in {EQUIVALENT_FILE.name} (excluded)")
    return 0 if worst >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
