"""The ELT core shared by every family: looping with exits, the ILSD combination, the train step,
optimizer, mesh, finite checks and layer FLOPs. Families (elt/families/) plug their model pieces,
per-exit losses and sampler into it."""
