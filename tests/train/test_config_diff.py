"""The experiment / housekeeping split of resume config checks, key by key."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mammodino.config import load_config
from mammodino.errors import UserError
from mammodino.finetune.config import load_finetune_config
from mammodino.train.config_diff import check_resume_config, config_changes, flatten, is_housekeeping

# Every key of the shipped configs that a resume only logs. A new key is experiment unless
# added here (and to the list in config_diff's docstring) on purpose.
EXPECTED_HOUSEKEEPING = {
    "train.steps", "train.checkpoint_every", "train.keep_every", "train.log_every", "train.max_nonfinite_steps",
    "train.precision", "train.deterministic", "train.fsdp", "train.compile", "train.half_batches", "train.grad_accum",
    "train.eval_every", "train.patience", "train.eval_batch_size", "data.num_workers", "model.grad_checkpointing",
    "model.pretrained", "monitor.collapse_min_prototypes_frac", "monitor.collapse_min_cls_std",
    "eval.n_boot", "eval.calibrate", "eval.calibration_min_images",
}


def _keys():
    pre = flatten(OmegaConf.to_container(load_config("cpu-tiny"), resolve=True))
    ft = flatten(OmegaConf.to_container(load_finetune_config("cpu-tiny"), resolve=True))
    return set(pre) | set(ft)


def test_every_shipped_key_is_classified_as_intended():
    keys = _keys()
    assert {k for k in keys if is_housekeeping(k)} == EXPECTED_HOUSEKEEPING & keys
    assert EXPECTED_HOUSEKEEPING <= keys  # no stale names in the list
    experiment = {k for k in keys if not is_housekeeping(k)}
    for must in ("model.arch", "train.batch_size", "train.seed", "optim.base_lr", "optim.lr", "data.dbt_fraction",
                 "data.keep_qc_suspect", "data.resolution", "eval.val_size", "eval.test_size", "crops.sampler",
                 "finetune.mode", "model.head"):
        assert must in experiment


def test_new_keys_count_as_experiment():
    exp, hk = config_changes({"train": {"new_knob": 1}}, {"train": {"new_knob": 2}})
    assert [k for k, *_ in exp] == ["train.new_knob"] and hk == []


def test_inputs_outside_the_config_are_compared(tmp_path):
    cfg = {"train": {"seed": 0}}
    labels = tmp_path / "labels.csv"
    labels.write_text("x\n")
    saved = {"--task": "lesion", "--labels": str(labels), "--label-fraction": 1.0}
    same = {**saved, "--labels": str(tmp_path / "." / "labels.csv")}  # the same file spelled otherwise
    assert check_resume_config(cfg, None, cfg, [], Path("c"), False, log=lambda *_: None,
                               saved_inputs=saved, inputs=same) == []
    with pytest.raises(UserError, match=r"--task: 'lesion' -> 'density'"):
        check_resume_config(cfg, None, cfg, [], Path("c"), False, saved_inputs=saved,
                            inputs={**saved, "--task": "density"})
    # a checkpoint written before inputs were recorded: nothing to compare
    assert check_resume_config(cfg, None, cfg, [], Path("c"), False, saved_inputs=None, inputs=same) == []


def test_a_changed_length_is_logged_with_what_it_does(capsys):
    cfg = {"train": {"steps": 10}}
    check_resume_config(cfg, None, {"train": {"steps": 20}}, [], Path("c"), False)
    assert "schedules follow the new length" in capsys.readouterr().out
