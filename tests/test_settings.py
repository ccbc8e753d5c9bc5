"""The typed settings (lorasb/settings): every composed config builds them, no code reads a
setting with a default of its own, the YAML restates no default, Hydra refuses a wrong type."""

import ast
import dataclasses
import inspect
import os
import subprocess
import sys
import types
import typing
from pathlib import Path

import hydra
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from lorasb.config import config_problems, group_options, register_resolvers, register_settings
from lorasb.config.choices import model_kind
from lorasb.settings.accumulator import AccumulatorOptions
from lorasb.settings.convert import SettingsError, settings_from
from lorasb.settings.data import DataSettings, InstructionDataSettings, LabeledFileSettings
from lorasb.settings.evaluation import EvalAfterFitSettings, EvalSettings
from lorasb.settings.fields import default
from lorasb.settings.gradient_cache import GradientCacheSettings
from lorasb.settings.init import InitSettings
from lorasb.settings.instruction_files import InstructionFileSettings
from lorasb.settings.model import ModelSettings
from lorasb.settings.optim import OptimSettings
from lorasb.settings.svd import SVDConfig

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lorasb"
BLOCKS = {"model": ModelSettings, "init": InitSettings, "optim": OptimSettings, "gradient_cache": GradientCacheSettings}


def fitting_model(task: str) -> str:
    return "smollm2_135m" if task in ("metamath", "commonsense", "custom/instruction") else "minilm"


def named(model: str) -> list[str]:
    """The generic model entries (model=hf_encoder, hf_causal_lm) need the model named."""
    return ["model.name_or_path=some/model"] if OmegaConf.is_missing(OmegaConf.load(REPO / "conf" / "model" / f"{model}.yaml"), "name_or_path") else []


CONFIGS = (
    [(f"experiment={name}",) for name in group_options("experiment")]
    + [(f"task={task}", f"model={fitting_model(task)}") for task in group_options("task")]
    + [(f"method={method}",) for method in group_options("method")]
    + [(f"model={model}", *named(model), "task=metamath" if model_kind(model) == "causal_lm" else "task=glue/rte") for model in group_options("model")]
)


# --- (a) every composed config builds the typed settings --------------------------------------


def matches(value, hint) -> bool:
    """Whether ``value`` is of the annotated type ``hint`` (the few kinds the settings use)."""
    if hint is typing.Any:
        return True
    if isinstance(hint, types.UnionType):
        return any(matches(value, arg) for arg in typing.get_args(hint))
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(matches(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def type_problems(settings, key: str) -> list[str]:
    problems = []
    hints = typing.get_type_hints(type(settings))
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if dataclasses.is_dataclass(value):
            problems += type_problems(value, f"{key}.{field.name}")
        elif not matches(value, hints[field.name]):
            problems.append(f"{key}.{field.name}={value!r} is not {hints[field.name]}")
    return problems


def test_the_type_check_sees_a_wrong_type():
    assert type_problems(InitSettings(layer_groups=1.5), "init") == ["init.layer_groups=1.5 is not <class 'int'>"]
    assert type_problems(OptimSettings(lr=1e-3, betas=[0.9, "x"]), "optim") == ["optim.betas=[0.9, 'x'] is not list[float]"]


@pytest.mark.parametrize("overrides", CONFIGS, ids=" ".join)
def test_every_config_builds_the_typed_settings(compose, overrides):
    module = OmegaConf.to_container(compose(*overrides).module, resolve=True)
    for key, cls in BLOCKS.items():
        settings = settings_from(cls, module[key], key)  # an unknown key raises
        assert set(module[key]) == {field.name for field in dataclasses.fields(cls)}, f"{key}: keys missing from the config"
        assert dataclasses.asdict(settings) == module[key]
        assert type_problems(settings, key) == []


def compose_evaluate(*overrides):
    """conf/evaluate.yaml composed as ``python -m lorasb.evaluate`` does."""
    register_resolvers()
    register_settings()
    with hydra.initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra.compose("evaluate", overrides=["run_dir=/tmp/unused", *overrides])


@pytest.mark.parametrize("overrides", CONFIGS, ids=" ".join)
def test_every_config_builds_the_data_and_eval_settings(compose, overrides):
    """The instruction tasks' data hold rows out (val_size) and their eval runs after training;
    the GLUE tasks' have neither, nor an eval block."""
    values = OmegaConf.to_container(compose(*overrides), resolve=True)
    instruction = values["task"]["model_kind"] == "causal_lm"
    files = values["task"]["name"] == "instruction"  # task=custom/instruction: the user's files
    own_files = values["task"]["name"] in ("classification", "regression")
    data = InstructionFileSettings if files else InstructionDataSettings if instruction else LabeledFileSettings if own_files else DataSettings
    classes = {"data": data, "eval": EvalAfterFitSettings} if instruction else {"data": data}
    assert "eval" in values if instruction else "eval" not in values
    target = values["data"].pop("_target_")  # the class Hydra builds, no setting
    modules = {
        InstructionFileSettings: "InstructionFileDataModule", InstructionDataSettings: "InstructionDataModule",
        LabeledFileSettings: "LabeledFileDataModule", DataSettings: "GlueDataModule",
    }  # fmt: skip
    assert target == f"lorasb.data.{modules[data]}"
    for key, cls in classes.items():
        settings = settings_from(cls, values[key], key)  # an unknown key raises
        assert dataclasses.asdict(settings) == values[key], f"{key}: keys missing from the config"
        assert type_problems(settings, key) == []


def test_the_evaluation_config_builds_the_eval_settings():
    values = OmegaConf.to_container(compose_evaluate().eval, resolve=True)
    assert dataclasses.asdict(settings_from(EvalSettings, values, "eval")) == values == dataclasses.asdict(EvalSettings())


def test_only_the_instruction_tasks_hold_rows_out(compose):
    assert "val_size" not in compose("task=glue/mrpc").data
    with pytest.raises(ConfigCompositionException):
        compose("task=glue/mrpc", "data.val_size=10")
    assert compose("task=metamath", "model=smollm2_135m").data.val_size == default(InstructionDataSettings, "val_size")


def test_an_unknown_key_names_itself_and_the_known_ones():
    with pytest.raises(SettingsError, match=r"^optim\.warmup: no such setting; the settings of optim are: lr, auto_lr, weight_decay, betas, scheduler, warmup_ratio$"):
        settings_from(OptimSettings, {"lr": 1e-3, "warmup": 0.1}, "optim")
    with pytest.raises(SettingsError, match=r"^init\.svd\.iterations: no such setting; the settings of init\.svd are: niter, "):
        settings_from(InitSettings, {"svd": {"iterations": 2}}, "init")
    with pytest.raises(SettingsError, match=r"^optim\.lr: required, but not set$"):
        settings_from(OptimSettings, {}, "optim")


def test_the_config_check_reports_an_unknown_setting(compose):
    problems = config_problems(compose("+optim.gradient_clip=1.0", "+init.svd.iterations=2"))
    assert problems[0].startswith("optim.gradient_clip: no such setting; the settings of optim are: optim.lr, optim.auto_lr.candidates, ")
    assert problems[1].startswith("init.svd.iterations: no such setting; the settings of init are: init.num_samples, ")
    assert len(problems) == 2


# --- (b) no code reads a setting with a default of its own ------------------------------------

SETTINGS_NAMES = {
    "optim", "init", "method", "model", "gradient_cache", "data", "eval", "trainer", "hparams", "cfg",
    "settings", "model_cfg", "cache_cfg", "auto_lr", "svd", "options",
}  # fmt: skip
# getattr also reads the objects of the same names (a model, the trainer): only the configs' own names
GETATTR_NAMES = SETTINGS_NAMES - {"model", "method", "data", "trainer"}


def _names(node: ast.AST) -> set[str]:
    """The names a receiver expression is made of: ``self.hparams["optim"]`` → self, hparams, optim."""
    names = set()
    for part in ast.walk(node):
        if isinstance(part, ast.Name):
            names.add(part.id)
        elif isinstance(part, ast.Attribute):
            names.add(part.attr)
        elif isinstance(part, ast.Constant) and isinstance(part.value, str):
            names.add(part.value)
    return names


def own_defaults(path: Path) -> list[str]:
    """``file:line`` of every ``<settings>.get("key", default)`` (or ``pop``/``setdefault``) and
    ``getattr(<settings>, "key", default)`` in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func, args = node.func, node.args
        keyed = len(args) >= 1 and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)
        if isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault") and keyed:
            defaulted, receiver, names = len(args) + len(node.keywords) >= 2, func.value, SETTINGS_NAMES
        elif isinstance(func, ast.Name) and func.id == "getattr" and len(args) == 3:
            defaulted, receiver, names = True, args[0], GETATTR_NAMES
        else:
            continue
        used = _names(receiver)
        if defaulted and (used & names or any(name.endswith("_settings") for name in used)):
            found.append((node.lineno, f"{path}:{node.lineno}: {ast.unparse(node)}"))
    return [line for _, line in sorted(found)]


def test_no_code_reads_a_setting_with_a_default_of_its_own():
    found = [line for path in sorted(PACKAGE.rglob("*.py")) for line in own_defaults(path)]
    assert not found, "settings read with a default of their own (give it to the setting in lorasb/settings):\n" + "\n".join(found)


def test_the_scan_finds_a_planted_default(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        "def first_lr(self):\n"
        '    ratio = self.hparams.optim.get("warmup_ratio", 0.0)\n'
        '    betas = getattr(cfg.optim, "betas", (0.9, 0.999))\n'
        '    groups = self.hparams["init"].get("layer_groups", 1)\n'
        '    kind = summary.get("kind", "none")  # not a setting\n'
        '    scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # not a setting\n'
        '    lr = getattr(self.optim_settings, "lr", 1e-3)\n'
        '    dtype = init.get("accumulator_dtype")  # no default of its own\n'
        '    length = cfg.data.get("max_length", 128)\n'
        '    limit = self.hparams["eval"].get("limit", None)\n'
    )
    assert [line.split(": ", 1)[0] for line in own_defaults(planted)] == [f"{planted}:{n}" for n in (2, 3, 4, 7, 9, 10)]


def shared_defaults(function, cls: type) -> dict:
    """The keyword defaults of ``function``'s parameters that are settings of ``cls``."""
    names = {field.name for field in dataclasses.fields(cls)}
    return {name: p.default for name, p in inspect.signature(function).parameters.items() if name in names and p.default is not p.empty}


def test_the_code_taking_settings_as_arguments_defaults_to_the_settings():
    """The data modules and evaluate_sets, built by hand (tests, notebooks), default as the configs do."""
    from lorasb.data.base import TextDataModule  # GlueDataModule's and InstructionDataModule's keywords
    from lorasb.data.custom import LabeledFileDataModule
    from lorasb.data.instruction import ConversationDataModule
    from lorasb.data.instruction_files import InstructionFileDataModule
    from lorasb.eval import evaluate_sets

    pairs = (
        (TextDataModule.__init__, DataSettings),
        (ConversationDataModule.__init__, InstructionDataSettings),
        (InstructionFileDataModule.__init__, InstructionFileSettings),
        (LabeledFileDataModule.__init__, LabeledFileSettings),
        (evaluate_sets, EvalSettings),
    )
    for function, cls in pairs:
        shared = shared_defaults(function, cls)
        assert shared == {name: default(cls, name) for name in shared}, function.__qualname__
    assert set(shared_defaults(TextDataModule.__init__, DataSettings)) == set(defaults_of(DataSettings))
    assert shared_defaults(ConversationDataModule.__init__, InstructionDataSettings) == {"val_size": 200}
    own = set(defaults_of(InstructionFileSettings)) - set(defaults_of(InstructionDataSettings))  # the files, layout and template
    assert set(shared_defaults(InstructionFileDataModule.__init__, InstructionFileSettings)) == own
    own_keywords = set(shared_defaults(LabeledFileDataModule.__init__, LabeledFileSettings))  # train_file and monitor: the configs always set them
    assert own_keywords == set(defaults_of(LabeledFileSettings)) - set(defaults_of(DataSettings)) - {"train_file", "monitor"}
    # eval.split and eval.match come to evaluate_sets inside its file (lorasb.eval.instruction_file.InstructionFile)
    assert set(shared_defaults(evaluate_sets, EvalSettings)) == set(defaults_of(EvalSettings)) - {"sets", "split", "match"}


# --- (c) one default per setting: the code's are the configs' ---------------------------------


def test_the_module_takes_the_configs_defaults(compose):
    """The defaults that had drifted: the module's warm-up was 0.0 where conf/train.yaml said 0.06."""
    cfg = OmegaConf.to_container(compose("task=glue/mrpc", "optim.lr=1e-3"), resolve=True)
    optim = settings_from(OptimSettings, {"lr": 1e-3}, "optim")  # what a module built without a config reads
    assert optim.warmup_ratio == cfg["optim"]["warmup_ratio"] == 0.06
    assert (optim.weight_decay, optim.betas, optim.scheduler) == (0.0, [0.9, 0.999], "linear")
    composed = cfg["optim"]
    composed["auto_lr"]["candidates"] = []  # the method's, which the config sets
    assert dataclasses.asdict(optim) == composed
    init = settings_from(InitSettings, {}, "init")
    assert dataclasses.asdict(init) == cfg["init"]
    assert init.svd == SVDConfig() and init.accumulator() == AccumulatorOptions()


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def defaults_of(cls: type) -> dict:
    """The settings of ``cls`` that have a default, with it."""
    required = [f.name for f in dataclasses.fields(cls) if f.default is f.default_factory is dataclasses.MISSING]
    return {f.name: default(cls, f.name) for f in dataclasses.fields(cls) if f.name not in required}


WRITTEN_CONFIGS = [REPO / "conf" / "train.yaml", REPO / "conf" / "evaluate.yaml", *sorted((REPO / "conf" / "family").rglob("*.yaml"))]


@pytest.mark.parametrize("path", WRITTEN_CONFIGS, ids=lambda p: str(p.relative_to(REPO / "conf")))
def test_the_configs_restate_no_default(path):
    """conf/train.yaml, conf/evaluate.yaml and the families set values; the defaults are the dataclasses'."""
    written = OmegaConf.to_container(OmegaConf.load(path))
    data = LabeledFileSettings if path.stem == "labeled_files" else InstructionDataSettings
    blocks = {"init": InitSettings, "optim": OptimSettings, "gradient_cache": GradientCacheSettings, "data": data, "eval": EvalAfterFitSettings}
    defaults = {key: defaults_of(cls) for key, cls in blocks.items()}
    restated = [
        f"{block}.{key}: {value!r}"
        for block, block_defaults in defaults.items()
        for key, value in _leaves(written.get(block) or {})
        if key in dict(_leaves(block_defaults)) and dict(_leaves(block_defaults))[key] == value
    ]
    assert not restated, f"{path.name} restates these defaults of lorasb/settings: {restated}"


# --- (d) Hydra refuses a value of the wrong type, naming its key -------------------------------


@pytest.mark.parametrize(
    "override", ["optim.warmup_ratio=abc", "init.layer_groups=1.5", "init.batch_size=x", "init.offload=maybe", "init.svd.niter=many"]
)
def test_a_wrong_type_is_refused_as_the_config_composes(compose, override):
    assert_refused(lambda: compose(override), override)


def assert_refused(composing, override):
    with pytest.raises(ConfigCompositionException) as caught:
        composing()
    message = f"{caught.value} {caught.value.__cause__}"
    assert f"Error merging override {override}" in message
    assert f"full_key: {override.split('=')[0]}" in message


@pytest.mark.parametrize(
    "task, override",
    [("glue/mrpc", "data.max_length=long"), ("glue/mrpc", "data.batch_size=null"), ("metamath", "data.max_length=1.5"), ("metamath", "data.val_size=some"), ("metamath", "eval.limit=x"), ("custom/classification", "data.validation_ratio=half"), ("custom/regression", "data.text_fields=text")],
)
def test_a_wrong_type_of_data_or_eval_is_refused(compose, task, override):
    assert_refused(lambda: compose(f"task={task}", f"model={fitting_model(task)}", override), override)


def test_the_evaluation_refuses_a_wrong_type():
    assert_refused(lambda: compose_evaluate("eval.limit=few"), "eval.limit=few")


def test_the_command_line_refuses_a_wrong_type_before_torch_loads():
    probe = "import runpy, sys; sys.argv = ['lorasb.train', 'init.layer_groups=1.5']\ntry: runpy.run_module('lorasb.train', run_name='__main__')\nfinally: print('torch:', 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, env=os.environ | {"HYDRA_FULL_ERROR": "0"})
    assert result.returncode != 0
    assert "init.layer_groups" in result.stderr and "could not be converted to Integer" in result.stderr
    assert "torch: False" in result.stdout


# --- checkpoints written before the typed settings ---------------------------------------------


def test_a_checkpoint_without_a_newer_setting_resumes_with_its_default(compose):
    """A causal LM's checkpoint from before init.head_bias was a setting of every config compares equal."""
    from lorasb.lightning.checkpoints import changed_settings
    from lorasb.lightning.module import with_defaults

    now = OmegaConf.to_container(compose("task=metamath", "model=smollm2_135m").module, resolve=True)
    before = {**now, "init": {k: v for k, v in now["init"].items() if k != "head_bias"}}
    assert changed_settings(before, now) != []  # compared as written, the new key differs
    assert changed_settings(with_defaults(before), with_defaults(now)) == []
    changed = {**before, "optim": {**now["optim"], "warmup_ratio": 0.1}}
    assert changed_settings(with_defaults(changed), with_defaults(now)) == ["optim.warmup_ratio: 0.1 in the checkpoint, 0.06 now"]
