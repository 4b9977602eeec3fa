"""The layering of docs/architecture.md holds: a lower layer never imports an upper one.

Every ``import`` in ``signalpost/`` counts, at the top of a module or inside a function:
an import moved into a function still makes the lower module depend on the upper one.
A lower layer that must let an upper one know something sends a signal. Each failure
names the file, the line and the two layers, so it says what to move.
"""

import ast
from pathlib import Path

import signalpost

PACKAGE = Path(signalpost.__file__).parent

# Bottom first. A module belongs to the layer of its longest listed prefix.
LAYERS = [
    (
        "infrastructure",
        [
            "signalpost",  # signalpost/__init__.py
            "signalpost.checks",
            "signalpost.conf",
            "signalpost.config",
            "signalpost.pages",
            "signalpost.dispatch",
            "signalpost.signals",
            "signalpost.introspection",
            "signalpost.logs",
            "signalpost.receivers",
            "signalpost.redaction",
            "signalpost.rows",
            "signalpost.durability",
            "signalpost.planner",
            "signalpost.ratelimit",
            "signalpost.uploads",
            "signalpost.mail",
            "signalpost.redis_cache",
            "signalpost.postgresql",
        ],
    ),
    ("durable", ["signalpost.durable"]),
    ("accounts", ["signalpost.accounts"]),
    ("newsletters", ["signalpost.newsletters"]),
    ("activity", ["signalpost.activity"]),
    ("publishing", ["signalpost.publishing"]),
    ("engagement", ["signalpost.engagement"]),
    ("webhooks", ["signalpost.webhooks"]),
    ("automations", ["signalpost.automations"]),
    ("privacy", ["signalpost.privacy"]),
    (
        "interface",
        [
            "signalpost.api",
            "signalpost.urls",
            "signalpost.public_urls",
            "signalpost.demo",
            "signalpost.management",
            "signalpost.settings",
            "signalpost.apps",
            "signalpost.wsgi",
            "signalpost.asgi",
            "signalpost.handlers",
            "signalpost.middleware",
            "signalpost.context_processors",
            "signalpost.health",
            "signalpost.security",
            "signalpost.cli",
            "signalpost.views",
        ],
    ),
]
# An app's modules that only translate (HTTP, admin, command line, templates) sit in the
# interface layer, whatever app they are in: they may call any app's services.
INTERFACE_MODULES = {"admin", "views", "urls", "forms", "feeds", "management", "templatetags"}

RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}
PREFIXES = sorted(
    ((prefix, name) for name, prefixes in LAYERS for prefix in prefixes),
    key=lambda item: -len(item[0]),
)


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module):
    parts = module.split(".")
    if len(parts) > 2 and set(parts[2:]) & INTERFACE_MODULES:
        return "interface"
    for prefix, name in PREFIXES:
        if module == prefix or module.startswith(prefix + "."):
            return name
    return None


def is_module(name):
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


def imports_of(path, module):
    """Yield ``(line, imported module, inside a function)`` for each signalpost import."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield child.lineno, alias.name, in_function
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    # "from signalpost import signals" imports the module signalpost.signals.
                    candidate = f"{base}.{alias.name}"
                    yield child.lineno, candidate if is_module(candidate) else base, in_function
            yield from visit(child, nested)

    for line, target, in_function in dict.fromkeys(visit(tree, False)):
        if target == "signalpost" or target.startswith("signalpost."):
            yield line, target, in_function


def source_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # history: a migration imports what existed when it was written
        yield path, module_name(path)


def where(path, line):
    return f"{path.relative_to(PACKAGE.parent)}:{line}"


def test_every_module_has_a_layer():
    unplaced = [module for _, module in source_modules() if layer_of(module) is None]
    assert not unplaced, "place these in LAYERS and docs/architecture.md: " + ", ".join(unplaced)


def test_no_layer_imports_a_layer_above_it():
    upward = []
    for path, module in source_modules():
        low = layer_of(module)
        for line, target, _ in imports_of(path, module):
            high = layer_of(target)
            if high is not None and RANK[high] > RANK[low]:
                upward.append(f"{where(path, line)} {module} ({low}) imports {target} ({high})")
    assert not upward, "\n" + "\n".join(upward)


def test_imports_inside_functions_are_only_the_two_sanctioned_kinds():
    """``AppConfig.ready()`` importing its app's receivers (Django connects them so), and a
    service queueing a task of its own app (the task module imports the services it
    wraps, so the service reaches for it when it runs). Any other import belongs at the
    top of its module, where a reader sees the dependency."""
    hidden = []
    for path, module in source_modules():
        app = module.rsplit(".", 1)[0]  # the package the module is in: its app
        for line, target, in_function in imports_of(path, module):
            if not in_function:
                continue
            connects_receivers = path.name == "apps.py" and target == f"{app}.receivers"
            queues_own_task = target == f"{app}.tasks" and path.stem in {"services", "selectors"}
            if not (connects_receivers or queues_own_task):
                hidden.append(f"{where(path, line)} {module} imports {target} in a function")
    assert not hidden, "\n" + "\n".join(hidden)


def test_only_persistence_modules_use_the_row_fast_paths():
    """``signalpost.rows`` (which reaches into Django's internals) and libpq are entered
    only from an app's persistence module (``writes.py``, or ``selectors.py`` for reads);
    services (and the import, and tasks) call those and never branch on ``_state`` or
    the database vendor."""
    misplaced = []
    for path, module in source_modules():
        for line, target, _ in imports_of(path, module):
            if target == "signalpost.rows" and path.stem not in {"writes", "selectors"}:
                misplaced.append(f"{where(path, line)} {module} imports signalpost.rows")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] + [getattr(node, "module", "")]
                if any((name or "").split(".")[0] == "psycopg" for name in names) and (
                    path.stem != "writes" and "postgresql" not in path.parts
                ):
                    misplaced.append(f"{where(path, node.lineno)} {module} imports psycopg")
            if (
                path.stem in {"services", "imports", "tasks"}
                and isinstance(node, ast.Attribute)
                and node.attr in {"_state", "vendor"}
            ):
                misplaced.append(f"{where(path, node.lineno)} {module} reads .{node.attr}")
    assert not misplaced, "\n" + "\n".join(misplaced)


def test_views_are_entered_only_through_urls():
    """A view is an endpoint, not a library: what two interfaces share (the client's
    address, its rate limit) lives in a module below both of them."""
    reached = []
    for path, module in source_modules():
        for line, target, _ in imports_of(path, module):
            if target.endswith(".views") and path.stem != "urls":
                reached.append(f"{where(path, line)} {module} imports {target}")
    assert not reached, "\n" + "\n".join(reached)
