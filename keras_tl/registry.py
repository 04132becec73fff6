"""`Registry`: name -> object, the one lookup table behind backbones, tasks
and export formats.

An entry is the object itself or its `"module:attr"` path, imported on
first use: `import keras_tl` stays light, a text task does not load
keras_hub for an image run, and the ONNX and LiteRT exporters need their
runtimes only when used. Names keep the order they were registered in.

Example:
>>> shapes = Registry("Shape", plural="shapes")
>>> shapes.register("ordered", "collections:OrderedDict")
'collections:OrderedDict'
>>> shapes.get("ordered").__name__, shapes.names()
('OrderedDict', ['ordered'])
>>> shapes.get("square")
Traceback (most recent call last):
...
keras_tl.errors.ConfigError: Unknown shape 'square'; registered shapes: ordered.
"""

import importlib

from keras_tl.errors import ConfigError


def import_target(path):
    """The object a `"module:attr"` path names.

    Example:
    >>> import_target("os.path:join").__name__
    'join'
    """
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry:
    """Registered names, each with its object or `"module:attr"` path.

    Args:
        kind: what an entry is, capitalised, as errors name it (`"Task"`,
            `"Export format"`).
        plural: the entries in the unknown-name error (`"tasks"`).
        error: the `KerasTLError` class raised for a duplicate or an unknown
            name.
        instantiate: whether `get` returns the target called once (an
            instance of the registered class) instead of the target.
        key: the form names are compared in (e.g. case-insensitive); names
            and aliases that share a key find the same entry.

    Example:
    >>> formats = Registry("Export format", plural="formats", instantiate=True)
    >>> formats.register("listing", list)
    <class 'list'>
    >>> formats.get("listing") is formats.get("listing"), "listing" in formats
    (True, True)
    >>> formats.register("listing", tuple)
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: Export format 'listing' is already registered; pass overwrite=True to replace it.
    """

    def __init__(self, kind, plural, error=ConfigError, instantiate=False, key=None):
        self.kind = kind
        self.plural = plural
        self.error = error
        self.instantiate = instantiate
        self._key = key or (lambda name: name)
        self._targets = {}  # name -> object or "module:attr"
        self._names_by_key = {}  # key(name or alias) -> name
        self._loaded = {}  # name -> imported (and instantiated) target

    def register(self, name, target, overwrite=False, aliases=()):
        """Adds `target` (an object or a `"module:attr"` path) under `name`
        and `aliases`; returns `target`.

        Example:
        >>> Registry("Thing", "things").register("one", 1, aliases=("uno",))
        1
        """
        if name in self._targets and not overwrite:
            raise self.error(
                f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it.")
        self._targets[name] = target
        self._loaded.pop(name, None)
        for alias in (name,) + tuple(aliases):
            self._names_by_key[self._key(alias)] = name
        return target

    def unregister(self, name):
        """Removes `name` and its aliases (a no-op for an unknown name).

        Example:
        >>> things = Registry("Thing", "things")
        >>> _ = things.register("one", 1)
        >>> things.unregister("one"); things.names()
        []
        """
        self._targets.pop(name, None)
        self._loaded.pop(name, None)
        self._names_by_key = {k: v for k, v in self._names_by_key.items() if v != name}

    def names(self):
        """Registered names, in registration order.

        Example:
        >>> things = Registry("Thing", "things")
        >>> _ = things.register("b", 2), things.register("a", 1)
        >>> things.names()
        ['b', 'a']
        """
        return list(self._targets)

    def aliases(self):
        """Every key a name is found by (names and aliases, in `key` form).

        Example:
        >>> things = Registry("Thing", "things", key=str.lower)
        >>> _ = things.register("One", 1, aliases=("Uno",))
        >>> things.aliases()
        ['one', 'uno']
        """
        return list(self._names_by_key)

    def canonical(self, name):
        """The registered name `name` (or an alias of it) finds, or `None`.

        Example:
        >>> things = Registry("Thing", "things", key=str.lower)
        >>> _ = things.register("One", 1)
        >>> things.canonical("ONE"), things.canonical("two")
        ('One', None)
        """
        return self._names_by_key.get(self._key(name))

    def __contains__(self, name):
        return self.canonical(name) is not None

    def __iter__(self):
        return iter(self.names())

    def __len__(self):
        return len(self._targets)

    def get(self, name):
        """The entry `name` finds, imported (and instantiated) on first use;
        an unknown name raises `error` with `unknown_message`.

        Example:
        >>> things = Registry("Thing", "things")
        >>> _ = things.register("join", "os.path:join")
        >>> things.get("join").__name__
        'join'
        """
        canonical = self.canonical(name)
        if canonical is None:
            raise self.error(self.unknown_message(name))
        if canonical not in self._loaded:
            target = self._targets[canonical]
            if isinstance(target, str):
                target = import_target(target)
            self._loaded[canonical] = target() if self.instantiate else target
        return self._loaded[canonical]

    def unknown_message(self, name):
        """What `get` says about a name it does not know.

        Example:
        >>> Registry("Task", "tasks").unknown_message("x")
        "Unknown task 'x'; registered tasks: none."
        """
        registered = ", ".join(self._targets) or "none"
        return f"Unknown {self.kind.lower()} {name!r}; registered {self.plural}: {registered}."
