"""``model``: the pretrained model and where the method adapts it (conf/model/, conf/family/)."""

from dataclasses import dataclass

from lorasb.settings.fields import setting


@dataclass
class ModelSettings:
    name_or_path: str = setting(help="a Hugging Face Hub name or a local folder")
    target_modules: list[str] | str = setting(
        help="the linear layers the method adapts: names or name suffixes (each must match a layer), or all-linear "
        "(every nn.Linear but the output layer and the head)"
    )
    head: list[str] = setting(factory=list, help="modules trained in full with every method (e.g. a classifier)")
    dtype: str = setting("float32", help="dtype the weights load in")
    kind: str | None = setting(None, help="encoder or causal_lm: the tasks the model fits")
