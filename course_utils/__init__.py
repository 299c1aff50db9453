"""What the course's notebooks import: the student side of the course kit.

Every notebook imports this package the same way and never edits
``sys.path`` (it is installed with ``pip install -e .``). Its core modules
are named by concern:

- :mod:`course_utils.paths`     where the course and its data live; the FAST switch
- :mod:`course_utils.repro`     seeding and device choice
- :mod:`course_utils.data`      the data registry (files and model folders, online and offline sources),
  MNIST, the course's character corpus
- :mod:`course_utils.text`      labelled snippets, a pretrained text encoder, padded batches
- :mod:`course_utils.training`  a training loop with a progress bar; recorded metrics
- :mod:`course_utils.plotting`  one plot style, image grids, loss curves
- :mod:`course_utils.checks`    visible checks with teaching messages; ``expect`` for hidden tests

and :mod:`course_utils.given` holds the given code of each assignment, one
module per assignment, which a notebook imports as
``from course_utils.given import <assignment> as given``.

The tools of TAs and instructors (the ``course`` command, grading, release)
live in the separate package ``course_tools``; nothing here imports it.
"""

from course_utils.paths import data_dir, is_fast, repo_root
from course_utils.training import Stopwatch, record, train_loop

# torch is imported lazily (in ``setup`` and the modules that need it) so that
# nbgrader's configuration and the ``course`` command load quickly.
__all__ = ["is_fast", "repo_root", "data_dir", "record", "train_loop", "Stopwatch", "setup"]


def setup(seed: int = 0):
    """One call at the top of every notebook: seed everything, set the plot style,
    pick a device, and say whether FAST mode is on.

    Returns a small namespace ``(fast, device, seed)`` so a notebook can write
    ``course = setup(); N_STEPS = 200 if course.fast else 6000``.
    """
    from types import SimpleNamespace

    from course_utils.plotting import use_style
    from course_utils.repro import pick_device, seed_everything

    seed_everything(seed)
    use_style()
    fast = is_fast()
    if fast:
        # FAST runs are tiny and graders run many of them side by side: one
        # thread each avoids oversubscribing the cores (many times slower).
        import torch

        torch.set_num_threads(1)
    device = pick_device()
    mode = "FAST (shrunk for tests and autograding)" if fast else "full"
    print(f"course_utils: seed {seed}, device {device}, {mode} mode")
    return SimpleNamespace(fast=fast, device=device, seed=seed)
