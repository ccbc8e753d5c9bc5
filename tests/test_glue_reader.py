"""The GLUE TSV reader refuses malformed files by file, line and expectation, and keeps the real files' quirks."""

from pathlib import Path

import pytest

from lorasb.data import GLUE_TASKS
from lorasb.data.files import DataFileError
from lorasb.data.glue import read_glue_tsv

MRPC = GLUE_TASKS["mrpc"]
MRPC_HEADER = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
MRPC_ROWS = "1\t1\t2\tA cat sat.\tA cat was sitting.\n0\t3\t4\tIt rained.\tThe sun shone.\n"


def write(tmp_path: Path, content: str | bytes, name: str = "train.tsv") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def error_of(task, path: Path) -> str:
    with pytest.raises(DataFileError) as caught:
        read_glue_tsv(task, path)
    return str(caught.value)


def test_a_well_formed_file_reads_whole(tmp_path):
    split = read_glue_tsv(MRPC, write(tmp_path, MRPC_HEADER + MRPC_ROWS + "\n"))
    assert split.texts == (["A cat sat.", "It rained."], ["A cat was sitting.", "The sun shone."])
    assert split.labels == [1, 0]


def test_windows_line_ends_read_the_same(tmp_path):
    split = read_glue_tsv(MRPC, write(tmp_path, (MRPC_HEADER + MRPC_ROWS).replace("\n", "\r\n")))
    assert split.texts[1] == ["A cat was sitting.", "The sun shone."]


def test_a_tab_inside_a_sentence_is_refused(tmp_path):
    path = write(tmp_path, MRPC_HEADER + "1\t1\t2\tA cat\tsat.\tA cat was sitting.\n")
    assert error_of(MRPC, path) == (
        f"{path}, line 2: 6 tab-separated fields; expected 5, one per column "
        "(Quality, #1 ID, #2 ID, #1 String, #2 String); a tab inside a text splits it"
    )


def test_a_missing_field_is_refused(tmp_path):
    path = write(tmp_path, MRPC_HEADER + MRPC_ROWS + "1\t5\t6\tOnly one sentence.\n")
    assert error_of(MRPC, path).startswith(f"{path}, line 4: 4 tab-separated fields; expected 5")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("mrpc", MRPC_HEADER + "7\t1\t2\tA.\tB.\n", "line 2: Quality '7'; expected one of 0, 1"),
        ("rte", "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tneutral\n", "line 2: label 'neutral'; expected one of entailment, not_entailment"),
        ("mnli", "sentence1\tsentence2\tgold_label\nA.\tB.\tcontradiction\nA.\tB.\t-\n", "line 3: gold_label '-'; expected one of entailment, neutral, contradiction"),
        ("stsb", "sentence1\tsentence2\tscore\nA.\tB.\t5.2\n", "line 2: score '5.2'; expected a number in [0, 5]"),
        ("stsb", "sentence1\tsentence2\tscore\nA.\tB.\thigh\n", "line 2: score 'high'; expected a number in [0, 5]"),
        ("cola", "gj04\t1\t\tFine.\nclc95\t2\t*\tBad.\n", "line 2: label '2'; expected one of 0, 1"),
    ],
)
def test_a_label_outside_the_task_is_refused(tmp_path, name, content, message):
    path = write(tmp_path, content)
    assert error_of(GLUE_TASKS[name], path) == f"{path}, {message}"


def test_an_empty_file_is_refused(tmp_path):
    path = write(tmp_path, "\n\n")
    assert error_of(MRPC, path) == (
        f"{path}: the file is empty; expected a GLUE MRPC TSV file: a header line naming the columns "
        "(among them #1 String, #2 String, Quality), then one tab-separated row per example"
    )


def test_a_header_without_rows_is_refused(tmp_path):
    path = write(tmp_path, MRPC_HEADER)
    assert error_of(MRPC, path).startswith(f"{path}: the file has a header but no data rows; expected a GLUE MRPC TSV file")


def test_a_header_without_the_task_columns_is_refused(tmp_path):
    path = write(tmp_path, "sentence\tlabel\nGood.\t1\n")
    assert error_of(MRPC, path).startswith(
        f"{path}, line 1: the header (sentence, label) lacks the columns #1 String, #2 String, Quality; expected"
    )


def test_a_headerless_task_names_its_columns(tmp_path):
    path = write(tmp_path, "gj04\t1\tFine.\n")
    assert error_of(GLUE_TASKS["cola"], path) == (
        f"{path}, line 1: 3 tab-separated fields; expected 4, one per column (source, label, mark, sentence); "
        "a tab inside a text splits it"
    )


def test_bytes_that_are_not_utf8_are_refused_by_line(tmp_path):
    path = write(tmp_path, (MRPC_HEADER + MRPC_ROWS).encode() + b"1\t5\t6\tcaf\xe9\tx\n")
    assert error_of(MRPC, path) == (
        f"{path}, line 4: byte 0xe9 is not UTF-8 text; expected UTF-8 text: a GLUE MRPC TSV file: "
        "a header line naming the columns (among them #1 String, #2 String, Quality), then one tab-separated row per example"
    )


REAL_ROWS = {  # task: {file: rows}, the official sizes (shared data README)
    "cola": {"train.tsv": 8551, "dev.tsv": 1043},
    "sst2": {"train.tsv": 67349, "dev.tsv": 872},
    "mrpc": {"train.tsv": 3668, "dev.tsv": 408},
    "qnli": {"dev.tsv": 5463},
}


@pytest.mark.parametrize(("name", "file"), [(name, file) for name, files in REAL_ROWS.items() for file in files])
def test_real_files_read_whole(shared_data, name, file):
    """MRPC's BOM, CoLA's empty marks and quotes in CoLA, SST-2 and QNLI all pass the strict reader intact."""
    task = GLUE_TASKS[name]
    path = shared_data / "glue" / task.folder / file
    split = read_glue_tsv(task, path)
    lines = [line.split("\t") for line in path.read_text(encoding="utf-8-sig").split("\n") if line]
    header, rows = (task.tsv_columns, lines) if task.tsv_columns else (lines[0], lines[1:])
    assert len(rows) == len(split.labels) == REAL_ROWS[name][file]
    column = {name: [row[header.index(name)] for row in rows] for name in header}
    assert split.texts == tuple(column[name] for name in task.tsv_texts)
    assert [task.label_ids[raw] for raw in column[task.tsv_label]] == split.labels
    assert set(split.labels) == {0, 1}
