"""Tasks: one module per kind of job, on one contract (`base.Task`)."""

from keras_tl.tasks.base import PreparedTask, Task
from keras_tl.tasks.registry import find_task, get_task, list_tasks, register_task, task_of

__all__ = ["PreparedTask", "Task", "find_task", "get_task", "list_tasks", "register_task", "task_of"]
