"""Scheduled LLM quality monitor: prompts' captured calls scored, judged and recorded."""
