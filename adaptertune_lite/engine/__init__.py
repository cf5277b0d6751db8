"""The engine: how runs go fast and safely. The core calls it; a student need not read it.

* ``runtime``   – device, seeds, FAST mode, CPU threads, precision, versions
* ``meters``    – how much memory a block of code takes (sampled peak; exact tensor count)
* ``storage``   – atomic writes
* ``shortcuts`` – training on cached features or a cached frozen prefix (exact for the kit backbones)
"""

from . import meters, runtime, shortcuts, storage  # noqa: F401
