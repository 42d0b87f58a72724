"""A local output folder has the contract of an S3 output: refused when committed, replaced whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_smr.engine.output_folder import check_output_folder, replace_output_folder
from airflow_provider_smr.engine.runner import OutputExistsError


def committed(folder: Path, parts: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in parts.items():
        (folder / name).write_text(body)
    (folder / "_SUCCESS").write_text(f"{sorted(parts)}")


def writer(parts: dict[str, str]):
    def fill(staging: Path) -> None:
        committed(staging, parts)
    return fill


def listing(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_a_committed_folder_is_refused_with_the_flag_to_pass(tmp_path):
    committed(tmp_path / "out", {"part-00000.jsonl": "a"})
    with pytest.raises(OutputExistsError, match=r"already holds a committed result \(_SUCCESS\); "
                                                 r"pass --overwrite to replace it"):
        check_output_folder(tmp_path / "out", overwrite=False)
    with pytest.raises(OutputExistsError, match=r"pass overwrite=True"):
        replace_output_folder(tmp_path / "out", writer({"part-00000.jsonl": "b"}), overwrite=False,
                              overwrite_name="overwrite=True")
    assert listing(tmp_path / "out") == {"_SUCCESS": "['part-00000.jsonl']", "part-00000.jsonl": "a"}


def test_a_new_or_uncommitted_folder_is_accepted(tmp_path):
    check_output_folder(tmp_path / "new" / "out", overwrite=False)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "part-00007.jsonl").write_text("stale")
    replace_output_folder(tmp_path / "half", writer({"part-00000.jsonl": "a"}), overwrite=False)
    assert listing(tmp_path / "half") == {"_SUCCESS": "['part-00000.jsonl']", "part-00000.jsonl": "a"}


def test_a_file_is_not_an_output_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "f", overwrite=True)


def test_overwrite_leaves_exactly_the_new_parts_and_keeps_other_files(tmp_path):
    out = tmp_path / "out"
    committed(out, {"part-00000.jsonl": "old0", "part-00001.jsonl": "old1", "part-00002.jsonl": "old2"})
    (out / "notes.txt").write_text("mine")
    written = replace_output_folder(out, writer({"part-00000.jsonl": "new0"}), overwrite=True)
    assert written == [str(out / "part-00000.jsonl"), str(out / "_SUCCESS")]
    assert listing(out) == {"_SUCCESS": "['part-00000.jsonl']", "notes.txt": "mine",
                            "part-00000.jsonl": "new0"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left


def test_a_failed_download_leaves_the_old_output_intact(tmp_path):
    out = tmp_path / "out"
    committed(out, {"part-00000.jsonl": "old0", "part-00001.jsonl": "old1"})
    before = listing(out)

    def broken(staging: Path) -> None:
        (staging / "part-00000.jsonl").write_text("new0")
        raise ConnectionError("the stack went away mid-download")

    with pytest.raises(ConnectionError):
        replace_output_folder(out, broken, overwrite=True)
    assert listing(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_result_without_success_replaces_nothing(tmp_path):
    out = tmp_path / "out"
    committed(out, {"part-00000.jsonl": "old0"})
    before = listing(out)
    with pytest.raises(ValueError, match="no _SUCCESS"):
        replace_output_folder(out, lambda staging: (staging / "part-00000.jsonl").write_text("x"),
                              overwrite=True)
    assert listing(out) == before


def test_the_current_folder_can_be_the_output(tmp_path, monkeypatch):
    out = tmp_path / "here"
    committed(out, {"part-00000.jsonl": "old0", "part-00001.jsonl": "old1"})
    monkeypatch.chdir(out)
    replace_output_folder(Path("."), writer({"part-00000.jsonl": "new0"}), overwrite=True)
    assert listing(out) == {"_SUCCESS": "['part-00000.jsonl']", "part-00000.jsonl": "new0"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]
