"""The campaign file: its schema (pydantic v2), the loader that reads YAML into it, and the checks across fields."""
