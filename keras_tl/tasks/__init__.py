"""Tasks: a backbone plus a head, and the data prepared for it."""
