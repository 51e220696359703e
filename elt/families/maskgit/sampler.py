"""The masked-image family's any-time sampler (elt/families/_masked/sampler.py, shared with
magvit).

The code lives in elt/families/_masked/ so that every grid stage can depend on it in dvc.yaml (DVC
cannot name "the family this family builds on"); this module is maskgit's name for it."""

from elt.families._masked.sampler import *  # noqa: F401,F403
from elt.families._masked.sampler import _guided_logits  # noqa: F401  (used by tests)
