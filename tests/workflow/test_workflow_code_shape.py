"""The shape of the code itself: function and module sizes (``tools/check_sizes.py``), and config
read from one source of truth (the schema and the shipped configs; no defaults in the code)."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_no_long_function_or_module_in_src() -> None:
    """No function over 60 lines and no module over 400 in src/, except the listed files."""
    sizes = _tool("check_sizes")
    violations, stale = sizes.check_tree(REPO / "src")
    assert not violations, "\n".join(map(str, violations))
    assert not stale, f"ALLOWED entries no longer needed, remove them: {stale}"


def test_size_check_finds_long_functions_and_modules(tmp_path: Path) -> None:
    sizes = _tool("check_sizes")
    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True)
    body = "".join(f"        x{i} = {i}\n" for i in range(60))
    (pkg / "long.py").write_text(f"class A:\n    def method(self):\n{body}        return 0\n")
    (pkg / "fits.py").write_text("def f():\n" + "\n".join(["    pass"] * 59) + "\n")
    (pkg / "big.py").write_text("\n".join(f"X{i} = {i}" for i in range(401)) + "\n")
    found = {(v.path, v.name, v.length) for v in sizes.check_tree(tmp_path / "src")[0]}
    assert found == {("src/pkg/long.py", "A.method", 62), ("src/pkg/big.py", "module", 401)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "check_sizes.py"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "A.method has 62 lines (limit 60)" in proc.stdout


# ------------------------------------------------------------------ config: one source of truth

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
SHIPPED = ("config.yaml", "smoke.yaml", "pythia.yaml", "lds.yaml")
CONFIG_NAMES = {"cfg", "section", "config", "report", "settings", "block"}
# Modules allowed to read config with .get: the validator reads a config not yet validated, and
# files others are editing right now (remove an entry when its file is fixed).
GET_ALLOWED = {
    "llm_influence/workflow/config.py": "checks a raw config before the schema has validated it",
    "llm_influence/counterfactual/spec.py": "issue 11 adds the counterfactual config section",
    "llm_influence/attribution/stage.py": "lead editing (scores.* keys)",
}


def _schema_paths(schema: dict, prefix: tuple[str, ...] = ()):
    """Every key path the schema defines through nested ``properties``."""
    for key, sub in (schema.get("properties") or {}).items():
        yield (*prefix, key)
        yield from _schema_paths(sub, (*prefix, key))


def _schema_names(node) -> set[str]:
    """Every key the schema defines anywhere (also inside anyOf/oneOf and map values)."""
    names = set()
    if isinstance(node, dict):
        names |= set(node.get("properties") or {})
        for value in node.values():
            names |= _schema_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _schema_names(value)
    return names


def test_every_schema_key_has_a_value_in_the_shipped_configs() -> None:
    for name in SHIPPED:
        cfg = yaml.safe_load((REPO / "config" / name).read_text())
        missing = []
        for path in _schema_paths(SCHEMA):
            node = cfg
            for key in path:
                if not isinstance(node, dict) or key not in node:
                    missing.append(".".join(path))
                    break
                node = node[key]
        assert not missing, f"config/{name} writes no value for {missing}"


def _receiver(node: ast.AST) -> str | None:
    """The config-looking name an expression reads from (``cfg``, ``ctx.section(...)``, ...)."""
    if isinstance(node, ast.Name):
        return node.id if node.id in CONFIG_NAMES else None
    if isinstance(node, ast.Attribute):
        return node.attr if node.attr in CONFIG_NAMES else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return "section()" if node.func.attr == "section" else None
    if isinstance(node, ast.Subscript):
        return _receiver(node.value)
    return None


def _config_reads(tree: ast.AST):
    """(line, kind, key) of each ``<config>[...]`` and ``<config>.get(...)`` in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _receiver(node.value):
            key = node.slice.value if isinstance(node.slice, ast.Constant) else None
            yield node.lineno, "index", key
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and _receiver(node.func.value)
        ):
            yield node.lineno, "get", ast.unparse(node)


def _src_modules():
    src = REPO / "src"
    for path in sorted(src.rglob("*.py")):
        yield path.relative_to(src).as_posix(), ast.parse(path.read_text())


def test_no_config_fallback_defaults_in_src() -> None:
    """Config is indexed, never ``.get(key, default)``: the schema requires every key, so a
    default in the code could only disagree with config/config.yaml."""
    found = [
        f"src/{rel}:{line}: {code}"
        for rel, tree in _src_modules()
        if rel not in GET_ALLOWED
        for line, kind, code in _config_reads(tree)
        if kind == "get"
    ]
    assert not found, "config read with a fallback:\n" + "\n".join(found)


def test_code_reads_only_keys_the_schema_defines() -> None:
    """Every literal key read from a config section names a key of the schema."""
    known = _schema_names(SCHEMA)
    unknown = [
        f"src/{rel}:{line}: {key!r}"
        for rel, tree in _src_modules()
        if rel != "llm_influence/workflow/config.py"
        for line, kind, key in _config_reads(tree)
        if kind == "index" and isinstance(key, str) and key not in known
    ]
    assert not unknown, "config keys the schema does not define:\n" + "\n".join(unknown)


def test_config_dataclasses_have_exactly_the_schema_keys() -> None:
    """Sections read into dataclasses: every field is a schema key of its section and back."""
    from llm_influence.corpus.hf import HFConfig
    from llm_influence.corpus.synthetic import SyntheticConfig
    from llm_influence.models.spec import ModelSpec, TokenizerSpec, TrainSpec
    from llm_influence.validation.config import ValidationConfig

    props = SCHEMA["properties"]
    model_keys = _schema_names(props["pretrain"]["properties"]["models"])
    sections = {
        TokenizerSpec: set(props["tokenizer"]["properties"]),
        TrainSpec: set(props["pretrain"]["properties"]),
        SyntheticConfig: set(props["corpus"]["properties"]["synthetic"]["properties"]),
        HFConfig: set(props["corpus"]["properties"]["hf"]["properties"]),
        ValidationConfig: set(props["studies"]["properties"]["validation"]["properties"]),
        ModelSpec: model_keys,
    }
    for cls, keys in sections.items():
        assert {f.name for f in dataclasses.fields(cls)} == keys, cls.__name__


# ------------------------------------------------------------------ code= lists of the rules

PACKAGE = REPO / "src" / "llm_influence"


def _module_file(name: str) -> Path | None:
    """The file of module ``llm_influence.<...>`` (a package's ``__init__.py``), or None."""
    path = REPO / "src" / Path(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


# Functions that only the Snakefile calls, at parse time (config checks before any job): the
# imports inside them are not run by a stage, so they are no code dependency of one.
PARSE_TIME = {
    "llm_influence.counterfactual.spec": {"n_leaveout_queries", "validate_counterfactual"},
}


def _imported(module: str, path: Path) -> set[str]:
    """Modules of the package that ``module`` imports anywhere (function bodies too; imports
    under ``if TYPE_CHECKING:`` do not run and do not count, nor those of :data:`PARSE_TIME`)."""
    out: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    skipped = PARSE_TIME.get(module, set())

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef) and child.name in skipped:
                continue
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parts, *([base] if base else [])])
                out.add(base)
                out.update(f"{base}.{a.name}" for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in out if m.split(".")[0] == "llm_influence" and _module_file(m)}


def _dynamic_imports(entry_module: str, function: str) -> set[str]:
    """What the studies' stage imports by name from the registry (importlib)."""
    from llm_influence.studies.registry import STUDIES, study

    if entry_module != "llm_influence.studies.stage":
        return set()
    if function == "summary":
        return {s.claims_module for s in STUDIES}
    return {study(function).module}


def import_closure(entry: str) -> set[Path]:
    """Files of every package module an entry point ``module:function`` runs through, with the
    ``__init__.py`` of every package on the way."""
    module, function = entry.split(":")
    todo, seen = [module, *_dynamic_imports(module, function)], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        todo += sorted(_imported(name, _module_file(name)))
    return {_module_file(m).relative_to(REPO) for m in seen}


def test_import_closure_follows_function_level_and_relative_imports() -> None:
    files = {p.as_posix() for p in import_closure("llm_influence.studies.stage:summary")}
    # summary imports studies.summary inside the function; that imports the claims of every study
    assert "src/llm_influence/studies/summary.py" in files
    assert "src/llm_influence/studies/sparsity.py" in files
    assert "src/llm_influence/__init__.py" in files
    assert not any("/influence/" in f for f in files)  # not imported: torch-free summary


@pytest.fixture(scope="module")
def jobs():
    """Every job of the default workflow (the DAG Snakemake builds, as dvc-sync reads it)."""
    from llm_influence.workflow.dvc_sync import workflow_jobs

    found = workflow_jobs(REPO)
    assert found and all(j.entry for j in found), [j.rule for j in found if not j.entry]
    return found


def test_every_rule_lists_the_code_its_entry_point_imports(jobs) -> None:
    """Each job's ``code`` input covers every package file its entry point imports, so an edit
    to any of them reruns the job (Snakemake) and changes its deps (DVC)."""
    missing = {}
    for job in jobs:
        listed = {Path(c) for c in job.code}
        lacking = sorted(str(p) for p in import_closure(job.entry) - listed)
        if lacking:
            missing[job.rule] = lacking
    assert not missing, f"code= lists lack files their entry point imports: {missing}"


def test_design_table_names_every_rule_and_its_entry(jobs) -> None:
    """docs/design.md "From the paper's steps to the code": a row per rule with its entry."""
    text = (REPO / "docs" / "design.md").read_text()
    section = text.split("## From the paper's steps to the code")[1].split("\n## ")[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 4 and cells[1] not in ("rule", "---"):
            rows[cells[1].split(" ")[0].strip("`")] = cells[2]
    for job in jobs:
        assert job.rule in rows, f"docs/design.md has no row for rule {job.rule}"
        wildcard = next(iter(job.wildcards), None)
        expected = job.entry
        if wildcard == "study":
            expected = job.entry.rsplit(":", 1)[0] + ":<study>"
        assert rows[job.rule] == expected, (job.rule, rows[job.rule], job.entry)
