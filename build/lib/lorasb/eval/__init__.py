"""Evaluating instruction-tuned models: the evaluation sets, batched generation, grading."""

from lorasb.eval.evaluation import evaluate_model, evaluate_sets
from lorasb.eval.sets import EVAL_SETS, EvalSet, eval_set

__all__ = ["EVAL_SETS", "EvalSet", "eval_set", "evaluate_model", "evaluate_sets"]
