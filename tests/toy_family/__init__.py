"""A test-only family with continuous latents (copied to elt/families/toy/ by the pipeline tests):
a denoiser trained with an MSE per exit, sampled by a few denoising passes, scored by FID."""
