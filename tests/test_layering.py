"""The house's floors hold (docs/01-architecture.md, "Seams"): the components the broker
wires -- controller, coordinators, replication -- and everything below them never
import the broker or the handlers, not even for type checking; they see the broker
only through the interfaces of :mod:`moldau.ports`. No import cycle spans two
packages. The static checks read every ``import`` of ``src/moldau`` (also those under
``TYPE_CHECKING`` and inside functions); one more imports the components in a fresh
interpreter; and the broker is checked to offer every member the seams declare."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import moldau
from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.metastore.memory import MemoryMetaStore
from moldau.ports import ControllerHost, GroupCoordinatorHost, ReplicaHost, TxnMarkerHost

SRC = Path(moldau.__file__).parent
#: what the broker wires, and what they stand on
BELOW_THE_BROKER = (
    "moldau.controller", "moldau.coordinator", "moldau.replication", "moldau.ports",
    "moldau.metastore", "moldau.storage", "moldau.records", "moldau.protocol", "moldau.config",
)
ABOVE = ("moldau.broker", "moldau.handlers", "moldau.cli")


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = ["moldau", *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


@functools.cache
def _import_graph() -> dict[str, set[str]]:
    """Each module of moldau -> the moldau modules it imports, anywhere in its text."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                for alias in node.names:  # `from package import module` names a module
                    full = f"{source}.{alias.name}"
                    targets.add(full if full in modules else source)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_the_import_graph_is_read():
    graph = _import_graph()
    # a guard for the checks below: the reader finds the broker's own imports
    assert "moldau.controller.controller" in graph["moldau.broker.broker"]
    assert "moldau.ports" in graph["moldau.controller.controller"]


def test_nothing_below_the_broker_imports_it():
    offending = sorted(
        f"{module} imports {target}"
        for module, targets in _import_graph().items()
        if _within(module, BELOW_THE_BROKER)
        for target in targets
        if _within(target, ABOVE)
    )
    assert not offending, (
        "a component reaches up to the broker; give it an interface in moldau.ports "
        "and let the broker pass itself in:\n" + "\n".join(offending)
    )


def test_no_import_cycle_spans_two_packages():
    graph = _import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len({".".join(m.split(".")[:2]) for m in component}) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles across packages: {cycles}"


def test_the_components_import_without_the_broker():
    code = (
        "import sys\n"
        "import moldau.controller.controller, moldau.controller.election\n"
        "import moldau.coordinator.group, moldau.coordinator.producer_ids\n"
        "import moldau.replication.manager, moldau.ports\n"
        "print(sorted(m for m in sys.modules if m.startswith(('moldau.broker', 'moldau.handlers'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_broker_offers_every_seam(tmp_path):
    broker = Broker(BrokerConfig({}), tmp_path, MemoryMetaStore(), Endpoint("127.0.0.1", 9))
    for seam in (ControllerHost, GroupCoordinatorHost, ReplicaHost, TxnMarkerHost):
        assert isinstance(broker, seam), seam.__name__
    assert broker.group_coordinator in broker.leadership_listeners


def test_the_seams_stand_on_the_ground_floor():
    ground = ("moldau.config", "moldau.metastore", "moldau.storage", "moldau.protocol")
    above = sorted(t for t in _import_graph()["moldau.ports"] if not _within(t, ground))
    assert not above, f"moldau.ports must not depend on the components it describes: {above}"
