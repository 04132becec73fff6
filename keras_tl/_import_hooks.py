"""Post-import hooks: run a function once a module is imported.

`import keras_tl` uses them to register its Keras objects when Keras (and
keras_hub) is imported, so importing keras_tl costs nothing until Keras is
there, and `keras.saving.load_model` still finds keras_tl's layers.

When Keras is first imported by a keras_tl module that is itself still
being imported, a hook may need that half-made module; it then runs again
at the next import once no keras_tl module is half-made.
"""

import importlib
import sys
import warnings

_PACKAGE = __name__.partition(".")[0]


def after_import(hooks):
    """Calls `hooks[name](module)` once module `name` is imported: at once
    for a module already imported, else right after its import runs.

    Example:
    >>> seen = []
    >>> after_import({"json": lambda module: seen.append(module.__name__)})
    >>> seen
    ['json']
    """
    finder = _AfterImportFinder({})
    for name, hook in hooks.items():
        module = sys.modules.get(name)
        if module is not None and not _initializing(module):
            finder.call(hook, module)
        else:
            finder.hooks[name] = hook
    if finder.hooks or finder.retries:
        sys.meta_path.insert(0, finder)


def import_all(modules, package=None):
    """Imports each of `modules` (a hook's body; `package` is the module
    whose import triggered it)."""
    for module in modules:
        importlib.import_module(module)


def _initializing(module):
    return getattr(getattr(module, "__spec__", None), "_initializing", False)


def _package_half_imported(done=None):
    """Whether a keras_tl module other than `done` (whose code has just
    run, though the import system still marks it) is being imported."""
    return any(_initializing(module) for name, module in list(sys.modules.items())
               if (name == _PACKAGE or name.startswith(_PACKAGE + ".")) and module is not done)


# Plain classes, not importlib.abc's: that module costs a tenth of the
# command line's start-up.
class _AfterImportFinder:
    """Finds nothing itself: wraps the loader the other finders return for
    a hooked module so the hook runs after the module's code."""

    def __init__(self, hooks):
        self.hooks = hooks
        self.retries = []  # (hook, module) that met a half-imported keras_tl module

    def call(self, hook, module):
        try:
            hook(module)
        except ImportError as error:
            if _package_half_imported():
                self.retries.append((hook, module))
            else:
                self._warn(module, error)
        except Exception as error:  # noqa: BLE001  (the user's `import keras` must not fail)
            self._warn(module, error)

    @staticmethod
    def _warn(module, error):
        warnings.warn(f"{_PACKAGE} could not register its Keras objects after importing "
                      f"{module.__name__}: {type(error).__name__}: {error}", RuntimeWarning)

    def retry(self, done=None):
        if self.retries and not _package_half_imported(done):
            retries, self.retries = self.retries, []
            for hook, hooked in retries:
                self.call(hook, hooked)

    def find_spec(self, name, path=None, target=None):
        self.retry()
        # keras_tl's own modules are wrapped too while hooks are pending: the
        # end of the module whose import imported Keras is when a retry can run
        ours = name.startswith(_PACKAGE + ".") and bool(self.hooks)
        if name not in self.hooks and not ours:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        hook = self.hooks.pop(name) if name in self.hooks else self.retry
        spec.loader = _HookedLoader(spec.loader, hook, self)
        return spec


class _HookedLoader:
    def __init__(self, loader, hook, finder):
        self._loader = loader
        self._hook = hook
        self._finder = finder

    def __getattr__(self, name):  # resource readers and the like: the real loader's
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._finder.call(self._hook, module)
