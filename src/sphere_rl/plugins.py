"""Loading user plug-in modules: ``--plugin my_module`` or ``--plugin path/to/file.py``.

A plug-in module registers methods and plug-ins when imported (see :mod:`sphere_rl.methods`'
``register_*`` functions and ``docs/extending.md``). The registries live in each process, so every
process that builds an agent imports the same modules: the CLI here, and each Ray worker of a
sweep, which receives :func:`plugin_locations` and calls :func:`import_plugin_locations`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any


class PluginError(ValueError):
    """A plug-in module that cannot be found or fails while being imported."""


def load_plugin(spec: str) -> ModuleType:
    """Import one plug-in: a module name (``my_pkg.plugins``, looked up on ``sys.path`` and in the
    current directory) or the path of a ``.py`` file.

    Raises:
        PluginError: naming the plug-in and what went wrong.
    """
    path = Path(spec)
    try:
        if spec.endswith(".py"):
            if not path.is_file():
                raise PluginError(f"plug-in file {spec} does not exist")
            return _import_file(path.resolve())
        if os.getcwd() not in sys.path and "" not in sys.path:
            # The `sphere` script's sys.path starts at its own bin/, not at the user's directory.
            sys.path.append(os.getcwd())
        return importlib.import_module(spec)
    except PluginError:
        raise
    except Exception as err:  # the module is missing, or its own code raised while registering
        missing = isinstance(err, ModuleNotFoundError) and err.name is not None
        if missing and (spec == err.name or spec.startswith(f"{err.name}.")):
            raise PluginError(
                f"plug-in {spec!r} not found: no module {err.name!r} on the Python path or in"
                " the current directory (give a module name or a .py file)"
            ) from None
        message = f"plug-in {spec!r} failed to import: {type(err).__name__}: {err}"
        raise PluginError(message) from err


def load_plugins(specs: Iterable[str]) -> list[ModuleType]:
    """:func:`load_plugin` for each spec, in order (a module is imported once however often named)."""
    return [load_plugin(spec) for spec in specs]


def _import_file(path: Path) -> ModuleType:
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    _check_not_shadowing(name, path)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"plug-in file {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _check_not_shadowing(name: str, path: Path) -> None:
    """Refuse a plug-in file named like another module (``json.py``): importing it would replace
    that module here, and a sweep's workers, which import plug-ins by name, would get the other
    module instead and miss the plug-in's methods."""
    other = sys.modules.get(name)
    origin = getattr(other, "__file__", None) if other is not None else None
    if other is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
        if spec is None or (origin is not None and Path(origin).resolve() == path):
            return
    raise PluginError(
        f"plug-in file {path} has the name of the module {name!r} ({origin or 'built in'}); rename"
        f" the file (e.g. {name}_plugin.py) so that both can be imported"
    )


def plugin_locations(modules: Sequence[ModuleType]) -> list[tuple[str, str]]:
    """``(module name, directory to put on sys.path)`` for each module: enough for another process
    on the same file system (a Ray worker) to import it exactly as this one did."""
    locations = []
    for module in modules:
        file = Path(module.__file__ or "").resolve()
        depth = module.__name__.count(".") + (1 if file.name == "__init__.py" else 0)
        root = file.parent
        for _ in range(depth):
            root = root.parent
        locations.append((module.__name__, str(root)))
    return locations


def import_plugin_locations(locations: Iterable[tuple[str, str]]) -> None:
    """Import what :func:`plugin_locations` described (in a worker process)."""
    for name, root in locations:
        if root not in sys.path:
            sys.path.append(root)
        importlib.import_module(name)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plugin_records(modules: Sequence[ModuleType]) -> list[dict[str, str]]:
    """What a run records of its plug-ins (run.json ``"plugins"``): per module its name, source
    file, the ``sys.path`` entry it was imported from, and the SHA-256 of the file's bytes."""
    return [
        {"module": name, "file": str(Path(module.__file__).resolve()), "root": root,
         "sha256": _sha256(Path(module.__file__))}
        for module, (name, root) in zip(modules, plugin_locations(modules), strict=True)
    ]  # fmt: skip


def load_recorded_plugins(records: Iterable[dict[str, Any]], run_dir: Path) -> list[ModuleType]:
    """Import the plug-ins a run recorded (:func:`plugin_records`), after checking that each file
    is still where it was, with the same bytes.

    Raises:
        PluginError: naming the run, the module and what changed (moved or edited file).
    """
    modules = []
    for record in records:
        name, file = record["module"], Path(record["file"])
        if not file.is_file():
            raise PluginError(
                f"{run_dir} was trained with plug-in {name!r} from {file}, which no longer exists;"
                " pass --plugin with its new location"
            )
        digest = _sha256(file)
        if digest != record["sha256"]:
            raise PluginError(
                f"{run_dir} was trained with plug-in {name!r} from {file}, which has changed since"
                f" (sha256 {record['sha256'][:12]} then, {digest[:12]} now); restore it, or pass"
                f" --plugin {file} to use it as it is now"
            )
        loaded = sys.modules.get(name)
        if loaded is None or Path(getattr(loaded, "__file__", "") or "").resolve() != file:
            import_plugin_locations([(name, record["root"])])
        modules.append(sys.modules[name])
    return modules
