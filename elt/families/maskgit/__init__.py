"""Masked-token images (MaskGIT-style): the family contract is in elt/families/__init__.py."""
