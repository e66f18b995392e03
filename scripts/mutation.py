"""scripts/mutation: mutmut, one group of modules at a time, each with the tests that pin it.

The groups (modules, tests, deselected tests, why) are data: scripts/mutation_groups.toml. Each
group runs in its own scratch copy, mutants/groups/<name>/ (git-ignored): symlinks to the tree,
and a pyproject.toml whose [tool.mutmut] is the repository's with the group's only_mutate and test
selection. mutmut works in ./mutants of that copy, so each group keeps its own stats and verdicts.
A group whose mutated source files changed since its last run starts over (mutmut never recopies a
file it already has). Then one table: per module killed / total / score, the group and its tests.

Equivalent mutants (no test can tell them from the code) are data too:
scripts/mutation_equivalents.toml, each by name with the reason. The table shows the raw score,
killed / total, and the mutation score in its usual sense, killed / (total - equivalent), where
only a listed mutant that was not killed counts as equivalent; a listed mutant that was killed, or
that no longer exists (its code changed), is reported as a stale listing to remove or re-check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUPS_FILE = ROOT / "scripts" / "mutation_groups.toml"
EQUIVALENTS_FILE = ROOT / "scripts" / "mutation_equivalents.toml"
SCRATCH = ROOT / "mutants" / "groups"
MUTMUT = ROOT / ".venv" / "bin" / "mutmut"
# Killed, timed out (a mutant that loops forever) and caught by the type check all count as killed;
# "no tests" and "not checked" count as not killed, so a score is never flattered.
KILLED = {"killed", "timeout", "caught by type check"}
# The top level of the tree the scratch copy links to; mutants/ is the scratch, pyproject.toml is written.
NOT_LINKED = {"mutants", "pyproject.toml", ".git", ".venv", ".hypothesis", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


@dataclass(frozen=True)
class Group:
    name: str
    modules: list[str]  # only_mutate patterns: "backends/sse.py", "transforms/*"
    tests: list[str]
    deselect: list[str]
    why: str

    @property
    def dotted(self) -> list[str]:
        """The modules as mutmut names them: backends/sse.py -> backends.sse, transforms/* -> transforms."""
        return [_dotted(module) for module in self.modules]

    @property
    def selection(self) -> list[str]:
        return [*self.tests, *(arg for test in self.deselect for arg in ("--deselect", test))]

    @property
    def workdir(self) -> Path:
        return SCRATCH / self.name


def _dotted(module: str) -> str:
    module = module.removesuffix("*").removesuffix("/").removesuffix(".py")
    return module.replace("/", ".")


def load_groups() -> list[Group]:
    data = tomllib.loads(GROUPS_FILE.read_text("utf-8"))
    return [
        Group(name, list(spec["modules"]), list(spec["tests"]), list(spec.get("deselect", [])), " ".join(spec["why"].split()))
        for name, spec in data["groups"].items()
    ]


def wanted_by_group(groups: list[Group], args: list[str]) -> dict[str, list[str]]:
    """Which dotted modules to run, per group: every module of every group when no module is named."""
    if not args:
        return {group.name: group.dotted for group in groups}
    wanted: dict[str, list[str]] = defaultdict(list)
    for arg in args:
        name = _module_of(arg) if "__mutmut_" in arg else _dotted(arg)  # a mutant's name stands for its module here
        found = False
        for group in groups:
            for module in group.dotted:
                # a named folder takes its modules; a named module inside a folder group takes just that module
                if module == name or module.startswith(name + ".") or name.startswith(module + "."):
                    wanted[group.name].append(name if name.startswith(module) else module)
                    found = True
        if not found:
            sys.exit(f"scripts/mutation: {arg} is in no group of {GROUPS_FILE.relative_to(ROOT)}")
    return {name: sorted(set(modules)) for name, modules in wanted.items()}


def _toml_value(value: object) -> str:
    return json.dumps(value) if isinstance(value, (list, str)) else repr(value).lower() if isinstance(value, bool) else repr(value)


def group_pyproject(group: Group) -> str:
    """The repository's pyproject.toml with [tool.mutmut] narrowed to the group."""
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    settings = dict(tomllib.loads(text)["tool"]["mutmut"])
    settings["only_mutate"] = group.modules
    settings["pytest_add_cli_args_test_selection"] = group.selection
    section = "[tool.mutmut]\n" + "".join(f"{key} = {_toml_value(value)}\n" for key, value in settings.items()) + "\n"
    return re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[)", lambda _: section, text, count=1)


def sources_digest(group: Group) -> str:
    digest = hashlib.sha256()
    for pattern in group.modules:
        paths = sorted(ROOT.glob(pattern.replace("*", "**/*.py"))) if pattern.endswith("*") else [ROOT / pattern]
        for path in paths:
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def prepare(group: Group) -> None:
    workdir = group.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        link = workdir / entry.name
        if entry.name not in NOT_LINKED and not link.is_symlink():
            link.symlink_to(entry)
    (workdir / "pyproject.toml").write_text(group_pyproject(group), "utf-8")
    digest_file = workdir / "sources.sha256"
    digest = sources_digest(group)
    if digest_file.exists() and digest_file.read_text() != digest and (workdir / "mutants").exists():
        print(f"[{group.name}] its mutated sources changed since its last run: starting over", file=sys.stderr)
        shutil.rmtree(workdir / "mutants")
    digest_file.write_text(digest)


def to_run(group: Group, modules: list[str], mode: str) -> list[str]:
    """What to hand mutmut: the modules' patterns (every mutant of them), or the names of some of their mutants.

    mutmut reruns every mutant it is given by name or pattern, and only those; so by default (``resume``) a
    group that has verdicts gets the names of its mutants not checked yet, ``survivors`` adds every mutant
    not killed (to re-check them after adding rows), and ``rerun`` (or a group never run) gets the patterns.
    """
    verdicts = results(group) if mode != "rerun" else {}
    if not verdicts:
        return [f"{module}.*" for module in modules]
    return [
        name
        for name, status in verdicts.items()
        if _in(_module_of(name), modules) and (status == "not checked" or (mode == "survivors" and status not in KILLED))
    ]


def _module_of(mutant: str) -> str:
    return mutant.split("__mutmut_")[0].rsplit(".", 1)[0]


def _in(module: str, modules: list[str]) -> bool:
    return any(module == wanted or module.startswith(wanted + ".") for wanted in modules)


def run(group: Group, modules: list[str], children: str, mode: str, mutants: list[str]) -> float:
    prepare(group)
    targets = [mutant for mutant in mutants if _in(_module_of(mutant), modules)] or to_run(group, modules, mode)
    if not targets:
        print(f"[{group.name}] nothing to run: every mutant of {' '.join(modules)} has a verdict (--survivors, --rerun)", file=sys.stderr)
        return 0.0
    log = group.workdir / "run.log"
    what = " ".join(targets) if all(target.endswith(".*") for target in targets) else f"{len(targets)} mutants of {' '.join(modules)}"
    print(
        f"[{group.name}] mutmut run over {what}; tests: {' '.join(group.selection)} (console output: {log.relative_to(ROOT)})",
        file=sys.stderr,
    )
    started = time.monotonic()
    with log.open("wb") as out:
        status = subprocess.call(
            [str(MUTMUT), "run", "--max-children", children, *targets],
            cwd=group.workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    elapsed = time.monotonic() - started
    if status != 0:
        lines = log.read_text("utf-8", "replace").replace("\r", "\n").splitlines()
        print(f"[{group.name}] mutmut run failed (exit {status}); the end of {log}:", file=sys.stderr)
        print("\n".join(line for line in lines if not re.match(r"[\u2800-\u28ff] ", line))[-3000:], file=sys.stderr)
        sys.exit(status)
    print(f"[{group.name}] done in {elapsed / 60:.1f} min", file=sys.stderr)
    return elapsed


def results(group: Group) -> dict[str, str]:
    """mutmut's verdict per mutant name (``backends.sse.x__line__mutmut_4``), from the group's last run."""
    if not (group.workdir / "mutants").exists():
        return {}
    prepare(group)
    listing = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=group.workdir, capture_output=True, text=True, check=True)
    verdicts = {}
    for line in listing.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            verdicts[name] = status
    return verdicts


def load_equivalents() -> dict[str, str]:
    """Mutant name -> why it is equivalent (scripts/mutation_equivalents.toml: [equivalent] "name" = "why")."""
    if not EQUIVALENTS_FILE.exists():
        return {}
    return dict(tomllib.loads(EQUIVALENTS_FILE.read_text("utf-8")).get("equivalent", {}))


def report(groups: list[Group], wanted: dict[str, list[str]], elapsed: dict[str, float]) -> None:
    equivalents = load_equivalents()
    rows = []
    survivors: dict[str, list[str]] = defaultdict(list)
    stale: list[str] = []
    for group in groups:
        if group.name not in wanted:
            continue
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        listed: dict[str, int] = defaultdict(int)
        verdicts = results(group)
        for name, status in verdicts.items():
            module = _module_of(name)
            if _in(module, wanted[group.name]):
                counts[module][status] += 1
                if name in equivalents:
                    if status in KILLED:
                        stale.append(f"{name}: listed as equivalent but {status} (remove it from the list)")
                    elif status == "survived":
                        listed[module] += 1
                elif status not in KILLED:
                    survivors[f"{module} (group {group.name}: cd mutants/groups/{group.name})"].append(f"{name} ({status})")
        for name in equivalents:
            if _in(_module_of(name), wanted[group.name]) and name not in verdicts and verdicts:
                stale.append(f"{name}: listed as equivalent but no such mutant (its code changed: re-check)")
        for module in wanted[group.name]:
            if not any(m == module or m.startswith(module + ".") for m in counts):
                print(f"no mutants found for {module} in group {group.name} (never run?)", file=sys.stderr)
        for module in sorted(counts):
            total = sum(counts[module].values())
            killed = sum(n for status, n in counts[module].items() if status in KILLED)
            rows.append((module, killed, total, listed[module], counts[module].get("not checked", 0), group.name))
    width = max([len(row[0]) for row in rows] + [6])
    print(f"{'module':<{width}}  {'killed':>6}  {'total':>5}  {'raw':>7}  {'equivalent':>10}  {'score':>7}  {'not checked':>11}  group")
    for module, killed, total, equivalent, unchecked, group_name in rows:
        raw = f"{100 * killed / total:5.1f} %" if total else "-"
        score = f"{100 * killed / (total - equivalent):5.1f} %" if total > equivalent else "-"
        print(f"{module:<{width}}  {killed:>6}  {total:>5}  {raw:>7}  {equivalent:>10}  {score:>7}  {unchecked:>11}  {group_name}")
    all_killed, all_total, all_equivalent = sum(row[1] for row in rows), sum(row[2] for row in rows), sum(row[3] for row in rows)
    if all_total:
        print(
            f"{'all':<{width}}  {all_killed:>6}  {all_total:>5}  {100 * all_killed / all_total:5.1f} %  {all_equivalent:>10}  "
            f"{100 * all_killed / (all_total - all_equivalent):5.1f} %"
        )
    print("\nraw = killed / total; score = killed / (total - equivalent): equivalent mutants are listed, each with")
    print(f"its reason, in {EQUIVALENTS_FILE.relative_to(ROOT)}")
    print("\ntests per group (pytest arguments; with pyproject.toml [tool.mutmut] pytest_add_cli_args):")
    for group in groups:
        if group.name in wanted:
            took = f" (this run: {elapsed[group.name] / 60:.1f} min)" if group.name in elapsed else ""
            print(f"  {group.name}{took}: {' '.join(group.selection)}\n    why: {group.why}")
    for module in sorted(survivors):
        print(f"\nnot killed and not listed as equivalent in {module}, read one there with ../../../{MUTMUT.relative_to(ROOT)} show NAME:")
        for entry in survivors[module]:
            print(f"  {entry}")
    if stale:
        print("\nstale listings in " + str(EQUIVALENTS_FILE.relative_to(ROOT)) + ":")
        for entry in stale:
            print(f"  {entry}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/mutation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "modules",
        nargs="*",
        help="pipeline/envsubst, backends/sse.py, pipeline.refs, transforms/ (default: every group); or mutants by name, run again whatever their verdict",
    )
    parser.add_argument("--report", action="store_true", help="only the table, from the last run's verdicts")
    parser.add_argument("--groups", action="store_true", help="list the groups, their modules and tests, and stop")
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--survivors", action="store_true", help="run again every mutant not killed (after adding rows), and those not run yet"
    )
    how.add_argument("--rerun", action="store_true", help="run every mutant of the modules again (default: only those without a verdict)")
    args = parser.parse_args()
    groups = load_groups()
    if args.groups:
        for group in groups:
            print(f"{group.name}: {' '.join(group.modules)}\n  tests: {' '.join(group.selection)}\n  why: {group.why}")
        return
    wanted = wanted_by_group(groups, args.modules)
    elapsed = {}
    if not args.report:
        children = os.environ.get("MUTATION_CHILDREN", "1")
        mode = "survivors" if args.survivors else "rerun" if args.rerun else "resume"
        for group in groups:
            if group.name in wanted:
                elapsed[group.name] = run(group, wanted[group.name], children, mode, [arg for arg in args.modules if "__mutmut_" in arg])
    report(groups, wanted, elapsed)


if __name__ == "__main__":
    main()
