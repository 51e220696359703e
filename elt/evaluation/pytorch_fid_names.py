"""pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (a state_dict of the same TF weights) named
onto the TorchScript module tree of ``default_1.pt``; see ``weights.load_fid_weights``.

Each pytorch-fid layer ``<name>`` holds ``<name>.conv.weight`` and ``<name>.bn.{weight, bias,
running_mean, running_var}`` (bn.weight all ones: the TF graph has no BN scale). Branch order
inside each block is the TF concat order in both.
"""
from __future__ import annotations

# sha256 prefix that torch.hub checks for pytorch-fid's weights file (it is in the file name).
PYTORCH_FID_SHA256_PREFIX = "6726825d"

_STEM = {
    "Conv2d_1a_3x3": "conv",
    "Conv2d_2a_3x3": "conv_1",
    "Conv2d_2b_3x3": "conv_2",
    "Conv2d_3b_1x1": "conv_3",
    "Conv2d_4a_3x3": "conv_4",
}
_A = {
    "branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
    "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1", "branch3x3dbl_3": "tower_1.conv_2",
    "branch_pool": "tower_2.conv",
}
_B = {"branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
      "branch3x3dbl_3": "tower.conv_2"}
_C = {
    "branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1", "branch7x7_3": "tower.conv_2",
    **{f"branch7x7dbl_{i + 1}": ("tower_1.conv" if i == 0 else f"tower_1.conv_{i}") for i in range(5)},
    "branch_pool": "tower_2.conv",
}
_D = {"branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
      **{f"branch7x7x3_{i + 1}": ("tower_1.conv" if i == 0 else f"tower_1.conv_{i}") for i in range(4)}}
_E = {
    "branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
    "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv", "branch3x3dbl_2": "tower_1_conv_1",
    "branch3x3dbl_3a": "tower_1_mixed_conv", "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv",
}
_BLOCKS = [
    ("Mixed_5b", "mixed", _A), ("Mixed_5c", "mixed_1", _A), ("Mixed_5d", "mixed_2", _A),
    ("Mixed_6a", "mixed_3", _B),
    ("Mixed_6b", "mixed_4", _C), ("Mixed_6c", "mixed_5", _C), ("Mixed_6d", "mixed_6", _C), ("Mixed_6e", "mixed_7", _C),
    ("Mixed_7a", "mixed_8", _D), ("Mixed_7b", "mixed_9", _E), ("Mixed_7c", "mixed_10", _E),
]

PYTORCH_FID_TO_TORCHSCRIPT: dict[str, str] = dict(_STEM)
for _theirs, _ours, _table in _BLOCKS:
    for _branch, _path in _table.items():
        PYTORCH_FID_TO_TORCHSCRIPT[f"{_theirs}.{_branch}"] = f"{_ours}.{_path}"
