"""Delivery: the state machine (pure), the pipeline and the scheduler."""
