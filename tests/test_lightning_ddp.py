"""The initialisation under Lightning's own data parallelism: 2 CPU processes over gloo (ddp_spawn).

Every process estimates on its share of the init samples, ΣG is summed across processes before
its sign, and both processes end with bit-identical B, R, A, those of a single process over the
same samples (to the rounding of an SVD run with another thread count), even when a process gets
no sample at all. (Dropout is switched off here: with it, each process
draws its own masks, so the estimate agrees with one process's only in distribution.)
"""

from pathlib import Path

import lightning as L
import pytest
import torch

from lorasb.train import build, fit

pytestmark = pytest.mark.slow


class NoDropout(L.Callback):
    """Sets every dropout probability of the model to 0 before the initialisation runs."""

    def on_fit_start(self, trainer, pl_module):
        for module in pl_module.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
            if hasattr(module, "dropout_prob"):
                module.dropout_prob = 0.0


class SaveInitialised(L.Callback):
    """Writes what the initialisation set, as each process holds it, to ``<dir>/rank<k>.pt``."""

    def __init__(self, folder: Path):
        self.folder = folder

    def on_train_start(self, trainer, pl_module):
        names = pl_module.initialized_names()
        tensors = {n: p.detach().clone() for n, p in pl_module.model.named_parameters() if n in names}
        torch.save(tensors, self.folder / f"rank{trainer.global_rank}.pt")


def initialised(composer, run_dir, shared_data, samples, trainer):
    overrides = [
        "model=minilm", "task=glue/mrpc", f"data.dir={shared_data}", "data.train_limit=16", "data.val_limit=8",
        "data.max_length=32", "data.batch_size=4", f"init.num_samples={samples}", "init.batch_size=2",
        "optim.lr=1e-3", f"trainer={trainer}", "trainer.max_steps=1", "validate_before=false",
        "export_adapter=false", "logger=[]", "~callbacks.lr_monitor", "++trainer.enable_progress_bar=false",
        "++trainer.enable_model_summary=false", "++trainer.num_sanity_val_steps=0",
    ]  # fmt: skip
    run = build(composer(overrides, run_dir))
    run.trainer.callbacks[:0] = [NoDropout(), SaveInitialised(run_dir)]
    fit(run)
    return [torch.load(path, weights_only=True) for path in sorted(run_dir.glob("rank*.pt"))]


def gradient_signs(run_dir: Path) -> dict[str, torch.Tensor]:
    """sign(ΣG) as the run's gradient cache holds it (int8), by layer."""
    (folder,) = (run_dir / "gradient_cache").glob("*/sign")
    return {path.stem: torch.load(path, weights_only=True) for path in folder.glob("*.pt")}


@pytest.mark.parametrize("samples", [4, 1], ids=["4 samples", "1 sample for 2 processes"])
def test_two_processes_initialise_as_one(samples, composer, tmp_path, shared_data):
    (single,) = initialised(composer, tmp_path / "single", shared_data, samples, "cpu")
    ranks = initialised(composer, tmp_path / "ddp", shared_data, samples, "ddp_spawn")
    assert len(ranks) == 2
    assert any(name.endswith("lora_R") for name in single) and single.keys() == ranks[0].keys() == ranks[1].keys()
    for name in single:
        assert torch.equal(ranks[0][name], ranks[1][name]), name
    # sign(ΣG) across the two processes is the one process's, but for the entries whose sum is at
    # the rounding level of adding in another order (they take either sign: so they do between
    # two thread counts of one process)
    one, two = gradient_signs(tmp_path / "single"), gradient_signs(tmp_path / "ddp")
    assert one.keys() == two.keys() and len(one) == 24
    differ = sum(int((two[name] != total).sum()) for name, total in one.items())
    assert differ <= 1e-5 * sum(t.numel() for t in one.values())


class RecordLosses(L.Callback):
    """Writes the loss of every step, averaged over the processes, to ``<dir>/losses.pt``."""

    def __init__(self, folder: Path):
        self.folder, self.losses = folder, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(trainer.strategy.reduce(outputs["loss"].detach(), reduce_op="mean")))

    def on_train_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            torch.save(self.losses, self.folder / "losses.pt")


def trained_losses(composer, run_dir, shared_data, cache, trainer, batch_size):
    overrides = [
        "model=minilm", "task=glue/mrpc", f"data.dir={shared_data}", "data.train_limit=64", "data.val_limit=8",
        "data.max_length=32", f"data.batch_size={batch_size}", "init.num_samples=4", "init.batch_size=2",
        "optim.lr=1e-3", f"trainer={trainer}", "trainer.max_steps=4", "validate_before=false", "export_adapter=false",
        "logger=[]", "~callbacks.lr_monitor", f"gradient_cache.dir={cache}", "++trainer.enable_progress_bar=false",
        "++trainer.enable_model_summary=false", "++trainer.num_sanity_val_steps=0",
    ]  # fmt: skip
    run = build(composer(overrides, run_dir))
    run.trainer.callbacks[:0] = [NoDropout(), RecordLosses(run_dir)]
    fit(run)
    return torch.load(run_dir / "losses.pt", weights_only=True)


def test_two_processes_train_as_one_with_their_global_batch(composer, tmp_path, shared_data):
    """2 processes × 4 rows take the steps of 1 process × 8 rows: each epoch's seeded order is
    dealt out between the processes, and DDP averages their gradients. Both start from one ΣG
    (the single run's, through the gradient cache), so the losses agree to float rounding."""
    single = trained_losses(composer, tmp_path / "single", shared_data, tmp_path / "cache", "cpu", 8)
    ddp = trained_losses(composer, tmp_path / "ddp", shared_data, tmp_path / "cache", "ddp_spawn", 4)
    assert len(single) == len(ddp) == 4
    assert len(set(single)) == 4  # the steps changed the model
    torch.testing.assert_close(torch.tensor(ddp), torch.tensor(single), rtol=1e-4, atol=0)
