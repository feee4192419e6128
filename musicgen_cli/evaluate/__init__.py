"""Measuring a model's output: audio features, a style classifier and the evaluation report."""
