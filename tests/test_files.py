"""The file layer's one atomic writer: text, bytes or a writing function; fsync and mode when asked; a failed
write keeps the old file whole and leaves no temporary file behind."""

from __future__ import annotations

import csv
import os
import stat

import pytest

from diffuse_lm import files
from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import write_atomic, write_json_atomic


def test_text_bytes_and_a_writing_function(tmp_path):
    write_atomic(tmp_path / "a.txt", "é\n")
    write_atomic(tmp_path / "b.bin", b"\x00\xff")
    write_atomic(tmp_path / "c.bin", lambda f: f.write(b"xy"), binary=True)
    write_atomic(tmp_path / "sub" / "d.txt", lambda f: f.write("line\r\n"))
    assert (tmp_path / "a.txt").read_bytes() == "é\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert (tmp_path / "c.bin").read_bytes() == b"xy"
    assert (tmp_path / "sub" / "d.txt").read_bytes() == b"line\r\n"  # newlines as given, on every platform
    write_json_atomic(tmp_path / "e.json", {"x": float("nan")})
    assert (tmp_path / "e.json").read_text().startswith("{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.bin", "e.json", "sub"]


def test_mode_and_fsync(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    write_atomic(tmp_path / "a", "x")
    assert synced == [] and stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644
    write_atomic(tmp_path / "b", "x", fsync=True, mode=0o600)
    assert len(synced) == 1 and stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "kept.txt"
    target.write_text("old")

    def fail(f):
        f.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(DiffuseError, match=f"^{target}: cannot write \\(No space left on device\\); nothing"):
        write_atomic(target, fail)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, lambda f: (_ for _ in ()).throw(KeyboardInterrupt))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]  # no temporary file left


def test_the_csv_writer_escapes_formulas(tmp_path):
    """Text cells a spreadsheet would run get a leading quote (as synth's writer did); numbers do not."""
    from diffuse_lm.files import write_csv_atomic, write_rows_atomic

    rows = [
        {"text": "=HYPERLINK(1)", "n": -1, "note": "+a"},
        {"text": "@x", "n": 2.5, "note": "\tt"},
        {"text": "plain", "n": 0, "note": "-b"},
    ]
    write_rows_atomic(tmp_path / "r.csv", rows)
    assert (tmp_path / "r.csv").read_bytes() == (
        b"text,n,note\r\n'=HYPERLINK(1),-1,'+a\r\n'@x,2.5,'\tt\r\nplain,0,'-b\r\n"
    )
    cells = [{"b": "\rr", "a": 1}, {"b": "x\ny", "a": 2}]
    write_csv_atomic(tmp_path / "s.csv", cells, fieldnames=["a", "b"])
    with open(tmp_path / "s.csv", newline="") as f:  # a cell holding a line break reads back whole
        assert list(csv.DictReader(f)) == [{"a": "1", "b": "'\rr"}, {"a": "2", "b": "x\ny"}]


def test_a_folder_is_swapped_in_whole_or_not_at_all(tmp_path):
    from diffuse_lm.files import folder_atomic

    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(OSError), folder_atomic(target, ".out.tmp-") as tmp:
        (tmp / "half.txt").write_text("half")
        raise OSError(28, "No space left on device")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (target / "old.txt").read_text() == "old"
    with folder_atomic(target, ".out.tmp-") as tmp:
        (tmp / "new.txt").write_text("new")
        assert tmp.name.startswith(".out.tmp-") and tmp.parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and [p.name for p in target.iterdir()] == [
        "new.txt"
    ]
    (tmp_path / "file").write_text("a file where the folder goes")
    with folder_atomic(tmp_path / "file", ".file.tmp-") as tmp:
        (tmp / "x").write_text("x")
    assert (tmp_path / "file" / "x").read_text() == "x"


def test_a_swapped_in_folder_has_the_umask_permissions_not_mkdtemps(tmp_path):
    """A cached or exported model is readable as any file the user writes: not 0700 (mkdtemp) nor 0600."""
    from diffuse_lm.files import folder_atomic

    old = os.umask(0o022)
    try:
        with folder_atomic(tmp_path / "model", ".model.tmp-") as tmp:
            (tmp / "sub").mkdir()
            fd = os.open(tmp / "sub" / "model.safetensors", os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "model" / "sub").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "model" / "sub" / "model.safetensors").stat().st_mode) == 0o644
