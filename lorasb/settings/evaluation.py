"""``eval``: how generations are graded (:mod:`lorasb.eval.evaluation`)."""

# reference: an answer only where the generation states it ("The answer is ..."), as the
# paper's evaluation grades; lenient: also a GSM8K generation's last number and a MATH
# generation's last \boxed{} (results named <set>_lenient).
GRADING_MODES = ("reference", "lenient")
