"""Planning: git changes, cluster.yaml semantics, the pure planner and plan files."""
