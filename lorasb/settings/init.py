"""``init``: the estimate of the first full fine-tuning step that initialises LoRA-SB and LoRA-GA,
its memory, the SVD, and a classifier head's starting bias."""

from dataclasses import dataclass
from typing import Any

from lorasb.settings.accumulator import ACCUMULATOR_DTYPES, AccumulatorOptions
from lorasb.settings.checks import Check, boolean, integer, is_number, one_of
from lorasb.settings.fields import nested, setting
from lorasb.settings.svd import SVDConfig

HEAD_BIASES = ("prior", "zero")  # lorasb.lightning.head_bias


@dataclass
class InitSettings:
    """The few training samples whose summed gradient ΣG initialises the methods that need it."""

    num_samples: int = setting(32, help="training samples whose gradients are summed for the first-step estimate", check=integer(1))
    batch_size: int = setting(16, help="batch size of the estimate", check=integer(1))
    first_lr: Any = setting(
        "schedule",
        help="lr₁ of the estimated step: schedule (the lr the schedule gives the first optimizer step), reference "
        "(the reference implementation's estimation-loader-based value; see the README) or a number",
        check=Check("schedule, reference or a number > 0", lambda v: v in ("schedule", "reference") or (is_number(v) and v > 0)),
    )
    accumulator_dtype: str = setting(
        AccumulatorOptions.dtype,
        help="dtype of the sums: float32, or bfloat16 (half their memory; over 8 batches of 4 of all-MiniLM-L6 on MRPC, "
        "99.95% of the entries of sign(ΣG) agree with float32's)",
        check=one_of(ACCUMULATOR_DTYPES),
    )
    offload: bool = setting(
        AccumulatorOptions.offload,
        help="keep the sums in (pinned) CPU memory; each layer's gradient is copied there",
        check=boolean(),
    )
    layer_groups: int = setting(
        AccumulatorOptions.layer_groups,
        help="k ≥ 1 contiguous groups of target layers of about equal size, one pass over the init batches per group: "
        "the sums of the largest group only, at k× the gradient passes",
        check=integer(1),
    )
    memory_budget: Any = setting(
        None,
        help="null (no check), bytes, or auto (free GPU memory; MemAvailable on a CPU): raises layer_groups until "
        "the estimate fits, else stops with the options to change",
        check=Check("a number of bytes > 0 or auto", lambda v: v == "auto" or (is_number(v) and v > 0), nullable=True),
    )
    head_bias: str = setting(
        "prior",
        help="a classifier's output bias at the start: prior (the training labels' log class frequencies; regression: "
        "their mean), so that the first steps, the first-step estimate and optim.lr=auto learn the task rather than "
        "its label prior; zero: the freshly initialised head's own (models without a classifier head: unused)",
        check=one_of(HEAD_BIASES),
    )
    sign_agreement: bool = setting(
        False,
        help="on a quantized base (model.quantization), also estimate sign(ΣG) on the float base and record per layer the "
        "fraction of entries whose signs agree (init_stats.json; it loads the float model beside the quantized one)",
        check=boolean(),
    )
    svd: SVDConfig = nested(SVDConfig, help="the truncated SVD of the initialisation")

    def accumulator(self) -> AccumulatorOptions:
        """How ΣG is held (before ``memory_budget`` raises the layer groups)."""
        return AccumulatorOptions(self.accumulator_dtype, self.offload, self.layer_groups)
