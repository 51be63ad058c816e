"""The paper's prompts that code needs as well as data: the RNG prompt formats, to build an RNG task for
any range in memory (the generalisation experiments), and the synthetic-biography prompt (Table 3).

The built-in task files under ``data/tasks`` are written from these by ``scripts/make_tasks.py``.
"""

from __future__ import annotations

from string import Template

from diffuse_lm.errors import DiffuseError
from diffuse_lm.task_model import Task, task_from_dict

# Format 0 is the RNG prompt of the paper's Section 4.1; formats 1-5 are Appendix B.1's, verbatim,
# typos included ("bweet", a missing colon), with $low and $high for the range.
RNG_FORMATS: tuple[str, ...] = (
    "Generate a random number between $low and $high. Output only the number between two curly braces, "
    "like this: {number}. Don't output code.",
    "Randomly pick an integer between $low and $high. Do not provide any code. Output only the number "
    "between two curly braces, like this: {number}. Don't output code.",
    "Output a number uniform randomly from the range $low to $high, inclusive. Output the number between "
    "two curly braces, like this: {number}. Don't output code.",
    "Choose a number at random between $low and $high. Output your chosen number bweet two curly braces, "
    "like this {number}.",
    "Select an integer completely at random from the interval [$low, $high]. Output the selected integer "
    "between two curly braces, like this {n}.",
    "I need you to pick a number completely at random. The number should be between $low and $high. "
    "Print the number between two curly braces, like this: {n}.",
)

# The paper's Table 3, verbatim; the line breaks between the braced fields are those of the authors'
# released prompt file (the paper's typesetting runs them together).
BIOGRAPHY_PROMPT = (
    "Generate a random biography sketch of a fictional, notable person. Output name, gender, time of "
    "birth, place of birth, profession and accomplishments individually between two braces and generate "
    "nothing else. Please follow the format below.\n"
    "\n"
    "{First name and last name}\n"
    "{Gender - Female/Male/Non-binary}\n"
    "{Date and year of birth}\n"
    "{City and country of birth}\n"
    "{Profession}\n"
    "{One sentence description of accomplishments}\n"
    "\n"
    "Example\n"
    "{David Hippocampus}\n"
    "{Male}\n"
    "{June 30, 1960}\n"
    "{Cambridge, Massachusetts, USA}\n"
    "{Neuroscientist}\n"
    "{Revolutionized cognitive science by elucidating the mechanisms underlying memory formation and "
    "retrieval through groundbreaking research and innovative methodologies, advancing our understanding "
    "of the human brain's intricacies}"
)

# The six braced fields of a biography, in the order the prompt asks for them.
BIOGRAPHY_FIELDS: tuple[str, ...] = (
    "name",
    "gender",
    "birth_date",
    "birth_place",
    "profession",
    "accomplishments",
)


def rng_name(low: int, high: int, fmt: int = 0) -> str:
    """Built-in name of an RNG task: ``rng/<low>-<high>`` for the paper's prompt, else
    ``rng/formats/<low>-<high>/p<fmt>``."""
    return f"rng/{low}-{high}" if fmt == 0 else f"rng/formats/{low}-{high}/p{fmt}"


def rng_task_dict(low: int, high: int, fmt: int = 0) -> dict:
    """The task-file mapping of "a random integer in [low, high]" in prompt format ``fmt`` (0-5)."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high, fmt)):
        raise DiffuseError(f"RNG task needs integers, got low={low!r} high={high!r} fmt={fmt!r}")
    if low > high:
        raise DiffuseError(f"RNG task: low ({low}) is above high ({high})")
    if not 0 <= fmt < len(RNG_FORMATS):
        raise DiffuseError(f"RNG prompt format {fmt} does not exist (0-{len(RNG_FORMATS) - 1})")
    source = "the paper's RNG prompt (Section 4.1)" if fmt == 0 else f"prompt format {fmt} of Appendix B.1"
    return {
        "name": rng_name(low, high, fmt),
        "family": "RNG",
        "description": f"A uniformly random integer from {low} to {high}, inclusive; {source}.",
        "request": Template(RNG_FORMATS[fmt]).substitute(low=low, high=high),
        "targets": [f"{{{i}}}" for i in range(low, high + 1)],
    }


def rng_task(low: int, high: int, fmt: int = 0) -> Task:
    """A uniform RNG task over [low, high] in prompt format ``fmt``, built in memory (not a file)."""
    data = rng_task_dict(low, high, fmt)
    return task_from_dict(data, source=f"builtin:{data['name']}")
