"""The masked-image family's FLOPs formulas (elt/families/_masked/flops.py, shared with magvit).

The code lives in elt/families/_masked/ so that every grid stage can depend on it in dvc.yaml (DVC
cannot name "the family this family builds on"); this module is maskgit's name for it."""

from elt.families._masked.flops import *  # noqa: F401,F403
