"""The layers point down: a module imports only from its own layer or the layers below it.

Bottom to top (each package's ``__init__`` says its role in one sentence, as the README's Layout does):

0. ``schema``          KATO's data model: API models, names and hashes, config, settings, errors, DDL
1. ``schema.rules``    KATO's rules: learning, matching, query options, metrics, the reference engine and KATO
2. ``cluster.stores``  the engines: ClickHouse patterns, Redis statistics, sessions, the Redis adapter
3. ``actors``          the shard: index, filter stages, kernels, the stored shard and its Ray actor
4. ``serve_app``       the service: sessions, predictor, cluster backend, HTTP API, Serve deployment
5. ``cluster.ops``     the operator layer: launcher, CLI, transfer, benchmarks (the only code above the service)

Also: the HTTP layer (``serve_app.api``) imports none of the libraries whose errors the adapters translate,
and only the thin wrappers touch Ray, so the cores run without it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schema", "actors", "cluster", "serve_app")
LAYERS = ("schema", "schema.rules", "cluster.stores", "actors", "serve_app", "cluster.ops")
FOREIGN_ERRORS = ("ray", "redis", "clickhouse_connect", "chdb")
RAY_ALLOWED = ("actors.ray_shard", "serve_app.deployment", "cluster.ops")
NAMESPACES = ("cluster",)  # a folder holding two layers: its own __init__ imports nothing


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """The layer of one of our modules (the longest matching layer prefix), or None for a foreign module."""
    if module.split(".")[0] not in PACKAGES or module in NAMESPACES:
        return None
    matching = [i for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + ".")]
    if not matching:
        raise AssertionError(f"{module} belongs to no layer; add it to one of {LAYERS}")
    return max(matching, key=lambda i: len(LAYERS[i]))


def imports_of(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import in the source, at any depth (function-level imports count too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def our_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def violations(module: str, source: str) -> list[str]:
    own = layer_of(module)
    if own is None:
        return []
    out = []
    for line, target in imports_of(source):
        target_layer = layer_of(target) if target.split(".")[0] in PACKAGES else None
        if target_layer is not None and target_layer > own and not _is_package_of(target, module):
            out.append(f"{module}:{line} imports {target} ({LAYERS[target_layer]} is above {LAYERS[own]})")
    return out


def _is_package_of(target: str, module: str) -> bool:
    """``from cluster import ops`` style targets name a package; only the submodule itself is checked."""
    return module.startswith(target + ".")


def test_every_module_has_a_layer():
    for module, path in our_modules().items():
        if module in NAMESPACES:
            assert not imports_of(path.read_text()), f"{module}/__init__.py holds two layers: it imports nothing"
        else:
            assert layer_of(module) is not None


def test_imports_point_down():
    found = [v for module, path in our_modules().items() for v in violations(module, path.read_text())]
    assert not found, "imports that point up a layer:\n" + "\n".join(found)


def test_the_check_sees_an_import_that_points_up():
    assert violations("schema.naming", "from serve_app.service import KatoService\n") == [
        "schema.naming:1 imports serve_app.service (serve_app is above schema)",
        "schema.naming:1 imports serve_app.service.KatoService (serve_app is above schema)"]
    assert violations("actors.shard", "def f():\n    import cluster.ops.cli\n") == [
        "actors.shard:2 imports cluster.ops.cli (cluster.ops is above actors)"]
    assert violations("cluster.ops.cli", "from serve_app.service import KatoService\n") == []
    assert violations("cluster.stores.redis_kb", "from cluster.ops.ports import free_port\n")


@pytest.mark.parametrize("library", FOREIGN_ERRORS)
def test_the_http_layer_imports_no_engine_library(library: str):
    for module, path in our_modules().items():
        if module.startswith("serve_app.api"):
            imported = {target.split(".")[0] for _, target in imports_of(path.read_text())}
            assert library not in imported, f"{module} imports {library}: translate its errors in an adapter"


def test_only_the_thin_wrappers_import_ray():
    for module, path in our_modules().items():
        uses_ray = any(target.split(".")[0] == "ray" for _, target in imports_of(path.read_text()))
        if uses_ray:
            assert module.startswith(RAY_ALLOWED), f"{module} imports Ray; keep the cores plain classes"


def test_every_package_says_its_role():
    for package in {m for m, p in our_modules().items() if p.name == "__init__.py"}:
        doc = ast.get_docstring(ast.parse((ROOT / package.replace(".", "/") / "__init__.py").read_text()))
        assert doc, f"{package}/__init__.py has no docstring saying what the folder is for"
