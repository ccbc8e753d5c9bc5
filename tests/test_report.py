"""The report of runs that differ in their seed: statistics checked against SciPy, seeds paired,
one seed without an interval, the mark of an interval that excludes 0, and both figures."""

import csv
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
from scipy import stats

from lorasb.report import collect, write_report
from lorasb.report.runs import validation_curve
from lorasb.report.stats import estimate, t_quantile, t_two_sided_p

REPO = Path(__file__).resolve().parents[1]
RANKS = {"lora_sb": 24, "lora": 8, "dora": 8}
TRAINABLE = {"lora_sb": 14_594, "lora": 203_522, "dora": 212_738}
MAJORITY = 0.6838


def fake_run(
    root: Path, task: str, method: str, seed: int, best: float, final: float | None = None, loss: float = 0.5, evaluation: dict | None = None
) -> Path:
    """A finished run's files as a training run writes them: metrics.json (with ``evaluation`` as the
    results of the sets evaluated after training), the Hydra config (with the seed) and the CSV
    log's validation rows (before training, then two epochs)."""
    run_dir = root / f"{task}_{method}_seed{seed}"
    metric = "val/accuracy"
    summary = {
        "run": {"task": task, "method": method, "rank": RANKS[method], "lr": 0.001, "monitor": metric},
        "before": {metric: MAJORITY},
        "final": {metric: best if final is None else final, "val/loss": loss},
        "best": {metric: best, "val/loss": loss},
        "init_seconds": 2.0, "train_seconds": 10.0 + seed, "peak_memory_mb": 1000.0,
        "parameters": {"trainable": TRAINABLE[method], "total": 22_713_986},
        "baseline": {"name": "majority class", "scores": {metric: MAJORITY}},
    } | ({"eval": evaluation} if evaluation else {})  # fmt: skip
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(summary))
    (run_dir / ".hydra" / "config.yaml").write_text(f"seed: {seed}\nrank: {RANKS[method]}\nrun_dir: ${{hydra:runtime.output_dir}}\n")
    (run_dir / "logs").mkdir()
    with open(run_dir / "logs" / "metrics.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", "step", "train/loss", metric, "val/loss"])
        writer.writerows([[0, 0, "", MAJORITY, 0.7], [0, 1, 0.69, "", ""], [0, 1, "", (MAJORITY + best) / 2, 0.6], [1, 2, "", best, loss]])
    return run_dir


def csv_rows(path: Path) -> list[dict]:
    with open(path) as file:
        return list(csv.DictReader(file))


def md_rows(text: str, section: str) -> list[list[str]]:
    """The cells of the rows of the table under the heading ``section`` of report.md."""
    lines = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0].splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("| ")][2:]


def report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorasb.report", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


# --- the t distribution, without SciPy at run time ---


def test_hand_worked_interval():
    """1, 2, 3: mean 2, sd 1, t(0.975, 2 df) = 4.302653, so 2 ± 4.302653/√3 = 2 ± 2.484138."""
    e = estimate([1.0, 2.0, 3.0])
    assert (e.n, e.mean, e.sd) == (3, 2.0, 1.0)
    assert e.low == pytest.approx(-0.484138, abs=1e-6) and e.high == pytest.approx(4.484138, abs=1e-6)
    assert not e.excludes(0.0) and e.excludes(-0.5) and e.excludes(4.5)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 30, 1000])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_t_quantile_matches_scipy(df, confidence):
    assert t_quantile(confidence, df) == pytest.approx(stats.t.ppf((1 + confidence) / 2, df), rel=1e-10)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 7.0, 40.0])
@pytest.mark.parametrize("df", [1, 4, 25])
def test_two_sided_p_matches_scipy(t, df):
    assert t_two_sided_p(t, df) == pytest.approx(2 * stats.t.sf(t, df), rel=1e-9, abs=1e-300)


def test_one_value_has_no_interval_and_none_has_no_estimate():
    e = estimate([0.8])
    assert (e.n, e.mean, e.sd, e.has_interval, e.excludes(0.0), e.p_value()) == (1, 0.8, None, False, False, None)
    assert estimate([]) is None


# --- fabricated runs: statistics, pairing, marks, figures ---


LORA_SB = {1: 0.80, 2: 0.82, 3: 0.85, 4: 0.79}  # seed 4: lora_sb only
LORA = {1: 0.78, 2: 0.81, 3: 0.80, 5: 0.83}  # seed 5: lora only
CLEAR = {"lora_sb": {1: 0.90, 2: 0.92, 3: 0.91}, "lora": {1: 0.87, 2: 0.90, 3: 0.885}}  # lora_sb ahead in every seed


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for method, scores in (("lora_sb", LORA_SB), ("lora", LORA)):
        for seed, best in scores.items():
            fake_run(root, "mrpc", method, seed, best, final=best - 0.01, loss=1 - best)
    for method, scores in CLEAR.items():
        for seed, best in scores.items():
            fake_run(root, "sst2", method, seed, best)
    fake_run(root, "sst2", "dora", 1, 0.95)  # one seed only
    write_report(root)
    return root


def setting(root: Path, task: str, method: str) -> dict:
    (found,) = [r for r in csv_rows(root / "report.csv") if (r["task"], r["method"]) == (task, method)]
    return found


def test_settings_are_grouped_by_seed_and_match_scipy(runs):
    row = setting(runs, "mrpc", "lora_sb")
    values = list(LORA_SB.values())
    mean, sd = sum(values) / 4, stats.tstd(values)
    low, high = stats.t.interval(0.95, 3, loc=mean, scale=stats.sem(values))
    assert (row["n"], row["seeds"], row["rank"], row["metric"]) == ("4", "1 2 3 4", "24", "val/accuracy")
    for column, expected in {"best": mean, "best_sd": sd, "best_low": low, "best_high": high, "final": mean - 0.01}.items():
        assert float(row[column]) == pytest.approx(expected, rel=1e-9), column
    # every other metric at its best, the same way
    losses = [1 - v for v in values]
    assert float(row["best val/loss_high"]) == pytest.approx(stats.t.interval(0.95, 3, loc=sum(losses) / 4, scale=stats.sem(losses))[1])
    assert (row["trainable"], float(row["train_seconds"])) == ("14594", 12.5)  # means
    text = (runs / "report.md").read_text()
    (md,) = [r for r in md_rows(text, "Main metric") if r[:2] == ["mrpc", "lora_sb"]]
    assert md[4:9] == ["4", "1 2 3 4", "val/accuracy", f"{mean:.4f} ± {sd:.4f}", f"[{low:.4f}, {high:.4f}]"]
    assert [len(rows) for rows in (md_rows(text, "Main metric"), md_rows(text, "Every metric"))] == [5, 5]


def test_seeds_are_paired_and_the_unpaired_counted(runs):
    (pair,) = [r for r in csv_rows(runs / "report_pairs.csv") if r["task"] == "mrpc"]
    paired = [1, 2, 3]
    a, b = [LORA_SB[s] for s in paired], [LORA[s] for s in paired]
    differences = [x - y for x, y in zip(a, b)]
    low, high = stats.t.interval(0.95, 2, loc=sum(differences) / 3, scale=stats.sem(differences))
    assert (pair["pairs"], pair["seeds"], pair["compare_rank"], pair["against_rank"]) == ("3", "1 2 3", "24", "8")
    assert pair["left_out"] == "seed 4 (lora_sb only); seed 5 (lora only)"
    assert float(pair["difference"]) == pytest.approx(sum(differences) / 3)
    assert (float(pair["difference_low"]), float(pair["difference_high"])) == pytest.approx((low, high))
    assert float(pair["p"]) == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    (md,) = [r for r in md_rows((runs / "report.md").read_text(), "lora_sb − lora") if r[0] == "mrpc"]
    assert md[2:6] == ["r=24, lr 0.001", "r=8, lr 0.001", "3 (seeds 1 2 3)", "seed 4 (lora_sb only), seed 5 (lora only)"]


def test_the_mark_appears_exactly_where_the_interval_excludes_0(runs):
    pairs = {r["task"]: r for r in csv_rows(runs / "report_pairs.csv")}
    for task, pair in pairs.items():
        low, high = float(pair["difference_low"]), float(pair["difference_high"])
        assert pair["excludes_zero"] == str(low > 0 or high < 0)
    assert (pairs["sst2"]["excludes_zero"], pairs["mrpc"]["excludes_zero"]) == ("True", "False")
    marks = {r[0]: r[-1] for r in md_rows((runs / "report.md").read_text(), "lora_sb − lora")}
    assert marks == {"mrpc": "", "sst2": "✓"}


def test_one_seed_says_it_has_no_interval(runs):
    row = setting(runs, "sst2", "dora")
    assert (row["n"], row["best"], row["best_sd"], row["best_low"]) == ("1", "0.95", "", "")
    (md,) = [r for r in md_rows((runs / "report.md").read_text(), "Main metric") if r[1] == "dora"]
    assert md[7:9] == ["0.9500", "n=1: no interval"]


def test_both_figures_are_drawn(runs):
    for name in ("report.png", "report_curves.png"):
        path = runs / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 300 and pixels.std() > 0.05  # drawn on, not a blank canvas


def test_a_pair_of_one_seed_has_no_interval_and_no_mark(tmp_path):
    fake_run(tmp_path, "rte", "lora_sb", 7, 0.70)
    fake_run(tmp_path, "rte", "lora", 7, 0.50)
    fake_run(tmp_path, "rte", "lora", 8, 0.50)
    write_report(tmp_path)
    (md,) = md_rows((tmp_path / "report.md").read_text(), "lora_sb − lora")
    assert md[4:] == ["1 (seeds 7)", "seed 8 (lora only)", "+0.2000", "n=1: no interval", "", ""]


def test_a_repeated_seed_is_averaged_and_a_run_without_a_seed_left_out(tmp_path):
    fake_run(tmp_path / "a", "rte", "lora_sb", 1, 0.70)
    fake_run(tmp_path / "b", "rte", "lora_sb", 1, 0.74)  # seed 1 again, in another sweep
    fake_run(tmp_path, "rte", "lora_sb", 2, 0.80)
    for seed in (1, 2):
        fake_run(tmp_path, "rte", "lora", seed, 0.60)
    unseeded = fake_run(tmp_path, "rte", "lora", 3, 0.90)
    (unseeded / ".hydra" / "config.yaml").unlink()  # e.g. a run composed in a notebook, without the CSV logger
    write_report(tmp_path)
    (pair,) = csv_rows(tmp_path / "report_pairs.csv")
    assert (pair["seeds"], pair["left_out"]) == ("1 2", "1 lora run without a seed")
    assert float(pair["difference"]) == pytest.approx(((0.70 + 0.74) / 2 - 0.60 + 0.80 - 0.60) / 2)  # seed 1: its two runs' mean
    assert setting(tmp_path, "rte", "lora")["n"] == "3"  # the unseeded run counts in its setting
    text = (tmp_path / "report.md").read_text()
    assert "- rte lora_sb r=24: seed 1 ran more than once" in text and "- 1 run(s) kept no config with a seed" in text


def test_cli_options_choose_the_methods_and_take_several_folders(tmp_path):
    for seed, (mine, theirs) in enumerate([(0.9, 0.8), (0.91, 0.8), (0.9, 0.82)], start=1):
        fake_run(tmp_path / "a", "sst2", "dora", seed, mine)
        fake_run(tmp_path / "b", "sst2", "lora", seed, theirs)
    assert report(str(tmp_path / "a"), str(tmp_path / "b")).returncode == 2  # where to: --out
    out = ["--out", str(tmp_path / "out")]
    result = report(str(tmp_path / "a"), str(tmp_path / "b"), *out, "--compare", "dora", "--against", "lora", "--confidence", "0.9")
    assert result.returncode == 0, result.stderr
    assert "## dora − lora, paired by seed" in result.stdout and "| 90% CI |" in result.stdout
    (pair,) = csv_rows(tmp_path / "out" / "report_pairs.csv")
    differences = [0.1, 0.11, 0.08]
    low, _ = stats.t.interval(0.9, 2, loc=sum(differences) / 3, scale=stats.sem(differences))
    assert float(pair["difference_low"]) == pytest.approx(low)
    (md,) = md_rows((tmp_path / "out" / "report.md").read_text(), "dora − lora")
    assert md[4] == "3 (seeds 1 2 3)" and md[-1] == "✓"
    runs = csv_rows(tmp_path / "out" / "report_runs.csv")
    assert sorted((r["method"], r["seed"]) for r in runs)[:2] == [("dora", "1"), ("dora", "2")]
    assert all(not os.path.isabs(r["run_dir"]) and (tmp_path / "out" / r["run_dir"]).is_dir() for r in runs)


def test_the_missing_reference_is_noted(tmp_path):
    fake_run(tmp_path, "sst2", "lora_sb", 1, 0.8)
    write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "No task has runs of both lora_sb and lora." in text and "- sst2: no lora runs, so no paired comparison." in text
    assert csv_rows(tmp_path / "report_pairs.csv") == []


GSM8K_CORRECT = {"lora_sb": {1: 9, 2: 12, 3: 10}, "lora": {1: 7, 2: 8, 3: 9}}  # of the same 200 questions


def test_scores_after_training_get_their_table_intervals_pairs_and_panel(tmp_path):
    """GSM8K's accuracy after training: mean, sd and interval as SciPy computes them, paired by seed
    beside the main metric, a column of report_runs.csv and a panel of report.png; its counts and
    timings are not scores, and a run without evaluations stays out of that table."""
    for method, correct in GSM8K_CORRECT.items():
        for seed, right in correct.items():
            results = {"accuracy": right / 200, "correct": right, "count": 200, "seconds": 61.0, "seconds_per_example": 0.305}
            fake_run(tmp_path / "math", "metamath", method, seed, 0.5 + seed / 100, evaluation={"gsm8k": results})
    fake_run(tmp_path / "glue", "sst2", "lora_sb", 1, 0.9)
    write_report(tmp_path)
    mine, theirs = ([c / 200 for c in GSM8K_CORRECT[m].values()] for m in ("lora_sb", "lora"))
    mean, sd = sum(mine) / 3, stats.tstd(mine)
    low, high = stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(mine))
    row = setting(tmp_path, "metamath", "lora_sb")
    for column, expected in {"": mean, "_sd": sd, "_low": low, "_high": high}.items():
        assert float(row[f"eval gsm8k/accuracy{column}"]) == pytest.approx(expected, rel=1e-9), column
    assert row["evaluated"] == "gsm8k 200"
    assert [c for c in row if c.startswith("eval ")] == [f"eval gsm8k/accuracy{c}" for c in ("", "_sd", "_low", "_high")]
    assert setting(tmp_path, "sst2", "lora_sb")["evaluated"] == ""
    pairs = {r["metric"]: r for r in csv_rows(tmp_path / "report_pairs.csv")}
    assert sorted(pairs) == ["gsm8k/accuracy", "val/accuracy"]
    assert float(pairs["gsm8k/accuracy"]["difference"]) == pytest.approx((2 + 4 + 1) / 3 / 200)
    assert float(pairs["gsm8k/accuracy"]["p"]) == pytest.approx(stats.ttest_rel(mine, theirs).pvalue, rel=1e-9)
    assert float(pairs["val/accuracy"]["difference"]) == pytest.approx(0.0)  # the same best in each seed
    text = (tmp_path / "report.md").read_text()
    evaluated = md_rows(text, "The evaluation sets after training")
    assert [r[:2] for r in evaluated] == [["metamath", "lora"], ["metamath", "lora_sb"]]
    assert evaluated[1][5:] == ["gsm8k 200", f"{mean:.4f} ± {sd:.4f} [{low:.4f}, {high:.4f}]"]
    assert [r[1] for r in md_rows(text, "lora_sb − lora")] == ["val/accuracy", "gsm8k/accuracy"]
    runs = {(r["method"], r["seed"]): r for r in csv_rows(tmp_path / "report_runs.csv") if r["task"] == "metamath"}
    assert runs["lora_sb", "2"]["gsm8k/accuracy"] == "0.06"
    write_report(tmp_path / "glue")  # the same figure without the evaluation's panel
    widths = [matplotlib.image.imread(path).shape[1] for path in (tmp_path / "report.png", tmp_path / "glue" / "report.png")]
    assert widths[0] == 3 * widths[1]  # panels: sst2, metamath's val/accuracy, metamath's gsm8k/accuracy


def test_an_earlier_reports_runs_are_read_back_and_a_redone_run_replaces_its_row(tmp_path):
    """An earlier report's report_runs.csv, its run folders gone, with one run redone in a new
    folder: the untouched settings keep their statistics exactly, the redone seed's new score
    enters its setting and its pairs, the scores after training come back, and the note says so."""
    first = {"lora_sb": {1: 0.80, 2: 0.82, 3: 0.85}, "lora": {1: 0.78, 2: 0.50, 3: 0.80}}  # lora's seed 2 failed
    for method, scores in first.items():
        for seed, best in scores.items():
            fake_run(tmp_path / "runs", "mrpc", method, seed, best, evaluation={"gsm8k": {"accuracy": best / 10, "count": 8}})
    write_report(tmp_path / "runs")
    earlier = tmp_path / "earlier" / "report_runs.csv"
    earlier.parent.mkdir()
    (tmp_path / "runs" / "report_runs.csv").rename(earlier)
    fake_run(tmp_path / "redone", "mrpc", "lora", 2, 0.83)
    result = report(str(earlier), str(tmp_path / "redone"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    before, after = setting(tmp_path / "runs", "mrpc", "lora_sb"), setting(tmp_path / "out", "mrpc", "lora_sb")
    kept = [column for column in before if not column.startswith("best val/loss")]
    assert [after[c] for c in kept] == [before[c] for c in kept] and after["best val/loss"] == ""  # the CSV has no other metric
    lora = [0.78, 0.83, 0.80]
    row = setting(tmp_path / "out", "mrpc", "lora")
    assert (row["n"], float(row["best"]), float(row["best_sd"])) == ("3", pytest.approx(sum(lora) / 3), pytest.approx(stats.tstd(lora)))
    pairs = {r["metric"]: r for r in csv_rows(tmp_path / "out" / "report_pairs.csv")}
    differences = [0.80 - 0.78, 0.82 - 0.83, 0.85 - 0.80]
    assert float(pairs["val/accuracy"]["difference"]) == pytest.approx(sum(differences) / 3)
    assert float(pairs["val/accuracy"]["p"]) == pytest.approx(stats.ttest_1samp(differences, 0).pvalue, rel=1e-9)
    assert pairs["gsm8k/accuracy"]["seeds"] == "1 3"  # the redone run was not evaluated
    runs = {(r["method"], r["seed"]): r for r in csv_rows(tmp_path / "out" / "report_runs.csv")}
    assert runs["lora", "2"]["baseline"] == str(MAJORITY) and runs["lora_sb", "1"]["gsm8k/accuracy"] == "0.08"
    assert runs["lora_sb", "1"]["gsm8k/count"] == "8" and runs["lora", "2"]["gsm8k/count"] == ""
    assert setting(tmp_path / "out", "mrpc", "lora_sb")["evaluated"] == "gsm8k 8"
    assert "- 5 run(s) read from an earlier report" in result.stdout and "- 5 run(s) have no validation curve" in result.stdout
    assert matplotlib.image.imread(tmp_path / "out" / "report_curves.png").shape[:2] == (320, 400)  # one panel: the redone run's
    assert not report(str(tmp_path / "missing.csv"), "--out", str(tmp_path / "out")).returncode == 0


# --- real runs through the command lines ---


@pytest.mark.slow
def test_report_of_real_runs(tmp_path):
    """LoRA-SB and LoRA at seeds 1 and 2 on the packaged SST-2 sample (two epochs of one step),
    one multirun, and its report through the command line."""
    env = {k: v for k, v in os.environ.items() if k != "LORASB_DATA_DIR"} | {"HYDRA_FULL_ERROR": "1"}
    sweep = tmp_path / "sweep"
    command = [
        sys.executable, "-m", "lorasb.train", "-m", "experiment=quickstart", "method=lora_sb,lora", "seed=1,2",
        "data.train_limit=16", "data.batch_size=16", "data.val_limit=32", "data.max_length=32", "init.num_samples=8",
        "init.batch_size=8", "trainer.max_epochs=2", "export_adapter=false", "++trainer.enable_progress_bar=false",
        "++trainer.enable_model_summary=false", f"gradient_cache.dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stderr[-3000:]
    result = report(str(sweep))
    assert result.returncode == 0, result.stderr
    runs = collect(sweep)  # each seed read back from the run's config
    assert [(r["method"], r["seed"]) for r in runs] == [("lora", 1), ("lora", 2), ("lora_sb", 1), ("lora_sb", 2)]
    settings = {r["method"]: r for r in csv_rows(sweep / "report.csv")}
    scores = {method: [r["best"] for r in runs if r["method"] == method] for method in ("lora_sb", "lora")}
    half_width = stats.t.ppf(0.975, 1) * statistics.stdev(scores["lora_sb"]) / math.sqrt(2)
    assert (settings["lora_sb"]["n"], settings["lora_sb"]["seeds"]) == ("2", "1 2")
    assert float(settings["lora_sb"]["best_high"]) == pytest.approx(sum(scores["lora_sb"]) / 2 + half_width)
    (pair,) = csv_rows(sweep / "report_pairs.csv")
    differences = [a - b for a, b in zip(scores["lora_sb"], scores["lora"])]
    assert (pair["pairs"], pair["seeds"], pair["left_out"]) == ("2", "1 2", "")
    assert float(pair["difference_low"]) == pytest.approx(sum(differences) / 2 - stats.t.ppf(0.975, 1) * statistics.stdev(differences) / math.sqrt(2))
    assert all(len(validation_curve(r["run_dir"], "val/accuracy")) == 3 for r in runs)  # before training, then 2 epochs
    assert (sweep / "report_curves.png").stat().st_size > 20_000 and (sweep / "report.png").stat().st_size > 20_000
