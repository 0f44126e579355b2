"""The package's import structure: no cycle anywhere (function-local imports included), the
simulation infrastructure never reaches for the command line, and the shared modules of
``snnforge/`` know no family but through the registry."""

import ast
import importlib.util
import pkgutil
import re
import subprocess
import sys
from pathlib import Path



ROOT = Path(__file__).resolve().parent.parent


#: The package's top folders (the layout our users fixed); installed under ``snnforge``.
TOP = ("snnforge", "snnforge.hw", "snnforge.golden", "snnforge.sim", "snnforge.synth")


def modules() -> dict[str, Path]:
    """Every module of the installed ``snnforge`` package, by dotted name."""
    found = {}
    for top in TOP:
        package = importlib.import_module(top)
        found[top] = Path(package.__file__)
        for info in pkgutil.walk_packages(package.__path__, f"{top}."):
            spec = importlib.util.find_spec(info.name)
            if spec and spec.origin and spec.origin.endswith(".py"):
                found[info.name] = Path(spec.origin)
    return found


def imports_of(name: str, path: Path, known: set) -> set:
    """The package's modules that ``name`` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from pkg import name` imports the submodule pkg.name if there is one.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def test_no_import_cycles():
    found = modules()
    assert {"snnforge.cli", "snnforge.flows", "snnforge.hw.loas.driver",
            "snnforge.sim.runner"} <= set(found)
    graph = {name: imports_of(name, path, set(found)) for name, path in found.items()}
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_cycles(tmp_path):
    """The walk above sees function-local imports (the way cycles were hidden before)."""
    module = tmp_path / "a.py"
    module.write_text("def f():\n    from snnforge import cli\n")
    assert imports_of("snnforge.a", module, {"snnforge.cli", "snnforge.a"}) == {"snnforge.cli"}


def test_sim_never_imports_the_command_line():
    found = modules()
    for name, path in found.items():
        if name.startswith("snnforge.sim"):
            assert not imports_of(name, path, set(found)) & {"snnforge.cli", "snnforge.demo",
                                                             "snnforge.flows"}, name


def test_shared_modules_name_no_family_but_in_the_registry():
    """``grep -il loas snnforge/*.py`` finds only the registry."""
    mentions = [p.name for p in sorted((ROOT / "snnforge").glob("*.py"))
                if re.search("loas", p.read_text(), re.IGNORECASE)]
    assert mentions == ["registry.py"]


def test_running_a_job_imports_no_torch():
    """`snnforge run`'s two processes -- the command line with every generator and driver, and
    the simulator's job bench -- work in NumPy: torch (seconds to import) is the golden models'."""
    code = ("import sys; import snnforge.cli, snnforge.sim.job; "
            "from snnforge.registry import generators; generators(); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
