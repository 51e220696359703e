"""The masked-image family's losses (elt/families/_masked/losses.py, shared with magvit).

The code lives in elt/families/_masked/ so that every grid stage can depend on it in dvc.yaml (DVC
cannot name "the family this family builds on"); this module is maskgit's name for it."""

from elt.families._masked.losses import *  # noqa: F401,F403
