"""``model``: the pretrained model and where the method adapts it (conf/model/, conf/family/)."""

import importlib.util
from dataclasses import dataclass
from typing import Any

from lorasb.settings.checks import boolean, one_of
from lorasb.settings.fields import setting

QUANTIZATIONS = ("nf4", "fp4", "int8")  # bitsandbytes through transformers' BitsAndBytesConfig
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
INSTALL = "pip install 'lorasb[quant]'"
REWRITING_METHODS = ("pissa", "lora_ga", "full")  # they write into W0 or train it, which a quantized W0 cannot take


def quantization_problem(method: str | None, kind: str | None, model_kind: str | None) -> str | None:
    """Why ``method`` (None: evaluation) cannot run on a model of ``model_kind`` quantized as ``kind``, or None."""
    if kind is None:
        return None
    if model_kind != "causal_lm":
        return f"model.quantization={kind}: quantized bases are for causal language models; set model.quantization=null"
    if method in REWRITING_METHODS:
        return (
            f"method={method} writes into the base weights, which model.quantization={kind} holds quantized; "
            "use lora_sb, lora_xs, lora or dora, or model.quantization=null"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        return f"model.quantization={kind} needs bitsandbytes, which is not installed: {INSTALL}"
    return None


@dataclass
class ModelSettings:
    name_or_path: str = setting(help="a Hugging Face Hub name or a local folder")
    target_modules: Any = setting(  # list[str] | str, which a structured config cannot declare
        help="the linear layers the method adapts: names or name suffixes (each must match a layer), or all-linear "
        "(every nn.Linear but the output layer and the head)"
    )
    head: list[str] = setting(factory=list, help="modules trained in full with every method (e.g. a classifier)")
    dtype: str = setting("float32", help="dtype the weights load in")
    kind: str | None = setting(None, help="encoder or causal_lm: the tasks the model fits")
    quantization: str | None = setting(
        None,
        help="a causal language model's linear layers held in nf4, fp4 or int8 by bitsandbytes (pip install 'lorasb[quant]'); "
        "null: as model.dtype says",
        check=one_of(QUANTIZATIONS, nullable=True),
    )
    compute_dtype: str | None = setting(
        None, help="dtype a 4-bit layer computes in (null: model.dtype)", check=one_of(COMPUTE_DTYPES, nullable=True)
    )
    double_quant: bool = setting(True, help="4-bit: quantize the quantization constants too (about 0.4 bits less per weight)", check=boolean())

    def layer_compute_dtype(self) -> str:
        """The dtype a 4-bit layer computes in: ``compute_dtype``, else ``dtype``."""
        return self.compute_dtype or self.dtype
