"""The fine-tuning loss against hand-computed values."""

import math

import torch

from mammodino.finetune.losses import classification_loss


def test_cross_entropy_known_answer():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert abs(float(classification_loss(logits, y)) - expected) < 1e-6


def test_class_weights_follow_torch_weighted_mean():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    w = torch.tensor([1.0, 3.0])
    per = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1)), math.log(2)]
    expected = (1 * per[0] + 3 * per[1] + 3 * per[2]) / (1 + 3 + 3)
    assert abs(float(classification_loss(logits, y, class_weights=w)) - expected) < 1e-6


def test_multilabel_skips_unlabelled_entries_and_weights_positives():
    logits = torch.tensor([[0.0, 5.0], [1.0, -3.0]])
    y = torch.tensor([[1, -1], [0, 1]])

    def bce(z, t, pw=1.0):
        return -(pw * t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-z))))

    expected = (bce(0.0, 1) + bce(1.0, 0) + bce(-3.0, 1)) / 3
    assert abs(float(classification_loss(logits, y, multilabel=True)) - expected) < 1e-6
    pw = torch.tensor([2.0, 4.0])
    expected_w = (bce(0.0, 1, 2.0) + bce(1.0, 0, 2.0) + bce(-3.0, 1, 4.0)) / 3
    assert abs(float(classification_loss(logits, y, multilabel=True, class_weights=pw)) - expected_w) < 1e-5
