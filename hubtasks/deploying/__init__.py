"""Deploying: the scheduler, the job runner, chart preparation, values and credentials."""
