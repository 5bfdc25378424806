"""`alpr-unit eval` input handling: format detection and clear errors (exit 2) for bad folders."""
from pathlib import Path

import pytest

from unit import cli
from unit.evaluate import EvalInputError, detect_format, load_crops, load_endtoend

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmark"


def test_detects_both_benchmark_formats():
    assert detect_format(SHARED / "endtoend" / "us") == "endtoend"
    assert detect_format(SHARED / "crops" / "us") == "crops"


def test_loads_real_ground_truth():
    e2e = load_endtoend(SHARED / "endtoend" / "us")
    crops = load_crops(SHARED / "crops" / "us")
    assert len(e2e) == 107 and all(i.box and i.plate.isalnum() for i in e2e)
    assert len(crops) == 356 and all(i.box is None for i in crops)


def test_empty_folder_is_exit_2(tmp_path, capsys):
    assert cli.main(["eval", str(tmp_path)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def test_malformed_label_line_names_file_and_line(tmp_path, capsys):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "a.txt").write_text("a.jpg\t10\tten\t5\t5\tABC123\n")
    assert cli.main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "a.txt:1" in err and "four numbers" in err


def test_malformed_groundtruth_row_names_line(tmp_path, capsys):
    (tmp_path / "groundtruth.csv").write_text("file,state,plate\nx.png,ca,7ABC234\ny.png,ca\n")
    assert cli.main(["eval", str(tmp_path)]) == 2
    assert "groundtruth.csv:3" in capsys.readouterr().err


def test_missing_columns_is_an_error(tmp_path):
    (tmp_path / "groundtruth.csv").write_text("name,text\nx.png,ABC\n")
    with pytest.raises(EvalInputError, match="header"):
        load_crops(tmp_path)
