"""What a training step costs: memory split by what holds it (measured exactly), and counted FLOPs."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import adaptertune_lite as at
from adaptertune_lite.engine.meters import TensorMemory
from helpers import tiny_vit


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


def test_memory_breakdown_counts_the_frozen_weights_as_a_bf16_gpu_stores_them(images):
    """On a bf16 GPU fit stores the frozen matmul weights in bf16 (runtime.frozen_weights_in): half their bytes, and no
    bf16 copy of each kept by autocast for the backward pass. Emulated here; full fine-tuning freezes nothing."""
    images = torch.randn(32, 3, 32, 32)
    model = at.add_adapters(tiny_vit(), rank=4)
    fp32 = at.memory_breakdown(model, images, "adapter_tune")
    frozen_matmul = sum(p.numel() for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
                        for p in m.parameters(recurse=False) if not p.requires_grad)
    with at.engine.runtime.emulate_precision(torch.bfloat16):
        bf16, bf16_full = at.memory_breakdown(model, images, "adapter_tune"), at.memory_breakdown(model, images, "full_finetune")
    assert (fp32.weights - bf16.weights) * 2**20 == 2 * frozen_matmul  # 4 -> 2 bytes each
    assert bf16_full.weights == fp32.weights and bf16.gradients == fp32.gradients  # trained weights stay fp32
    assert all(p.dtype == torch.float32 for p in model.parameters())  # given back as they were


def test_tensor_memory_counts_live_tensors_until_they_are_freed():
    with TensorMemory() as mem:
        a = torch.ones(2**18)  # 1 MiB
        b = a * 2  # 2 MiB live
        del a
        c = b + 1  # still 2 MiB: a was freed first
    assert mem.peak() == 2 * 2**20
    assert mem.peak(exclude=(b, c)) == 2**20  # b and c left out: a alone


def _forward_counts(model, x) -> dict[str, int]:
    """Forward FLOPs of ``model`` on ``x`` by kind, as this torch's counter counts them: ``linear`` (addmm/mm:
    the frozen sub-layers of blocks 1.., i.e. after the first adapter), ``attention`` (any other op in those
    blocks: SDPA or bmm, which some torch releases count on a CPU and others do not), ``adapter0``, ``adapters``
    (the others), ``head``, ``blocks`` (every block with its adapter), ``block0`` (the first, with its adapter),
    ``qkv_fc1`` (those two layers of blocks 1..), ``all``."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    per = {k: {str(op): n for op, n in v.items()} for k, v in counter.get_flop_counts().items()}
    out = dict.fromkeys(("linear", "attention", "adapters"), 0)
    for i in range(1, len(model.blocks)):
        for op, n in per[f"VisionTransformer.blocks.{i}"].items():
            out["linear" if op in ("aten.addmm", "aten.mm") else "attention"] += n
        out["adapters"] += sum(per[f"VisionTransformer.blocks.{i}.adapter"].values())
    out["adapter0"] = sum(per["VisionTransformer.blocks.0.adapter"].values())
    out["head"] = sum(per["VisionTransformer.head"].values())
    out["blocks"] = sum(per["VisionTransformer.blocks"].values())
    out["block0"] = sum(per["VisionTransformer.blocks.0"].values()) + out["adapter0"]
    out["qkv_fc1"] = sum(sum(per[f"VisionTransformer.blocks.{i}.{m}"].values()) for i in range(1, len(model.blocks))
                         for m in ("attn.qkv", "mlp.fc1"))
    out["all"] = counter.get_total_flops()
    return out


def test_step_flops_count_the_backward_pass_that_runs():
    """Predicted from the forward counts of the same model, on whatever ops this torch release counts.

    The physics: the backward of a matmul whose weight is frozen but whose input needs a gradient costs one
    matmul of the forward's size (the input gradient); a trained weight adds one more (its gradient).
    Attention's backward recomputes the scores and takes gradients of both operands of both products:
    between 2 and 2.5 times its forward (2 for plain bmm, 2.5 for SDPA's five products). With AdapterTune
    (post-block adapters in every block) nothing before the first adapter needs a gradient, so block 0's
    own layers cost nothing backward, and adapter 0 needs no input gradient (1.5 x: two weight gradients
    and the gradient between its two layers). Head-only: only the head's weight gradient."""
    x = torch.randn(8, 3, 32, 32)
    model = at.add_adapters(tiny_vit(), rank=4)
    c = _forward_counts(model, x)
    head, adapt = (at.step_flops(model, x, m) for m in ("head_only", "adapter_tune"))
    assert head == c["all"] + c["head"]
    base = c["all"] + c["linear"] + 1.5 * c["adapter0"] + 2 * c["adapters"] + 2 * c["head"]
    assert base + 2 * c["attention"] - 1 <= adapt <= base + 2.5 * c["attention"] + 1
    assert all(p.grad is None for p in model.parameters())
    # Full fine-tuning: both gradients of every layer, except the patch embedding's input (the images).
    full = at.step_flops(model, x, "full_finetune")
    assert 2.8 < full / c["all"] < 3.2 and full > adapt > head
    # Checkpointing recomputes a block's forward in the backward pass only as far as its backward needs (torch's
    # non-reentrant checkpoint stops early): at least the layers that feed a nonlinearity in the blocks whose
    # backward runs (qkv before attention, fc1 before GELU; a frozen matmul needs no saved input), at most every
    # block; never the embedding or the head.
    recomputed = at.step_flops(model, x, "adapter_tune", grad_checkpointing=True) - adapt
    assert c["qkv_fc1"] - 1 <= recomputed <= c["blocks"] + 1


def test_a_runs_flops_are_its_training_steps_plus_one_forward_pass_over_the_evaluation_images():
    x = torch.zeros(1, 3, 32, 32)
    model = at.add_adapters(tiny_vit(), rank=4)
    step, forward = at.step_flops(model, x, "adapter_tune"), at.course.cost.forward_flops(model, x)
    assert 0 < forward < step  # a training step adds a backward pass to the forward one
    assert at.course.cost.run_flops(model, "adapter_tune", n_train=10, epochs=3, n_eval=7, image_size=32) == 3 * 10 * step + 7 * forward
    # head-only trains on cached features: one backbone pass per image, whatever the epochs
    head = at.course.cost.run_flops(tiny_vit(), "head_only", n_train=10, epochs=3, n_eval=7, image_size=32)
    assert head == 17 * at.course.cost.forward_flops(tiny_vit(), x)


def test_forward_flops_count_a_linear_layer_as_two_flops_per_multiply_add():
    assert at.course.cost.forward_flops(torch.nn.Linear(8, 5), torch.zeros(3, 8)) == 2 * 3 * 8 * 5


def test_gpu_estimates_divide_the_flops_by_each_published_rate_at_the_assumed_utilisation():
    est = at.course.cost.gpu_seconds(1e15)
    assert set(est) == set(at.course.cost.PEAK_TFLOPS)
    for gpu, seconds in est.items():
        assert seconds == 1e15 / (at.course.cost.PEAK_TFLOPS[gpu] * 1e12 * at.course.cost.ASSUMED_UTILISATION)
    assert est["Colab T4 (fp16)"] > est["A100 (bf16)"] > est["H100 SXM (bf16)"]
    assert at.course.cost.gpu_seconds(2e15, utilisation=0.6) == pytest.approx(est)  # twice the work at twice the utilisation
