"""Numbered version folders, built in a hidden staging folder and renamed in.

TF Serving loads only all-digit folder names under a model's base path, so
an export is built in `.tmp-export-<random>/` beside the versions and
renamed to `<version>/` once every format is written and verified: an
interrupted export never leaves a half-written version, and an existing
version is never overwritten (a rename onto a non-empty folder fails).

Each staging folder holds `.owner.json` (host, process id and start time)
whose modification time is a heartbeat, touched every `HEARTBEAT_SECONDS`
while the export runs. Another export removes a staging folder only when
it is provably dead: its owner ran on this host (same host name, boot and
PID namespace) and that process is gone, or its heartbeat is older than
`STALE_AFTER_SECONDS` (1 hour; for owners on other hosts or containers
sharing the volume, whose processes cannot be checked).
"""

import contextlib
import datetime
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time

from keras_tl.errors import ConfigError, ExportError

STAGING_PREFIX = ".tmp-export-"
OWNER_FILE = ".owner.json"
HEARTBEAT_SECONDS = 30
STALE_AFTER_SECONDS = 3600
_VERSION = re.compile(r"^[0-9]+$")


def list_versions(base_dir):
    """Sorted version numbers of the all-digit folders in `base_dir`.

    Example:
    >>> list_versions("no/such/folder")
    []
    """
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir)
                  if _VERSION.match(name) and os.path.isdir(os.path.join(base_dir, name)))


def next_version(base_dir):
    """One more than the highest existing version, or 1.

    Example:
    >>> next_version("saved_models/new_model")
    1
    """
    versions = list_versions(base_dir)
    return versions[-1] + 1 if versions else 1


def check_version(base_dir, version):
    """Validates an explicit version number, refusing an existing one.

    Example:
    >>> check_version("saved_models/new_model", 0)
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: version must be a positive int, got 0.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"version must be a positive int, got {version!r}.")
    path = os.path.join(base_dir, str(version))
    if os.path.exists(path):
        raise ExportError(
            f"Version {version} already exists at {path}; exports never overwrite a version. "
            f"Leave version=None to take the next number ({next_version(base_dir)}).")
    return version


def prepare_base(path):
    """Creates the model's base folder; an unusable path is one `ExportError`.

    Example:
    >>> prepare_base("saved_models/flowers/3")
    Traceback (most recent call last):
    ...
    keras_tl.errors.ConfigError: 'saved_models/flowers/3' looks like a version folder. Pass the model's base folder (e.g. 'saved_models/flowers') and, if needed, version=N.
    """
    path = os.fspath(path)
    if os.path.basename(os.path.normpath(path)).isdigit():
        raise ConfigError(
            f"{path!r} looks like a version folder. Pass the model's base folder "
            "(e.g. 'saved_models/flowers') and, if needed, version=N.")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ExportError(f"Cannot export to {path}: it is a file. Pass a folder path, "
                          "e.g. saved_models/NAME.")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise ExportError(f"Cannot create the export folder {path}: {error.strerror or error}. "
                          "Pass a folder you can write to.") from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise ExportError(f"Cannot export to {path}: the folder is not writable. "
                          "Pass a folder you can write to.")
    return path


@contextlib.contextmanager
def staged_version(base_dir, version=None):
    """Yields a `Staging` whose `.path` receives the files; on a clean exit
    the folder is renamed to `base_dir/<version>`, otherwise removed.

    Example:
    >>> with staged_version("saved_models/flowers") as stage:  # doctest: +SKIP
    ...     write_files(stage.path)
    >>> stage.version, stage.final_path  # doctest: +SKIP
    (3, 'saved_models/flowers/3')
    """
    base_dir = prepare_base(base_dir)
    remove_stale_staging(base_dir)
    if version is not None:
        check_version(base_dir, version)
    try:
        path = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base_dir)
    except OSError as error:
        raise ExportError(f"Cannot write in {base_dir}: {error.strerror or error}.") from error
    stage = Staging(base_dir, path, version)
    owner = Owner(path)
    try:
        owner.start()
        yield stage
        owner.stop()
        stage.commit()
    finally:
        owner.stop()
        shutil.rmtree(path, ignore_errors=True)


class Staging:
    """A staging folder waiting to become version `version` (None: the next)."""

    def __init__(self, base_dir, path, version):
        self.base_dir = base_dir
        self.path = path
        self.explicit_version = version
        self.version = version if version is not None else next_version(base_dir)
        self.final_path = os.path.join(base_dir, str(self.version))

    def commit(self):
        """Renames the staging folder to its version; takes the next free
        number if another export took this one meanwhile (an explicit
        version fails instead)."""
        if not os.path.isdir(self.path):
            raise ExportError(f"The staging folder {self.path} was removed by another process "
                              "(its heartbeat was older than the stale limit?); export again.")
        for _ in range(100):
            if self.explicit_version is None:
                self.version = next_version(self.base_dir)
            else:
                check_version(self.base_dir, self.version)
            self.final_path = os.path.join(self.base_dir, str(self.version))
            if os.path.exists(self.final_path):  # os.rename would replace an empty folder
                continue
            try:
                os.rename(self.path, self.final_path)
                return self.final_path
            except OSError:  # taken meanwhile: a non-empty folder is never replaced
                if self.explicit_version is not None:
                    raise
        raise ExportError(f"Could not find a free version folder in {self.base_dir}.")


class Owner:
    """`.owner.json` in a staging folder, its heartbeat touched by a thread
    while the export runs; removed before the folder becomes a version."""

    def __init__(self, stage_path):
        self.path = os.path.join(stage_path, OWNER_FILE)
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        record = dict(host=host_id(), pid=os.getpid(), process_start=_process_start(os.getpid()),
                      started_at=datetime.datetime.now(datetime.timezone.utc).isoformat())
        partial = self.path + ".partial"
        with open(partial, "w") as f:
            json.dump(record, f)
        os.replace(partial, self.path)
        self._thread = threading.Thread(target=self._beat, name="keras_tl-export-heartbeat",
                                        daemon=True)
        self._thread.start()

    def _beat(self):
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def stop(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with contextlib.suppress(OSError):
            os.remove(self.path)


def remove_stale_staging(base_dir, now=None):
    """Deletes the staging folders in `base_dir` that are provably dead (see
    the module docstring); returns their names.

    Example:
    >>> remove_stale_staging("saved_models/flowers")  # doctest: +SKIP
    []
    """
    now = time.time() if now is None else now
    removed = []
    for name in sorted(os.listdir(base_dir)):
        path = os.path.join(base_dir, name)
        if name.startswith(STAGING_PREFIX) and os.path.isdir(path) and _is_dead(path, now):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    return removed


def host_id():
    """This machine and container: host name, boot id and PID namespace
    (process ids are comparable only within one of these).

    Example:
    >>> host_id().startswith(socket.gethostname())
    True
    """
    parts = [socket.gethostname()]
    for source in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(os.readlink(source) if source.endswith("/pid")
                         else open(source).read().strip())
        except OSError:
            parts.append("")
    return "|".join(parts)


def _is_dead(path, now):
    owner_file = os.path.join(path, OWNER_FILE)
    try:
        with open(owner_file) as f:
            owner = json.load(f)
        heartbeat = os.path.getmtime(owner_file)
    except (OSError, ValueError):
        owner, heartbeat = None, None
    if owner and owner.get("host") == host_id():
        return not _process_alive(owner.get("pid"), owner.get("process_start"))
    if heartbeat is None:  # no owner yet (just created) or an old keras_tl's folder
        try:
            heartbeat = os.path.getmtime(path)
        except OSError:
            return False
    return now - heartbeat > STALE_AFTER_SECONDS


def _process_alive(pid, process_start=None):
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # the id may have been reused by a newer process
    return process_start is None or _process_start(pid) in (None, process_start)


def _process_start(pid):
    """The process's start time in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None
