"""The course layer: what the notebooks and lecturers use, built on the core (which never imports it).

* ``profiles``    – the scale of the course: the kit backbone on the offline targets, or the paper's setting
* ``experiments`` – run configs, resumable sweeps with a result cache, the shipped results (``results/``)
* ``cost``        – what a training step costs: memory by what holds it, FLOPs
* ``coupling``    – how rank and scale set the first step's size under Adam (s·r) and SGD (s²·r), measured
* ``claims``      – a notebook's claims checked on its own numbers and printed (✓ / ✗), never asserted
* ``plots``       – the course's figure style and every figure function
* ``widgets``     – the explorers and the lecture demo (ipywidgets over experiments and plots)
* ``pretrain``    – the recipe behind the shipped kit weights
* ``twins``       – percent ``.py`` notebooks and their ``.ipynb`` twins
* ``cli``         – the ``adaptertune-lite`` command
"""

from . import claims, cost, coupling, experiments, plots, pretrain, profiles, widgets  # noqa: F401
