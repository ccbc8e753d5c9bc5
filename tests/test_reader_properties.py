"""Property tests of the data readers: malformed files fail by file and line, well-formed ones read back exactly.

Hypothesis writes GLUE TSV, JSON and JSON-lines files, whole or damaged (an extra or missing
field, a bad label, a truncation, another encoding, random bytes), and checks that each read
either returns exactly what the file holds or raises ``DataFileError`` naming the file and the
line (or row) at fault, never another exception.
"""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lorasb.data import GLUE_TASKS, INSTRUCTION_SETS
from lorasb.data.files import DataFileError
from lorasb.data.glue import read_glue_tsv
from lorasb.eval import eval_set

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# a field of a TSV row: any text without the separators (surrogates cannot be written as UTF-8)
field = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r"), max_size=20)
ascii_field = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
MRPC, SST2 = GLUE_TASKS["mrpc"], GLUE_TASKS["sst2"]
MRPC_HEADER = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]


@st.composite
def mrpc_rows(draw, text=field):
    """Rows of an MRPC file: label, two ids, two sentences."""
    count = draw(st.integers(1, 6))
    return [[draw(st.sampled_from("01")), draw(text), draw(text), draw(text), draw(text)] for _ in range(count)]


def tsv(header: list[str] | None, rows: list[list[str]], bom: bool = False, crlf: bool = False) -> str:
    lines = ([header] if header else []) + rows
    end = "\r\n" if crlf else "\n"
    return ("\ufeff" if bom else "") + "".join("\t".join(row) + end for row in lines)


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def failure(read, path: Path) -> DataFileError:
    with pytest.raises(DataFileError) as caught:
        read()
    assert str(caught.value).startswith(str(path))
    return caught.value


# --- GLUE TSV ---------------------------------------------------------------------------------


@SETTINGS
@given(rows=mrpc_rows(), bom=st.booleans(), crlf=st.booleans())
def test_a_well_formed_tsv_reads_back_exactly(tmp_path, rows, bom, crlf):
    path = write(tmp_path / "train.tsv", tsv(MRPC_HEADER, rows, bom, crlf))
    split = read_glue_tsv(MRPC, path)
    assert split.labels == [int(row[0]) for row in rows]
    assert split.texts == ([row[3] for row in rows], [row[4] for row in rows])


@SETTINGS
@given(rows=mrpc_rows(), data=st.data())
def test_an_extra_or_missing_field_names_its_line(tmp_path, rows, data):
    index = data.draw(st.integers(0, len(rows) - 1))
    column = data.draw(st.integers(0, 4))
    if data.draw(st.booleans()):
        rows[index].insert(column, data.draw(field))  # a tab inside a field
    else:
        del rows[index][column]
    path = write(tmp_path / "train.tsv", tsv(MRPC_HEADER, rows))
    error = failure(lambda: read_glue_tsv(MRPC, path), path)
    assert error.line == index + 2 and "expected 5, one per column" in str(error)


@SETTINGS
@given(rows=mrpc_rows(), data=st.data())
def test_a_label_outside_the_task_names_its_line(tmp_path, rows, data):
    index = data.draw(st.integers(0, len(rows) - 1))
    rows[index][0] = data.draw(field.filter(lambda label: label not in ("0", "1")))
    path = write(tmp_path / "train.tsv", tsv(MRPC_HEADER, rows))
    error = failure(lambda: read_glue_tsv(MRPC, path), path)
    assert error.line == index + 2 and str(error).endswith("expected one of 0, 1")


@SETTINGS
@given(rows=st.lists(st.tuples(field, st.sampled_from("01")), min_size=1, max_size=6), data=st.data())
def test_a_truncated_tsv_fails_at_the_cut_or_reads_the_whole_rows_before_it(tmp_path, rows, data):
    """SST-2 (the label last): a cut inside a row leaves a bad label or too few fields."""
    content = tsv(["sentence", "label"], [list(row) for row in rows]).encode()
    cut = data.draw(st.integers(0, len(content) - 1))
    path = write(tmp_path / "train.tsv", content[:cut])
    complete_lines = content[:cut].count(b"\n")
    try:
        split = read_glue_tsv(SST2, path)
    except DataFileError as error:
        assert str(error).startswith(str(path))
        assert error.line in (None, complete_lines + 1)  # None: nothing (or only a header) left
    else:  # the cut fell at the end of a row: the rows before it, whole
        kept = [list(row) for row in rows[: len(split.labels)]]
        assert content[:cut].rstrip(b"\n") == tsv(["sentence", "label"], kept).encode().rstrip(b"\n")
        assert split.texts == ([text for text, _ in kept],) and split.labels == [int(label) for _, label in kept]


@SETTINGS
@given(rows=mrpc_rows(text=ascii_field), data=st.data())
def test_text_in_another_encoding_names_its_line(tmp_path, rows, data):
    """Latin-1 ¡…¿ are the bytes 0xa1–0xbf, which never start a UTF-8 character."""
    index = data.draw(st.integers(0, len(rows) - 1))
    rows[index][3] += data.draw(st.characters(min_codepoint=0xA1, max_codepoint=0xBF))
    path = write(tmp_path / "train.tsv", tsv(MRPC_HEADER, rows).encode("latin-1"))
    error = failure(lambda: read_glue_tsv(MRPC, path), path)
    assert "is not UTF-8 text" in str(error) and error.line == index + 2


@SETTINGS
@given(content=st.binary(max_size=200))
def test_random_bytes_fail_cleanly(tmp_path, content):
    path = write(tmp_path / "train.tsv", content)
    try:
        read_glue_tsv(MRPC, path)
    except DataFileError as error:
        assert str(error).startswith(str(path))


# --- JSON and JSON lines ------------------------------------------------------------------------

METAMATH = INSTRUCTION_SETS["metamath"].source
GSM8K = eval_set("gsm8k").source
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
rows_of = {
    METAMATH: st.lists(st.fixed_dictionaries({"query": text, "response": text}), min_size=1, max_size=5),
    GSM8K: st.lists(st.fixed_dictionaries({"question": text, "answer": text}), min_size=1, max_size=5),
}


def dump(source, rows: list) -> str:
    if source.local.endswith(".jsonl"):
        return "".join(json.dumps(row) + "\n" for row in rows)
    return json.dumps(rows, indent=1)


@SETTINGS
@given(source=st.sampled_from([METAMATH, GSM8K]), data=st.data())
def test_well_formed_json_reads_back_exactly(tmp_path, source, data):
    rows = data.draw(rows_of[source])
    write_json(tmp_path, source, dump(source, rows))
    assert source.rows(tmp_path) == rows


def write_json(root: Path, source, content: str | bytes) -> Path:
    path = root / source.local
    path.parent.mkdir(parents=True, exist_ok=True)
    return write(path, content)


@SETTINGS
@given(source=st.sampled_from([METAMATH, GSM8K]), data=st.data())
def test_a_row_without_a_field_or_with_a_wrong_type_names_its_row(tmp_path, source, data):
    rows = data.draw(rows_of[source])
    index = data.draw(st.integers(0, len(rows) - 1))
    name = data.draw(st.sampled_from(source.fields))
    if data.draw(st.booleans()):
        del rows[index][name]
        problem = f"no field {name}"
    else:
        rows[index][name] = data.draw(st.one_of(st.integers(), st.none(), st.lists(text, max_size=2)))
        problem = f"{name} is a JSON "
    path = write_json(tmp_path, source, dump(source, rows))
    error = failure(lambda: source.rows(tmp_path), path)
    unit = "line" if source is GSM8K else "row"
    assert str(error).startswith(f"{path}, {unit} {index + 1}: {problem}") and error.line == index + 1


@SETTINGS
@given(source=st.sampled_from([METAMATH, GSM8K]), data=st.data())
def test_truncated_json_fails_at_the_cut_or_reads_the_whole_rows_before_it(tmp_path, source, data):
    rows = data.draw(rows_of[source])
    content = dump(source, rows).encode()
    cut = data.draw(st.integers(0, len(content) - 1))
    path = write_json(tmp_path, source, content[:cut])
    try:
        read = source.rows(tmp_path)
    except DataFileError as error:
        assert str(error).startswith(str(path))
        assert error.line in (None, content[:cut].count(b"\n") + 1)
    else:  # only JSON lines cut after a whole object read, and then exactly those objects
        assert source is GSM8K and read == rows[: len(read)] and content[:cut].rstrip(b"\n").endswith(b"}")


@SETTINGS
@given(source=st.sampled_from([METAMATH, GSM8K]), content=st.binary(max_size=200))
def test_random_bytes_as_json_fail_cleanly(tmp_path, source, content):
    path = write_json(tmp_path, source, content)
    try:
        source.rows(tmp_path)
    except DataFileError as error:
        assert str(error).startswith(str(path))
