"""The classroom: class progress in the Kubernetes API, for an instructor's view.

A part of labrunner beside ``state/`` and ``verify/``: it knows class and
learner names (``names``), the learner's progress document and how step
events fold into it (``document``), the join file (``joinfile``), the
instructor's operations (``admin``: init, add, renew, revoke, end, status,
follow) and the learner's (``learner``: join, leave; ``publisher``: the
queue, outbox and background sender). It talks to the cluster only through
``labrunner.cluster``; the engine feeds it events (``engine/classfeed.py``),
the faces are ``labrunner class`` (``classcmd.py``) and the Textual view
(``tui/classwatch.py``).
"""

JOIN_FILE = "join.yaml"
"""The join file in a learner's class directory (``class join`` writes it); whether it is
there is the one question every engine asks, so it is answered here, without ``names``
(its name rules and ``unicodedata``) or the publisher loaded."""
