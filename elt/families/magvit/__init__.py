"""Masked-token video (MAGVIT-style, paper Sec. 5.3): the family contract is in
elt/families/__init__.py. It is the masked-image family (its code in elt/families/_masked) on a (t, h, w) token
grid, and imports that family's code wherever the behaviour is the same."""
