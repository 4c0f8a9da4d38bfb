"""Output: console progress, tables, logs, GitHub outputs and PR comments."""
