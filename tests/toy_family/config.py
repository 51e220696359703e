import dataclasses

QUALITY_METRIC, MODALITY, TOKENIZER_KIND = "fid", "image", "vq"
GUIDANCE = False  # its sampler ignores cfg_scale: sampled at scale 1 only


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    noise: float = 0.5  # std of the Gaussian noise added to the latents it learns to remove

    def check(self, key):
        if not self.noise > 0:
            from elt.config import ConfigError

            raise ConfigError(f"{key}.noise", f"must be > 0, got {self.noise}")


@dataclasses.dataclass(frozen=True)
class SampleConfig:
    steps: int = 2  # denoising passes per sample
    start_noise: float = 0.5

    def check(self, key):
        if self.steps < 1:
            from elt.config import ConfigError

            raise ConfigError(f"{key}.steps", f"must be >= 1, got {self.steps}")
