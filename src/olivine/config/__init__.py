"""Config models (pydantic, data only) and the loader for Olive-format run configs."""
