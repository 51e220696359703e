"""Training: cosine masking, ILSD loss and lambda curriculum, AdamW, sharded train step."""

from elt.training.ilsd import ilsd_loss, lam_schedule, masked_accuracy, masked_ce, soft_ce
from elt.training.masking import cosine_mask, cosine_mask_count
from elt.training.mesh import batch_sharding, make_mesh, replicated, shard_batch
from elt.training.optim import lr_schedule, make_optimizer, weight_decay_mask
from elt.training.step import (
    TrainConfig,
    TrainState,
    create_train_state,
    drop_labels,
    eval_loss,
    eval_metrics,
    make_train_step,
    make_tx,
)

__all__ = [
    "TrainConfig", "TrainState", "batch_sharding", "cosine_mask", "cosine_mask_count",
    "create_train_state", "drop_labels", "eval_loss", "eval_metrics", "ilsd_loss", "lam_schedule", "lr_schedule",
    "make_mesh", "make_optimizer", "make_train_step", "make_tx", "masked_accuracy", "masked_ce",
    "replicated", "shard_batch", "soft_ce", "weight_decay_mask",
]
