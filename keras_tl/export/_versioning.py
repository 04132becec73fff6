"""Numbered version folders, written to a hidden temp folder and renamed in.

TF Serving loads only all-digit folder names under a model's base path, so an
export is built in `.tmp-export-<pid>-<hex>/` beside the versions and renamed
to `<version>/` once complete: a crash mid-export never leaves a half-written
numbered version.
"""

import contextlib
import os
import re
import shutil
import uuid

STAGING_PREFIX = ".tmp-export-"
_VERSION = re.compile(r"^[0-9]+$")


def list_versions(base_dir):
    """Sorted version numbers of the all-digit folders in `base_dir`.

    Example:
    >>> list_versions("saved_models/flowers")
    [1, 2]
    """
    if not os.path.isdir(base_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(base_dir)
        if _VERSION.match(name) and os.path.isdir(os.path.join(base_dir, name))
    )


def next_version(base_dir):
    """One more than the highest existing version, or 1.

    Example:
    >>> next_version("saved_models/new_model")
    1
    """
    versions = list_versions(base_dir)
    return versions[-1] + 1 if versions else 1


def check_version(base_dir, version):
    """Validates an explicit version number, refusing an existing one."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive int, got {version!r}.")
    path = os.path.join(base_dir, str(version))
    if os.path.exists(path):
        raise FileExistsError(
            f"Version {version} already exists at {path}; exports never "
            "overwrite a version. Leave version=None to take the next number "
            f"({next_version(base_dir)})."
        )
    return version


@contextlib.contextmanager
def staged_version(base_dir, version=None):
    """Yields a `Staging` whose `.path` receives the files; on a clean exit
    the folder is renamed to `base_dir/<version>`, on an error it is removed.

    Example:
    >>> with staged_version("saved_models/flowers") as stage:
    ...     write_files(stage.path)
    >>> stage.version, stage.final_path
    (3, 'saved_models/flowers/3')
    """
    os.makedirs(base_dir, exist_ok=True)
    remove_stale_staging(base_dir)
    if version is not None:
        check_version(base_dir, version)
    name = f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    stage = Staging(base_dir, os.path.join(base_dir, name), version)
    os.makedirs(stage.path)
    try:
        yield stage
        stage.commit()
    finally:
        shutil.rmtree(stage.path, ignore_errors=True)


class Staging:
    """A temp folder waiting to become version `version` (None: the next)."""

    def __init__(self, base_dir, path, version):
        self.base_dir = base_dir
        self.path = path
        self.explicit_version = version
        self.version = version if version is not None else next_version(base_dir)
        self.final_path = os.path.join(base_dir, str(self.version))

    def commit(self):
        """Renames the temp folder to its version; picks the next free number
        if another export took this one meanwhile (explicit versions fail)."""
        for _ in range(100):
            if self.explicit_version is None:
                self.version = next_version(self.base_dir)
            else:
                check_version(self.base_dir, self.version)
            self.final_path = os.path.join(self.base_dir, str(self.version))
            # os.rename would replace an empty folder: check first.
            if not os.path.exists(self.final_path):
                try:
                    os.rename(self.path, self.final_path)
                    return self.final_path
                except OSError:
                    if self.explicit_version is not None:
                        raise
        raise RuntimeError(f"Could not find a free version folder in {self.base_dir}.")


def remove_stale_staging(base_dir):
    """Deletes temp folders left by export processes that no longer run."""
    for name in os.listdir(base_dir):
        match = re.match(re.escape(STAGING_PREFIX) + r"(\d+)-", name)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(base_dir, name), ignore_errors=True)


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
