"""What several test files share: tiny models, a W&B run-file reader, a callback that kills its process."""
