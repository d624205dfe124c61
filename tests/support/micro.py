"""The micro training config of the tests and fault benchmarks: a step in well under a second
on one CPU core. Later overrides win, so callers append their own steps and intervals."""

MICRO = [
    "model.arch=tiny", "model.patch_size=16", "model.drop_path_rate=0.1",
    "dino.n_prototypes=64", "dino.hidden_dim=64", "dino.bottleneck_dim=32",
    "ibot.n_prototypes=64", "slice.proj_dim=32", "slice.hidden_dim=64",
    "crops.global_crop_size=32", "crops.local_crop_size=16", "crops.local_crops_number=2",
    "data.num_workers=0", "data.dbt_fraction=0.5",
    "train.batch_size=4", "train.steps=6", "train.checkpoint_every=2", "train.log_every=1",
    "train.deterministic=true",
]
