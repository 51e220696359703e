"""Masked-token code shared by two families: maskgit (2-D image tokens) and magvit (3-D video
tokens) — the model, its losses, the any-time sampler, the FLOPs formulas and the typed settings.
Not a family itself (no leading-underscore package is one: elt.families.known()). Every grid
stage depends on this folder in dvc.yaml, so an edit here reruns the runs of both families (and,
over-invalidating, those of other families too: DVC cannot name a family's base per grid point).
"""
