"""Dev and test infrastructure: local clusters, the pod-readiness stand-in, the demo and the
tool installer. Planning and deploying never import this package."""
