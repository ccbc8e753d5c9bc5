"""lm-evaluation-harness on SmolLM2-135M-Instruct offline: a local task (a YAML over a JSON file
written here) that prompts, stops and grades as lorasb's BoolQ evaluation does, scored by both.

Both generate greedily from the same Alpaca prompt, one prompt at a time, stop at the template's
markers and take the first "true"/"false" (whole word, any case) as the answer: the harness
through its regex filter and ``exact_match`` with ``ignore_case``, lorasb through its grader.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lorasb.data.prompts import STOP_STRINGS
from lorasb.eval.evaluation import evaluate_sets
from lorasb.eval.harness import RESULTS_FILE, run_harness
from lorasb.eval.sets import eval_set

ROWS = 6
TASK = "lorasb_boolq"
REPO = Path(__file__).resolve().parents[1]


def task_yaml(data_file) -> str:
    until = json.dumps(list(STOP_STRINGS))
    return f"""task: {TASK}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: {until}
  max_gen_toks: {eval_set("boolq").max_new_tokens}
  do_sample: false
filter_list:
  - name: first_label
    filter:
      - function: regex
        regex_pattern: "(?i)\\\\b(true|false)\\\\b"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
"""


def local_boolq(shared_data, tmp_path):
    """The first ROWS real BoolQ rows as lorasb's data root reads them, and a folder holding the
    harness task over the same rows (lorasb's prompts and gold answers in a JSON file beside it)."""
    spec = eval_set("boolq")
    rows = json.loads((shared_data / "commonsense" / "boolq" / "test.json").read_text())[:ROWS]
    root = tmp_path / "data"
    (root / "commonsense" / "boolq").mkdir(parents=True)
    (root / "commonsense" / "boolq" / "test.json").write_text(json.dumps(rows))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    data_file = tasks / "boolq.jsonl"
    data_file.write_text("".join(json.dumps({"prompt": spec.prompt(row), "answer": spec.gold(row)}) + "\n" for row in rows))
    (tasks / f"{TASK}.yaml").write_text(task_yaml(data_file))
    return root, tasks


@pytest.mark.slow
def test_the_harness_scores_a_local_task_as_lorasb_grades_it(shared_data, smollm2_dir, smollm2_tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    root, tasks = local_boolq(shared_data, tmp_path)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir).eval()
    own = evaluate_sets(model, smollm2_tokenizer, ["boolq"], root, tmp_path / "lorasb", batch_size=1, progress=False)["boolq"]
    records = [json.loads(line) for line in (tmp_path / "lorasb" / "predictions" / "boolq.jsonl").read_text().splitlines()]
    output = run_harness(str(smollm2_dir), [TASK], tmp_path / "harness", include_path=tasks, batch_size=1, log_samples=True)

    samples = sorted(output["samples"][TASK], key=lambda s: s["doc_id"])
    harness_answers = [s["filtered_resps"][0].lower() for s in samples]
    own_answers = [r["prediction"] or "[invalid]" for r in records]  # the harness's regex filter says [invalid] where nothing matched
    assert harness_answers == own_answers
    assert [s["resps"][0][0] for s in samples] == [r["generation"] for r in records]
    accuracy = output["results"][TASK]["exact_match,first_label"]
    assert accuracy == own["accuracy"] and own["count"] == ROWS
    written = json.loads((tmp_path / "harness" / RESULTS_FILE).read_text())
    assert written["results"][TASK]["exact_match,first_label"] == accuracy


@pytest.mark.slow
def test_the_evaluate_command_scores_an_adapter_with_the_harness_as_with_lorasb(shared_data, smollm2_dir, smollm2_tokenizer, tmp_path):
    """A LoRA-SB adapter (initialised from one batch, exported to PEFT's format): lorasb's evaluation
    merges it into the weights, the harness applies it through PEFT; the grades agree."""
    from transformers import AutoModelForCausalLM

    import lorasb

    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    lorasb.attach(model, ["q_proj", "v_proj"], rank=4)
    batch = smollm2_tokenizer(["Is the sky blue on a clear day? the correct answer is true"], return_tensors="pt")
    lorasb.initialize(model, lorasb.estimate_update(model, [{**batch, "labels": batch["input_ids"]}], lr=1e-4))
    adapter = lorasb.export_peft(model, tmp_path / "adapter", base_model_name_or_path=str(smollm2_dir))
    root, tasks = local_boolq(shared_data, tmp_path)
    out = tmp_path / "eval"
    done = subprocess.run(
        [sys.executable, "-m", "lorasb.evaluate", f"adapter={adapter}", f"data.dir={root}", "eval.sets=[boolq]", "eval.batch_size=1",
         f"harness.tasks=[{TASK}]", f"harness.include_path={tasks}", "harness.batch_size=1", "device=cpu", f"hydra.run.dir={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    own = json.loads((out / "eval.json").read_text())["results"]["boolq"]
    harness = json.loads((out / RESULTS_FILE).read_text())
    assert harness["model_args"] == {"pretrained": str(smollm2_dir), "dtype": "float32", "peft": str(adapter)}
    assert harness["results"][TASK]["exact_match,first_label"] == own["accuracy"] and own["count"] == ROWS
