"""Batched greedy generation on SmolLM2-135M-Instruct: left padding changes nothing."""

import pytest
import torch

from lorasb.eval.generation import generate, stop_tokens
from lorasb.models import load_causal_lm
from lorasb.data.prompts import alpaca_prompt

pytestmark = pytest.mark.slow  # SmolLM2-135M generating

PROMPTS = [
    alpaca_prompt("What is the capital of France?"),
    alpaca_prompt("Please answer the following question with true or false, question: is water wet?\n\nAnswer format: true/false"),
    alpaca_prompt("Write the numbers from one to five."),
]


@pytest.fixture(scope="module")
def model(smollm2_dir):
    return load_causal_lm(str(smollm2_dir))


def test_batched_generation_equals_one_prompt_at_a_time(model, smollm2_tokenizer):
    batched = generate(model, smollm2_tokenizer, PROMPTS, max_new_tokens=12, batch_size=3, progress=False)
    alone = [generate(model, smollm2_tokenizer, [prompt], max_new_tokens=12, progress=False)[0] for prompt in PROMPTS]
    assert batched == alone
    assert all(text.strip() for text in batched)
    assert smollm2_tokenizer.padding_side == "right" and model.training is False


def test_generation_is_greedy_and_stops_at_eos(model, smollm2_tokenizer):
    inputs = smollm2_tokenizer(PROMPTS[0], return_tensors="pt")
    with torch.no_grad():
        first = model(**inputs).logits[0, -1].argmax()
    text = generate(model, smollm2_tokenizer, PROMPTS[:1], max_new_tokens=1, progress=False)[0]
    assert text == smollm2_tokenizer.decode([first], skip_special_tokens=True)
    assert smollm2_tokenizer.eos_token_id in stop_tokens(model, smollm2_tokenizer)
    long = generate(model, smollm2_tokenizer, PROMPTS[:1], max_new_tokens=200, progress=False)[0]
    assert len(smollm2_tokenizer(long)["input_ids"]) < 200  # the answer ends with EOS, not the budget


def test_generation_stops_after_a_stop_string_and_the_rest_of_its_batch_goes_on(model, smollm2_tokenizer):
    free = generate(model, smollm2_tokenizer, PROMPTS, max_new_tokens=24, batch_size=3, progress=False)
    stop = free[0].split()[3]  # a word the first answer writes, e.g. "France"
    assert all(stop not in text for text in free[1:]), free
    stopped = generate(model, smollm2_tokenizer, PROMPTS, max_new_tokens=24, batch_size=3, stop_strings=[stop], progress=False)
    assert stopped[0] == free[0][: free[0].index(stop) + len(stop)]
    assert stopped[1:] == free[1:]
