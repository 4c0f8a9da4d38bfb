"""Config: the records of a config repo, loading and checking them, and the chart graph."""
