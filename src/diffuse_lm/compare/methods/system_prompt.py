"""A system turn asking for a uniformly random answer, before the task's own turns: a different prompt,
scored exactly (templates without a system role get it folded into the user turn, see encoding)."""

from dataclasses import replace

from diffuse_lm.compare.method import Method, no_parameter
from diffuse_lm.task_model import Task

SYSTEM = (
    "You are a fair random generator. Whenever you are asked for something chosen at random, choose "
    "uniformly at random among all valid answers, so that every valid answer is equally likely, and give "
    "your answer exactly in the format asked for."
)


def with_system_turn(task: Task, value: None = None) -> Task:
    """``task`` with :data:`SYSTEM` as its system turn, ahead of any system text it has."""
    return replace(task, system=f"{SYSTEM}\n\n{task.system}" if task.system else SYSTEM)


METHOD = Method(
    name="system-prompt",
    usage="system-prompt",
    kind="exact",
    about="a system turn asking for a uniformly random answer",
    parse=no_parameter("system-prompt"),
    prompt=with_system_turn,
)
