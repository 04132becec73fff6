"""Training: stages, schedules, and the loop that runs them."""
