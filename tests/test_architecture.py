"""The package's shape: one installed namespace, layers that import one way, no import side effects."""
import ast
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
FOLDERS = {"rlstore": "rlstore", "pipelines": "rlstore.pipelines", "agents": "rlstore.agents",
           "datasets": "rlstore.datasets"}

# Which layer may import which. The store core is the ground floor; pipelines and agents stand
# on it side by side; the shipped datasets use the pipelines; the CLI and the main job sit on top.
ALLOWED = {
    "core": {"core"},
    "pipelines": {"core", "pipelines"},
    "agents": {"core", "agents"},
    "datasets": {"core", "pipelines", "datasets"},
    "top": {"core", "pipelines", "agents", "datasets", "top"},
}


def _module_name(path: Path) -> str:
    relative = path.relative_to(REPO).with_suffix("")
    parts = FOLDERS[relative.parts[0]].split(".") + list(relative.parts[1:])
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str:
    if module.startswith("rlstore.cli") or module in ("rlstore.demo", "rlstore.__main__"):
        return "top"
    for name in ("pipelines", "agents", "datasets"):
        if module == f"rlstore.{name}" or module.startswith(f"rlstore.{name}."):
            return name
    return "core"


def _project_modules() -> dict[str, Path]:
    return {_module_name(path): path for folder in FOLDERS for path in (REPO / folder).rglob("*.py")}


def _imports(path: Path) -> list[str]:
    """Every absolute import in the file, including those inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


def test_only_rlstore_is_installed_at_top_level(tmp_path):
    top_level = importlib.metadata.distribution("rlstore").read_text("top_level.txt")
    assert top_level is not None and top_level.split() == ["rlstore"]
    probe = ("import importlib.util, json; print(json.dumps({n: importlib.util.find_spec(n) is not None "
             "for n in ['rlstore', 'rlstore.pipelines.ingest', 'rlstore.agents.bc', 'rlstore.datasets.demonstrations', "
             "'pipelines', 'agents', 'datasets']}))")
    found = json.loads(subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                                      check=True).stdout)
    assert found == {"rlstore": True, "rlstore.pipelines.ingest": True, "rlstore.agents.bc": True,
                     "rlstore.datasets.demonstrations": True, "pipelines": False, "agents": False, "datasets": False}


def test_layers_import_one_way():
    modules = _project_modules()
    assert len(modules) > 100
    wrong = []
    for module, path in modules.items():
        for imported in _imports(path):
            if imported == "rlstore" or not imported.startswith("rlstore."):
                continue
            if _layer(imported) not in ALLOWED[_layer(module)]:
                wrong.append(f"{path.relative_to(REPO)} ({_layer(module)}) imports {imported} ({_layer(imported)})")
    assert not wrong, "\n".join(wrong)


def test_the_layer_check_sees_a_wrong_import():
    assert _layer("rlstore.agents.bc.learning") not in ALLOWED[_layer("rlstore.reading.readers")]
    assert _layer("rlstore.cli.store_commands") not in ALLOWED[_layer("rlstore.pipelines.ingest")]
    assert "rlstore.pipelines.ingest" in _imports(REPO / "rlstore" / "cli" / "store_commands.py")


_SNAPSHOT = """
import json, logging, os, importlib, warnings
import absl.logging
for name in json.loads(os.environ.pop("THIRD_PARTY")):  # their own import-time effects are not ours
    try:
        importlib.import_module(name)
    except ImportError:
        pass
def snapshot():
    loggers = {name: logging.getLogger(name).level for name in ("", "absl", "tensorflow", "apache_beam")}
    return {"env": dict(os.environ), "warnings": [repr(f) for f in warnings.filters], "loggers": loggers,
            "root_filters": len(logging.getLogger().filters), "absl": absl.logging.get_verbosity()}
names = json.loads(os.environ.pop("MODULES"))
before = snapshot()
for name in names:
    importlib.import_module(name)
after = snapshot()
print(json.dumps({"imported": len(names), "changed": {k: [before[k], after[k]] for k in before if before[k] != after[k]}}))
"""


def test_importing_the_library_changes_no_environment_warning_or_logger(tmp_path):
    modules = _project_modules()
    names = sorted(name for name in modules if name != "rlstore.__main__")
    third_party = sorted({imported.split(".")[0] for path in modules.values() for imported in _imports(path)
                          if not imported.startswith("rlstore")})
    result = subprocess.run([sys.executable, "-c", _SNAPSHOT], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MODULES": json.dumps(names),
                                 "THIRD_PARTY": json.dumps(third_party)})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["imported"] > 100
    assert report["changed"] == {}
