"""Diffusion images (DiT-style, v-prediction in log-SNR form): the family contract is in
elt/families/__init__.py."""
