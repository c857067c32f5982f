"""kvplan.atomic_file: output files appear whole, with the permissions a plain open() would give."""

from __future__ import annotations

import os
import stat

import pytest

from kvplan.atomic_file import write_text_atomically
from kvplan.errors import UsageError


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_gets_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "report.json", "{}\n")
    finally:
        os.umask(old)
    assert (tmp_path / "report.json").read_text() == "{}\n"
    assert _mode(tmp_path / "report.json") == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left beside it


def test_an_existing_file_keeps_its_mode(tmp_path):
    target = tmp_path / "junit.xml"
    target.write_text("old")
    target.chmod(0o640)
    write_text_atomically(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o640


def test_a_missing_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot write"):
        write_text_atomically(tmp_path / "no" / "such" / "file.json", "{}")


def test_a_file_system_that_refuses_chmod_still_gets_the_file(tmp_path, monkeypatch):
    def refuse(fd, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    write_text_atomically(tmp_path / "out.json", "{}")
    assert (tmp_path / "out.json").read_text() == "{}"
