import pytest

from mammodino.config import list_presets, load_config
from mammodino.errors import ConfigError


def test_presets_exist_and_load():
    names = list_presets()
    for name in ("cpu-tiny", "vit-small", "vit-base", "vit-large", "from-dinov2"):
        assert name in names
    for name in ("cpu-tiny", "vit-small", "vit-base", "vit-large"):
        load_config(name)
    assert load_config("cpu-tiny", ["train.steps=7"]).train.steps == 7


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.stepz=3", "train.stepz"),
        ("train.steps=abc", "train.steps"),
        ("crops.sampler=everywhere", "crops.sampler"),
        ("optim.betas=[0.9]", "optim.betas"),
        ("data.dbt_fraction=1.5", "data.dbt_fraction"),
        ("train.steps=0", "train.steps"),
        ("crops.global_crop_size=100", "patch_size"),
        ("model.arch=huge", "model.arch"),
        ("nosection.key=1", "nosection"),
        ("train=5", "train"),
        ("justtext", "key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config("cpu-tiny", [override])
    assert fragment in str(err.value)


def test_list_overrides_are_accepted():
    cfg = load_config("cpu-tiny", ["crops.global_crops_scale=[0.4,1.0]", "optim.betas=[0.9,0.95]"])
    assert list(cfg.crops.global_crops_scale) == [0.4, 1.0]
    with pytest.raises(ConfigError, match="optim.betas"):
        load_config("cpu-tiny", ["optim.betas=[0.9,x]"])


def test_required_key_of_from_dinov2():
    with pytest.raises(ConfigError, match="model.pretrained"):
        load_config("from-dinov2")
    assert load_config("from-dinov2", ["model.pretrained=/w.pth"]).model.pretrained == "/w.pth"


def test_unknown_preset_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such preset"):
        load_config("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(str(bad))
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  batchsize: 4\n")
    with pytest.raises(ConfigError, match="train.batchsize"):
        load_config(str(typo))
