"""What a training step costs: memory split by what holds it (measured exactly), and counted FLOPs."""

import torch
from helpers import tiny_vit

import adaptertune_lite as at
from adaptertune_lite.runtime import TensorMemory


def test_memory_breakdown_counts_what_each_method_holds(images):
    """Frozen weights need no gradients or optimiser state, but adapters after every block still need every
    block's activations for the backward pass (the saving is not proportional to trainable parameters)."""
    images = torch.randn(32, 3, 32, 32)
    model = at.add_adapters(tiny_vit(), rank=4)
    head, adapt, full = (at.memory_breakdown(model, images, m) for m in ("head_only", "adapter_tune", "full_finetune"))
    assert head.weights == adapt.weights == full.weights == full.gradients == full.optimizer / 2
    counts = at.count_parameters(model)
    assert adapt.gradients * 2**20 == 4 * (counts.adapter + counts.head)  # fp32: 4 bytes per trainable parameter
    assert head.activations < adapt.activations < full.activations
    last = at.add_adapters(tiny_vit(), rank=4, blocks=at.last_k(1))
    assert at.memory_breakdown(last, images, "adapter_tune").activations < adapt.activations / 2  # backward stops early
    assert all(p.grad is None for p in model.parameters())  # nothing left behind


def test_memory_breakdown_sees_what_checkpointing_frees(images):
    """Measured, not modelled: with checkpointing each block keeps only its input, and twice the batch
    needs about twice the activations."""
    images = torch.randn(32, 3, 32, 32)
    model = at.add_adapters(tiny_vit(), rank=4)
    plain = at.memory_breakdown(model, images, "adapter_tune")
    ckpt = at.memory_breakdown(model, images, "adapter_tune", grad_checkpointing=True)
    assert ckpt.activations < plain.activations / 1.5 and ckpt.weights == plain.weights
    assert model.grad_checkpointing is False  # the model's own setting is restored
    double = at.memory_breakdown(model, torch.cat([images, images]), "adapter_tune")
    assert 1.8 < double.activations / plain.activations < 2.2


def test_tensor_memory_counts_live_tensors_until_they_are_freed():
    with TensorMemory() as mem:
        a = torch.ones(2**18)  # 1 MiB
        b = a * 2  # 2 MiB live
        del a
        c = b + 1  # still 2 MiB: a was freed first
    assert mem.peak() == 2 * 2**20
    assert mem.peak(exclude=(b, c)) == 2**20  # b and c left out: a alone


def test_step_flops_count_the_backward_pass_that_runs():
    """In units of one forward pass: head-only ~1 (the backward stops at the head); AdapterTune ~2, less the
    first block (input gradients through every frozen block after the first adapter, no weight gradients);
    full fine-tuning ~3 (input and weight gradients everywhere)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(8, 3, 32, 32)
    model = at.add_adapters(tiny_vit(), rank=4)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    forward = counter.get_total_flops()
    head, adapt, full = (at.step_flops(model, x, m) / forward for m in ("head_only", "adapter_tune", "full_finetune"))
    assert 1.0 <= head < 1.05 and 1.7 < adapt < 1.9 and 2.8 < full < 3.2
    assert all(p.grad is None for p in model.parameters())
    recomputed = at.step_flops(model, x, "adapter_tune", grad_checkpointing=True) / forward
    assert 0.8 < recomputed - adapt < 1.0  # checkpointing recomputes the blocks' forward pass (not embedding or head)
