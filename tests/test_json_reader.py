"""The JSON and JSON-lines readers refuse malformed files by file, row or line, and the expected layout."""

import json
from pathlib import Path

import pytest

from lorasb.data import INSTRUCTION_SETS
from lorasb.data.files import DataFileError
from lorasb.eval import eval_set

METAMATH = INSTRUCTION_SETS["metamath"].source
GSM8K = eval_set("gsm8k").source
METAMATH_LAYOUT = "expected a JSON list of objects, each with the string fields query, response"
GSM8K_LAYOUT = "expected one JSON object per line, each with the string fields question, answer"


def put(root: Path, local: str, content: str | bytes) -> Path:
    path = root / local
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def error_of(source, root: Path) -> str:
    with pytest.raises(DataFileError) as caught:
        source.rows(root)
    return str(caught.value)


ROWS = [{"query": "1 + 1?", "response": "The answer is: 2"}, {"query": "2 + 2?", "response": "The answer is: 4", "type": "x"}]


def test_a_well_formed_list_reads_whole(tmp_path):
    put(tmp_path, METAMATH.local, json.dumps(ROWS, indent=1))
    assert METAMATH.rows(tmp_path) == ROWS
    assert METAMATH.rows(tmp_path, limit=1) == ROWS[:1]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "the file is empty"),
        ("[]", "no rows"),
        ('{"query": "a", "response": "b"}', "a JSON object at the top"),
        ('[\n {"query": "a",\n  "response": "b"\n ,}\n]', "line 4: not valid JSON: Expecting property name enclosed in double quotes (column 3)"),
        ('[{"query": "a", "response": "b"}, ["a", "b"]]', "row 2: a JSON array, not an object"),
        ('[{"query": "a", "response": "b"}, {"question": "a", "response": "b"}]', "row 2: no field query (fields: question, response)"),
        ('[{"query": "a", "response": 4}]', "row 1: response is a JSON number"),
        ('[{"query": null, "response": "b"}]', "row 1: query is a JSON null"),
        (b'[{"query": "\xff", "response": "b"}]', "line 1: byte 0xff is not UTF-8 text"),
    ],
)
def test_a_malformed_list_is_refused(tmp_path, content, problem):
    path = put(tmp_path, METAMATH.local, content)
    layout = METAMATH_LAYOUT.replace("expected ", "expected UTF-8 text: ") if "UTF-8" in problem else METAMATH_LAYOUT
    separator = ", " if problem.startswith(("line", "row")) else ": "
    assert error_of(METAMATH, tmp_path) == f"{path}{separator}{problem}; {layout}"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"question": "a", "answer": "#### 1"}\n\n{"question": "b", "answer": "#### 2"\n', "line 3: not valid JSON: Expecting ',' delimiter (column 37)"),
        ('{"question": "a", "answer": "#### 1"}\n{"question": "b"}\n', "line 2: no field answer (fields: question)"),
        ('{"question": "a", "answer": "#### 1"}\n7\n', "line 2: a JSON number, not an object"),
    ],
)
def test_a_malformed_json_lines_file_is_refused(tmp_path, content, problem):
    path = put(tmp_path, GSM8K.local, content)
    assert error_of(GSM8K, tmp_path) == f"{path}, {problem}; {GSM8K_LAYOUT}"


def test_json_lines_skip_blank_lines_and_windows_line_ends(tmp_path):
    put(tmp_path, GSM8K.local, '{"question": "a", "answer": "#### 1"}\r\n\r\n{"question": "b", "answer": "#### 2"}\r\n')
    assert [row["question"] for row in GSM8K.rows(tmp_path)] == ["a", "b"]


@pytest.mark.parametrize(("source", "rows"), [(INSTRUCTION_SETS["metamath"].source, 14972), (INSTRUCTION_SETS["commonsense"].source, 17754)])
def test_the_shared_training_files_pass(shared_data, source, rows):
    assert len(source.rows(shared_data)) == rows
