"""Putting the files of `eventbus mapping new` into the mapping folder: all of them, or none.

The files (table description, schemas, mapping) are first written to a temporary folder and checked
there (the starter mapping must validate and pass its test); only then are they moved into place,
each written beside its final path and renamed over it once every one is ready. A failure at any
step leaves the folder as it was (what was renamed already is taken back): no half-written starter
that fails validation, no schema beside a mapping of another version.

A file that exists with other content is replaced only when asked (`--force`); one with the same
content is left untouched (a second mapping of a table shares its description).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from eventbus.mapping.scaffold import ScaffoldError


class ScaffoldExists(ScaffoldError):
    """Files of the scaffold exist with other content, and overwriting was not asked for."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__(f"{', '.join(map(str, paths))} exist(s) with other content; --force overwrites")
        self.paths = paths


def differing(target: Path, files: Mapping[str, str]) -> list[Path]:
    """The files under `target` that exist with content other than `files` gives them."""
    changed = []
    for relative, text in files.items():
        path = target / relative
        if path.exists() and (not path.is_file() or path.read_bytes() != text.encode()):
            changed.append(path)
    return changed


def place_files(
    target: Path, files: Mapping[str, str], *, check: Callable[[Path], object], force: bool = False
) -> list[Path]:
    """Write `files` (path relative to `target` -> text) when `check`, given a temporary folder
    holding them, returns; the files written (those that were missing or different).

    Raises `ScaffoldExists` (nothing written) for files that exist with other content unless
    `force`; whatever `check` raises, or an OSError of writing, after undoing what was written.
    """
    existing = differing(target, files)
    if existing and not force:
        raise ScaffoldExists(existing)
    with tempfile.TemporaryDirectory(prefix="mapping-new-") as staging:
        for relative, text in files.items():
            staged = Path(staging) / relative
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_text(text, "utf-8")
        check(Path(staging))
    wanted = {target / relative: text for relative, text in files.items()}
    changed = [path for path, text in wanted.items() if not path.exists() or path in existing]
    _move_into_place(changed, wanted)
    return changed


def _move_into_place(paths: list[Path], texts: Mapping[Path, str]) -> None:
    created: list[Path] = []  # folders made here, removed again on failure
    ready: list[tuple[Path, Path]] = []  # (temporary file beside the final path, final path)
    previous = {path: path.read_bytes() for path in paths if path.exists()}  # --force: put back on failure
    renamed: list[Path] = []
    try:
        for path in paths:
            missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
            for folder in reversed(missing):
                folder.mkdir()
                created.append(folder)
            handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            ready.append((Path(name), path))
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(texts[path])
        for temporary, path in ready:
            os.replace(temporary, path)
            renamed.append(path)
    except BaseException:
        for temporary, _ in ready:
            temporary.unlink(missing_ok=True)
        for path in renamed:
            if path in previous:
                path.write_bytes(previous[path])
            else:
                path.unlink(missing_ok=True)
        for folder in reversed(created):
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        raise


__all__ = ["ScaffoldExists", "differing", "place_files"]
