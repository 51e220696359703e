"""The masked-image family's model (elt/families/_masked/model.py, shared with the video
family magvit, which runs it on a (t, h, w) grid).

The code lives in elt/families/_masked/ so that every grid stage can depend on it in dvc.yaml (DVC
cannot name "the family this family builds on"); this module is maskgit's name for it."""

from elt.families._masked.model import *  # noqa: F401,F403
