"""The layout draws the data flow: a module imports only from its own layer
or lower ones, and bot/ has no import cycles.

Layers, lowest first (README "Layout"). A name is a package (``bot.ingest``)
or a top-level module (``bot.daemon``); imports inside functions count too.
"""
import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"

LAYERS = [
    ["bot", "bot.model", "bot.errors"],
    ["bot.config"],
    ["bot.sandbox", "bot.state", "bot.store"],
    ["bot.ingest"],
    ["bot.series"],
    ["bot.testrun"],
    ["bot.reply"],
    ["bot.commands", "bot.status"],
    ["bot.isolate"],
    ["bot.background", "bot.stages"],
    ["bot.web", "bot.daemon", "bot.check_cache", "bot.check", "bot.kernels", "bot.demo"],
    ["bot.cli"],
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def unit(module: str) -> str:
    """The layer unit a dotted module belongs to: its package under bot/, or itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else "bot"


def modules():
    for path in sorted(BOT.rglob("*.py")):
        rel = path.relative_to(BOT.parent).with_suffix("")
        if "data" in rel.parts and "demo" in rel.parts:
            continue  # the embedded sample tree is not the bot's code
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def imports(path: Path, module: str):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bot.") or alias.name == "bot":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; use bot.<package>"
            if node.module and (node.module == "bot" or node.module.startswith("bot.")):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    yield (full if (BOT.parent / full.replace(".", "/")).with_suffix(".py").exists()
                           or (BOT.parent / full.replace(".", "/")).is_dir() else node.module), node.lineno


def test_every_unit_of_bot_has_a_layer():
    missing = sorted({unit(m) for m, _ in modules()} - set(RANK))
    assert not missing, f"give these a layer in tests/test_layers.py and the README: {missing}"


def test_no_module_imports_a_higher_layer():
    wrong = []
    for module, path in modules():
        here = RANK[unit(module)]
        for target, line in imports(path, module):
            if unit(target) == "bot" and target != "bot":
                continue  # `from bot import __version__`
            if RANK.get(unit(target), 0) > here:
                wrong.append(f"{path.relative_to(BOT.parent)}:{line}: {module} imports {target}")
    assert not wrong, "a lower layer imports a higher one:\n" + "\n".join(wrong)


def test_bot_has_no_import_cycles():
    graph = {}
    for module, path in modules():
        graph[module] = {t for t, _ in imports(path, module) if t != module}
    names = set(graph)
    for module in graph:
        graph[module] = {t if t in names else t.rpartition(".")[0] for t in graph[module]} & names
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_every_module_says_what_it_is_for():
    silent = [str(path.relative_to(BOT.parent)) for _, path in modules()
              if not ast.get_docstring(ast.parse(path.read_text()))]
    assert not silent, f"modules without a first-line docstring: {silent}"


def test_modules_and_functions_stay_small():
    """A module over ~400 lines or a function over ~60 is a sign it does two jobs."""
    big = []
    for _, path in modules():
        src = path.read_text()
        if src.count("\n") > 400:
            big.append(f"{path.relative_to(BOT.parent)}: {src.count(chr(10))} lines")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) \
                    and node.end_lineno - node.lineno + 1 > 60:
                big.append(f"{path.relative_to(BOT.parent)}:{node.lineno}: {node.name} is "
                           f"{node.end_lineno - node.lineno + 1} lines")
    assert not big, "split these:\n" + "\n".join(big)
