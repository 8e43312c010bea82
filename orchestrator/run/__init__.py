"""A run: its state as data (state), the stage records (stages), the walk that drives them
(pipeline), what a run writes about itself (record), and bisection built on runs."""
