"""The GPU path, checked on a CPU where the fault shows on a CPU, and its mechanism where it needs CUDA."""

import contextlib

import pytest
import timm.layers
import torch

import adaptertune_lite as at
from adaptertune_lite import data
from adaptertune_lite.engine import runtime
from adaptertune_lite.train import train_step
from helpers import tiny_vit

RECIPE = at.Recipe(epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def digits():
    return at.load_dataset("digits", tiny_vit(), n_train=256)


@pytest.mark.skipif(not hasattr(timm.layers, "set_reentrant_ckpt"), reason="this timm has no reentrant switch")
def test_checkpointing_trains_the_adapters_even_in_timms_reentrant_mode(digits):
    """Reentrant checkpointing computes no gradient for a block's parameters when the block's input needs none:
    with timm's checkpointing in that mode only the head trained, silently. fit checkpoints non-reentrantly."""
    was = timm.layers.use_reentrant_ckpt()
    timm.layers.set_reentrant_ckpt(True)
    try:
        runs = []
        for ck in (False, True):
            model = at.add_adapters(tiny_vit(), rank=4)
            before = {k: v.clone() for k, v in model.state_dict().items() if ".adapter." in k}
            r = at.fit(model, digits.train, recipe=RECIPE, progress=False, speedups=at.Speedups(grad_checkpointing=ck))
            moved = sum(not torch.equal(v, model.state_dict()[k]) for k, v in before.items())
            runs.append((r, moved, len(before)))
    finally:
        timm.layers.set_reentrant_ckpt(was)
    (plain, plain_moved, n), (ckpt, ckpt_moved, _) = runs
    assert plain_moved == ckpt_moved == n  # every adapter tensor trained, with and without checkpointing
    assert torch.allclose(torch.tensor(plain.history["loss"]), torch.tensor(ckpt.history["loss"]), atol=1e-5)


def test_checkpointing_leaves_the_blocks_as_they_were(images):
    model = at.add_adapters(tiny_vit(), rank=4, placement="houlsby", init="random")
    with torch.no_grad():
        before = model(images)
    with at.train.checkpointing(model, True):
        assert all("forward" in vars(b) for b in model.blocks)
        out = model(images)
        out.sum().backward()
    assert all("forward" not in vars(b) for b in model.blocks)
    assert all(p.grad is not None for n, p in model.named_parameters() if ".adapter." in n)
    with torch.no_grad():
        assert torch.equal(model(images), before) and torch.allclose(out, before)


@pytest.mark.parametrize("capability, dtype, scaler", [((9, 0), torch.bfloat16, False), ((8, 0), torch.bfloat16, False),
                                                      ((7, 5), torch.float16, True), ((7, 0), torch.float16, True)])
def test_precision_policy_picks_bf16_only_where_the_gpu_has_it(monkeypatch, capability, dtype, scaler):
    """H100/H200/A100 (>= 8.0): bf16, no scaler; T4 (7.5) and V100 (7.0): fp16 with a GradScaler. Decided from
    the device's compute capability (mocked here; the GPU check runs it for real)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    runtime._policy.cache_clear()
    try:
        p = runtime.precision(torch.device("cuda", 0))
    finally:
        runtime._policy.cache_clear()
    assert (p.dtype, p.scaler) == (dtype, scaler) and f"{capability[0]}.{capability[1]}" in p.reason
    assert runtime.precision(torch.device("cpu")).dtype == torch.float32


def test_a_gradient_scaler_unscales_before_clipping(digits):
    """fp16 training scales the loss; the step must unscale the gradients before clipping them, or clipping acts
    on gradients 65536 times too large. With a power-of-two scale the scaled step equals the plain one."""
    x, y = digits.train.images[:64], digits.train.labels[:64]
    tf = data.transform_of(digits.train)
    steps = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=2.0**16)):
        model = at.add_adapters(tiny_vit(), rank=4, init="random")
        at.set_trainable(model, "adapter_tune")
        opt = at.train.make_optimizer(model.parameters(), 1e-2, 0.05, torch.device("cpu"))
        for _ in range(3):
            loss, _ = train_step(model, x, y, opt, transform=tf, grad_clip=0.01, scaler=scaler)
        steps.append((loss, model.head.weight.detach().clone()))
    assert torch.allclose(steps[0][1], steps[1][1], atol=1e-6) and torch.allclose(steps[0][0], steps[1][0])


def test_preload_checks_host_memory_and_decodes_without_a_second_copy(monkeypatch):
    """CIFAR-100 at 224 px is 6.8 GB of uint8; Colab has about 12.7 GB of RAM. The decision looks at the host's
    available memory (where decoding happens), not only the GPU's."""
    class Few(torch.utils.data.Dataset):
        classes = ["a", "b"]
        transform = None

        def __len__(self):
            return 10

        def __getitem__(self, i):
            return torch.full((3, 8, 8), i, dtype=torch.uint8), i % 2

    split = Few()
    cpu = torch.device("cpu")
    assert data.should_preload(split, cpu, None)
    monkeypatch.setattr(data.psutil, "virtual_memory", lambda: type("VM", (), {"available": 2 * 3 * 8 * 8 * 10 - 1})())
    assert not data.should_preload(split, cpu, None) and data.should_preload(split, cpu, True)
    decoded = data.decode_all(split, batch_size=4, num_workers=0, progress=False)
    assert decoded.images[:, 0, 0, 0].tolist() == list(range(10)) and decoded.labels.tolist() == [0, 1] * 5


def test_compile_makes_one_graph_per_batch_shape_and_a_sweep_reuses_it():
    """The last batch of an epoch is partial (65 = 64 + 1 here, a batch of 1 at that); it runs eager, so it
    compiles no second graph, and a second fit of a fresh model of the same shape compiles nothing new. The
    losses are those of the eager loop."""
    import torch._dynamo  # noqa: PLC0415  (only this test counts compiled graphs)
    from torch._dynamo.utils import counters  # noqa: PLC0415

    torch._dynamo.reset()
    counters.clear()
    data = at.load_dataset("digits", at.load_backbone("kit_vit_tiny", num_classes=10), n_train=65)
    recipe = at.Recipe(epochs=2, lr=1e-2)

    def losses(compile_: bool | str) -> list[float]:
        at.seed_everything(0)  # the same head and adapters every time
        model = at.add_adapters(at.load_backbone("kit_vit_tiny", num_classes=10), rank=4)
        return at.fit(model, data.train, method="adapter_tune", recipe=recipe, speedups=at.Speedups(compile=compile_),
                      progress=False).history["loss"]

    compiled = losses("eager")
    assert counters["stats"]["unique_graphs"] == 1
    losses("eager")
    assert counters["stats"]["unique_graphs"] == 1  # the sweep's next fit: no new graph
    assert compiled == pytest.approx(losses(False), rel=1e-5, abs=1e-6)


def test_frozen_matmul_weights_in_bf16_compute_exactly_what_autocast_computes(images):
    """Autocast casts every frozen Linear/Conv weight to bf16 on every use and keeps the copy for backward; stored
    in bf16 they need neither, and the forward and the adapters' gradients are bitwise the same. Norms, position
    embeddings and trained parameters stay fp32, and on exit every weight is its fp32 original, bit for bit."""
    model = at.add_adapters(tiny_vit(), rank=4, init="random")
    at.set_trainable(model, "adapter_tune")
    original = {k: v.clone() for k, v in model.state_dict().items()}

    def forward_and_grads():
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(images)
        out.float().sum().backward()
        return out, [p.grad.clone() for p in model.parameters() if p.requires_grad]

    out32, grads32 = forward_and_grads()
    with runtime.frozen_weights_in(model, torch.bfloat16):
        dtypes = {n: p.dtype for n, p in model.named_parameters()}
        out16, grads16 = forward_and_grads()
    assert dtypes["blocks.0.attn.qkv.weight"] == dtypes["patch_embed.proj.weight"] == dtypes["blocks.0.mlp.fc2.bias"] == torch.bfloat16
    assert dtypes["blocks.0.norm1.weight"] == dtypes["pos_embed"] == dtypes["cls_token"] == torch.float32
    assert all(dtypes[n] == torch.float32 for n, p in model.named_parameters() if p.requires_grad)  # adapters, head
    assert torch.equal(out32, out16) and all(torch.equal(a, b) for a, b in zip(grads32, grads16))
    assert all(v.dtype == original[k].dtype and torch.equal(v, original[k]) for k, v in model.state_dict().items())


def test_fit_under_emulated_bf16_trains_with_frozen_weights_in_bf16_and_gives_them_back(digits):
    """What fit does on a bf16 GPU, emulated on the CPU: bf16 autocast, frozen matmul weights stored in bf16 while
    training, the fp32 backbone back afterwards. Outside the emulation a CPU trains in fp32 and stores nothing in bf16."""
    for emulate in (True, False):
        model = at.add_adapters(tiny_vit(), rank=4)
        frozen = {k: v.clone() for k, v in model.state_dict().items() if ".adapter." not in k and not k.startswith("head.")}
        seen = []
        callback = lambda event: seen.append(model.blocks[0].mlp.fc1.weight.dtype)  # noqa: E731
        with runtime.emulate_precision(torch.bfloat16) if emulate else contextlib.nullcontext():
            assert runtime.precision(torch.device("cpu")).dtype == (torch.bfloat16 if emulate else torch.float32)
            at.fit(model, digits.train, recipe=RECIPE, progress=False, callbacks=[callback])
        assert set(seen) == {torch.bfloat16 if emulate else torch.float32}
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in frozen.items())  # bitwise, fp32
    assert runtime.precision(torch.device("cpu")).dtype == torch.float32  # the emulation ended with its block


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: the CPU tests above check the mechanism")
def test_fit_on_a_gpu_keeps_the_frozen_backbone_bitwise(digits):
    model = at.add_adapters(tiny_vit(), rank=4)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if ".adapter." not in k and not k.startswith("head.")}
    at.fit(model, digits.train, recipe=RECIPE, progress=False, device="cuda")
    assert all(torch.equal(v, model.state_dict()[k].cpu()) and model.state_dict()[k].dtype == torch.float32 for k, v in frozen.items())
