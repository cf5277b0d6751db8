"""Wrong answers that must lose points, right answers that must not: mutation testing for the checks.

For every task of ex01-ex07, a list of plausible student mistakes, each a small edit of the solution
(``solutions/exNN_*.py``), and acceptable variants (another correct formula, order or dtype). Every
mistake must lose points and every variant keep full marks, both in the inline ``check()`` and in the
batch grader (all of them in one ``grader.grade`` call). A mistake the check can name must be named in
its hint (``says``). The checks draw inputs that separate each listed mistake by construction, so one
grading is the test; the cheap function-only tasks are also checked again on fresh inputs each time.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

import pytest

from adaptertune_lite.course.twins import render
from adaptertune_lite.grading import check, grader, tasks_of
from adaptertune_lite.grading.tasks import TASKS
from helpers import ROOT


@dataclass(frozen=True)
class Edit:
    """A change of the solution for one task: ``edits`` replace text found exactly once in the solution."""

    task: str
    name: str
    edits: tuple[tuple[str, str], ...]
    says: str | None = None  # what the hint must say (the mistake named); None: only that points are lost

    @property
    def exercise(self) -> str:
        return self.task.split(".")[0]


def m(task: str, name: str, old: str, new: str, says: str | None = None, *more: tuple[str, str]) -> Edit:
    return Edit(task, name, ((old, new), *more), says)


ADAPTER_RETURN = "return self.up(F.gelu(self.down(h)))"
FREEZE_HEAD = "    for p in model.head.parameters():\n        p.requires_grad_(True)\n"
GAP = "return float((adapted(x) - model(x)).abs().max())"
DZ = "dz = (g @ W_up) * (Phi + z * phi)  # (N, r)"
CENTRE_X, CENTRE_Y = "X = X.double() - X.double().mean(0)", "Y = Y.double() - Y.double().mean(0)"
CKA_RETURN = "return float((Y.T @ X).norm() ** 2 / ((X.T @ X).norm() * (Y.T @ Y).norm()))"
HOOK = "out.append(o[:, 0])"
ELBOW_MEAN = ".reshape(len(ranks), -1).mean(1)"
TARGET = "target = mean[0] + share * (mean[-1] - mean[0])"
RECIPE = 'base = RunConfig.from_recipe("adapter_tune", at.recipes.DEFAULT_TARGET, fast=True)'
PER_BLOCK = 'per_block = 2 if placement == "houlsby" else 1'
FITTING = "if adapter_params(width, depth, r, placement, blocks) <= budget]"
TRAINABLE = 'return at.set_trainable(model, "adapter_tune")'
MERGE = "return W + scale * (B @ A)"
VERIFY = "return float((x @ W_merged.T + b - unmerged).abs().max())"
HALF = "half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))"

MISTAKES = [
    m("ex01.adapter", "tanh GELU", ADAPTER_RETURN, 'return self.up(F.gelu(self.down(h), approximate="tanh"))', "tanh"),
    m("ex01.adapter", "ReLU", ADAPTER_RETURN, "return self.up(F.relu(self.down(h)))", "ReLU"),
    m("ex01.adapter", "residual included", ADAPTER_RETURN, "return h + self.up(F.gelu(self.down(h)))", "h + A(h)"),
    m("ex01.adapter", "default init of W_down", "        nn.init.xavier_uniform_(self.down.weight)\n", "", "Kaiming"),
    m("ex01.adapter", "Xavier-normal", "nn.init.xavier_uniform_(self.down.weight)", "nn.init.xavier_normal_(self.down.weight)",
      "Xavier-normal"),
    m("ex01.adapter", "W_up not zeroed", "        nn.init.zeros_(self.up.weight)\n", ""),
    m("ex01.adapter", "no biases", "nn.Linear(dim, rank)", "nn.Linear(dim, rank, bias=False)", None,
      ("        nn.init.zeros_(self.down.bias)\n", "")),
    m("ex01.param_count", "no biases", "return 2 * d * r + r + d", "return 2 * d * r", "without the biases"),
    m("ex01.param_count", "one bias", "return 2 * d * r + r + d", "return 2 * d * r + d", "one bias missing"),
    m("ex01.param_count", "one matrix", "return 2 * d * r + r + d", "return d * r + r + d", "one weight matrix"),
    m("ex01.freeze", "backbone not frozen", "        p.requires_grad_(False)\n", "        pass\n"),
    m("ex01.freeze", "head frozen", FREEZE_HEAD, ""),
    m("ex01.freeze", "head weight only", "for p in model.head.parameters():", "for p in [model.head.weight]:"),
    m("ex01.freeze", "a copy frozen", "    for p in model.parameters():\n        p.requires_grad_(False)",
      "    model = __import__('copy').deepcopy(model)\n    for p in model.parameters():\n        p.requires_grad_(False)", "copy"),
    m("ex02.post_mlp", "after the block", "block.mlp.register_forward_hook(lambda module, args, output: output + module.adapter(output))",
      "block.register_forward_hook(lambda module, args, output: output + adapter(output))", "after the whole block"),
    m("ex02.post_mlp", "replaces the output", "output + module.adapter(output)", "module.adapter(output)", "replaced by A(m)"),
    m("ex02.post_mlp", "not registered", "    block.mlp.adapter = adapter\n", "", None, ("module.adapter(output)", "adapter(output)")),
    m("ex02.post_mlp", "on a copy", "    block.mlp.adapter = adapter\n", "    block = copy.deepcopy(block)\n    block.mlp.adapter = adapter\n",
      "left unchanged"),
    m("ex02.identity_gap", "train mode", "    model.eval(), adapted.eval()\n", ""),
    m("ex02.identity_gap", "signed", GAP, "return float((adapted(x) - model(x)).max())", "signed"),
    m("ex02.identity_gap", "mean", GAP, "return float((adapted(x) - model(x)).abs().mean())", "mean |difference|"),
    m("ex03.backprop", "no GELU'", DZ, "dz = g @ W_up", "left out"),
    m("ex03.backprop", "Φ only", DZ, "dz = (g @ W_up) * Phi", "Φ(z) only"),
    m("ex03.backprop", "tanh GELU", "    a = z * Phi  # GELU(z)\n    " + DZ,
      "    u = math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)\n    a = 0.5 * z * (1 + torch.tanh(u))\n"
      "    du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * z**2)\n"
      "    dz = (g @ W_up) * (0.5 * (1 + torch.tanh(u)) + 0.5 * z * (1 - torch.tanh(u) ** 2) * du)", "tanh"),
    m("ex03.backprop", "mean for b_up", '"b_up": g.sum(0)', '"b_up": g.mean(0)', "mean over the rows"),
    m("ex03.backprop", "W_up transposed", '"W_up": g.T @ a', '"W_up": a.T @ g'),
    m("ex03.init", "zero W_down", "nn.init.xavier_uniform_(adapter.down.weight)", "nn.init.zeros_(adapter.down.weight)", "left at zero"),
    m("ex03.init", "Xavier-normal", "nn.init.xavier_uniform_(adapter.down.weight)", "nn.init.xavier_normal_(adapter.down.weight)",
      "Xavier-normal"),
    m("ex03.init", "default init", "nn.init.xavier_uniform_(adapter.down.weight)", "adapter.down.reset_parameters()", "Kaiming"),
    m("ex03.init", "b_down left", "    nn.init.zeros_(adapter.down.bias)\n", "", "b_down"),
    m("ex03.init", "swapped", "nn.init.xavier_uniform_(adapter.down.weight)", "nn.init.xavier_uniform_(adapter.up.weight)", None,
      ("nn.init.zeros_(adapter.up.weight)", "nn.init.zeros_(adapter.down.weight)")),
    m("ex04.cka", "not centred", CENTRE_X, "X = X.double()", "without centring", (CENTRE_Y, "Y = Y.double()")),
    m("ex04.cka", "rows centred", CENTRE_X, "X = X.double() - X.double().mean(1, keepdim=True)", "row",
      (CENTRE_Y, "Y = Y.double() - Y.double().mean(1, keepdim=True)")),
    m("ex04.cka", "numerator not squared", "(Y.T @ X).norm() ** 2", "(Y.T @ X).norm()", "not squared"),
    m("ex04.cka", "denominator squared", "((X.T @ X).norm() * (Y.T @ Y).norm()))", "((X.T @ X).norm() * (Y.T @ Y).norm()) ** 2)",
      "denominator"),
    m("ex04.cka", "Y not centred", CENTRE_Y, "Y = Y.double()"),
    m("ex04.cls_cka", "mean over tokens", HOOK, "out.append(o.mean(1))", "mean over tokens"),
    m("ex04.cls_cka", "last token", HOOK, "out.append(o[:, -1])", "last token"),
    m("ex04.cls_cka", "every token", HOOK, "out.append(o.flatten(0, 1))", "every token pooled"),
    m("ex04.cls_cka", "first block skipped", "for b in m.blocks]", "for b in m.blocks[1:]]"),
    m("ex05.elbow", "seed 0 only", ELBOW_MEAN, ".reshape(len(ranks), -1)[:, 0]", "seed 0"),
    m("ex05.elbow", "share of the top", TARGET, "target = share * mean[-1]", "largest rank's accuracy"),
    m("ex05.elbow", "1-point rule", "if acc >= target)", "if mean[-1] - acc < 0.01)", "1-point"),
    m("ex05.elbow", "share fixed at 0.9", TARGET, "target = mean[0] + 0.9 * (mean[-1] - mean[0])", "whatever share"),
    m("ex05.lora_scale", "r / α", "return alpha / r", "return r / alpha", "upside down"),
    m("ex05.lora_scale", "α alone", "return alpha / r", "return alpha", "α alone"),
    m("ex05.lora_scale", "rsLoRA", "return alpha / r", "return alpha / r ** 0.5", "rsLoRA"),
    m("ex05.lora_scale", "integer division", "return alpha / r", "return alpha // r", "integer division"),
    # the budget is a required keyword (a config reads no FAST mode): leaving it out is an error that names it
    m("ex05.configs", "fast left out", RECIPE, 'base = RunConfig.from_recipe("adapter_tune", at.recipes.DEFAULT_TARGET)', "argument: 'fast'"),
    m("ex05.configs", "full budget", RECIPE, 'base = RunConfig.from_recipe("adapter_tune", at.recipes.DEFAULT_TARGET, fast=False)', "full budget"),
    m("ex05.configs", "LoRA", RECIPE, 'base = RunConfig.from_recipe("lora", at.recipes.DEFAULT_TARGET, fast=True)', "LoRA"),
    m("ex05.configs", "seeds left out", "grid(base, rank=ranks, seed=seeds)", "grid(base, rank=ranks)", "seeds left out"),
    m("ex05.configs", "first seed", "grid(base, rank=ranks, seed=seeds)", "grid(base, rank=ranks, seed=seeds[:1])", "first seed"),
    m("ex06.count", "houlsby once", PER_BLOCK, "per_block = 1", "one adapter per block"),
    m("ex06.count", "blocks ignored", "len(at.resolve_blocks(blocks, depth))", "depth", "every block counted"),
    m("ex06.count", "every:2 as depth // 2", "len(at.resolve_blocks(blocks, depth))",
      '(depth // 2 if blocks == "every:2" else len(at.resolve_blocks(blocks, depth)))', "depth // 2"),
    m("ex06.count", "no biases", "(2 * width * rank + rank + width)", "(2 * width * rank)", "biases"),
    m("ex06.best_rank", "strict <", FITTING, FITTING.replace("<=", "<"), "strict"),
    m("ex06.best_rank", "stops at 128", "range(9)", "range(8)", "stopping at 128"),
    m("ex06.best_rank", "0 for none", "else None", "else 0", "return None"),
    m("ex06.prepare", "the backbone returned", TRAINABLE, 'at.set_trainable(model, "adapter_tune")\n    return backbone', "copy"),
    m("ex06.prepare", "nothing frozen", TRAINABLE, "return model", "nothing frozen"),
    m("ex06.prepare", "random init", "blocks=blocks)", 'blocks=blocks, init="random")'),
    m("ex07.merge", "scale forgotten", MERGE, "return W + B @ A", "scale forgotten"),
    m("ex07.merge", "in place", MERGE, "return W.add_(scale * (B @ A))", "in place"),
    m("ex07.merge", "scale twice", MERGE, "return W + scale * scale * (B @ A)", "twice"),
    m("ex07.merge", "transposed", MERGE, "return W + scale * (B @ A).T"),
    m("ex07.verify", "signed", VERIFY, "return float((x @ W_merged.T + b - unmerged).max())", "signed"),
    m("ex07.verify", "mean", VERIFY, "return float((x @ W_merged.T + b - unmerged).abs().mean())", "mean |difference|"),
    m("ex07.verify", "sum", VERIFY, "return float((x @ W_merged.T + b - unmerged).abs().sum())", "sum"),
    m("ex07.verify", "compared with W", "unmerged = x @ W.T + b + scale * (x @ A.T) @ B.T", "unmerged = x @ W.T + b"),
    m("ex07.decide", "z interval", HALF, "half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))", "z interval"),
    m("ex07.decide", "ddof=0", "d.std(ddof=1)", "d.std()", "ddof=0"),
    m("ex07.decide", "one-sided", "stats.t.ppf(0.975,", "stats.t.ppf(0.95,", "one-sided"),
    m("ex07.decide", "n degrees of freedom", "stats.t.ppf(0.975, len(d) - 1)", "stats.t.ppf(0.975, len(d))", "n degrees"),
    m("ex07.decide", "no minimum of seeds", "if len(d) < 3:", "if len(d) < 2:", "minimum number of seeds"),
    m("ex07.decide", "unpaired", HALF,
      "half = stats.t.ppf(0.975, len(d) - 1) * np.sqrt(np.var(a, ddof=1) / len(d) + np.var(b, ddof=1) / len(d))", "unpaired"),
    m("ex07.decide", "winner upside down", '> 0:\n        return "a"', '> 0:\n        return "b"', "upside down",
      ('< 0:\n        return "b"', '< 0:\n        return "a"')),
]

VARIANTS = [
    m("ex01.adapter", "nn.GELU module", ADAPTER_RETURN, "return self.up(nn.GELU()(self.down(h)))"),
    m("ex01.adapter", "up defined first", "        self.down = nn.Linear(dim, rank)\n        self.up = nn.Linear(rank, dim)\n",
      "        self.up = nn.Linear(rank, dim)\n        self.down = nn.Linear(dim, rank)\n"),
    m("ex01.param_count", "factored", "return 2 * d * r + r + d", "return d * (2 * r + 1) + r"),
    m("ex01.freeze", "by name", "    for p in model.parameters():\n        p.requires_grad_(False)\n"
      "    for adapter in at.adapters_of(model).values():\n        for p in adapter.parameters():\n            p.requires_grad_(True)\n"
      + FREEZE_HEAD,
      '    for n, p in model.named_parameters():\n        p.requires_grad_(".adapter" in n or n.startswith("head."))\n'),
    m("ex02.post_mlp", "a named hook, add_module",
      "    block.mlp.adapter = adapter\n    block.mlp.register_forward_hook(lambda module, args, output: output + module.adapter(output))\n",
      '    block.mlp.add_module("adapter", adapter)\n\n    def hook(module, args, output):\n'
      "        return output + module.adapter(output)\n\n    block.mlp.register_forward_hook(hook)\n"),
    m("ex02.identity_gap", "inference_mode, .item()", "    with torch.no_grad():\n        " + GAP,
      "    with torch.inference_mode():\n        return (model(x) - adapted(x)).abs().max().item()"),
    m("ex03.backprop", "ndtr and einsum", "Phi = 0.5 * (1 + torch.erf(z / math.sqrt(2)))", "Phi = torch.special.ndtr(z)", None,
      ('"W_up": g.T @ a', '"W_up": torch.einsum("nd,nr->dr", g, a)')),
    m("ex03.init", "uniform by hand", "nn.init.xavier_uniform_(adapter.down.weight)",
      "nn.init.uniform_(adapter.down.weight, -math.sqrt(6 / sum(adapter.down.weight.shape)), math.sqrt(6 / sum(adapter.down.weight.shape)))"),
    m("ex04.cka", "float32", CENTRE_X, "X = X.float() - X.float().mean(0)", None, (CENTRE_Y, "Y = Y.float() - Y.float().mean(0)")),
    m("ex04.cka", "Gram matrices (HSIC form)", CKA_RETURN,
      "K, L = X @ X.T, Y @ Y.T\n    return float((K * L).sum() / torch.sqrt((K * K).sum() * (L * L).sum()))"),
    m("ex04.cls_cka", "reference first", "zip(cls_tokens(model), cls_tokens(reference))", "zip(cls_tokens(reference), cls_tokens(model))"),
    m("ex05.elbow", "argmax", "return next(r for r, acc in zip(ranks, mean) if acc >= target)", "return ranks[int(np.argmax(mean >= target))]"),
    m("ex05.lora_scale", "float()", "return alpha / r", "return float(alpha) * (1.0 / r)"),
    m("ex05.configs", "replace in a loop", "return grid(base, rank=ranks, seed=seeds)",
      "return [base.replace(rank=r, seed=s) for s in seeds for r in ranks]"),
    m("ex06.count", "num_adapter_params", "(2 * width * rank + rank + width)", "at.num_adapter_params(width, rank)"),
    m("ex06.best_rank", "downward loop", "    fitting = [r for r in (2**k for k in range(9)) " + FITTING +
      "\n    return max(fitting) if fitting else None",
      "    for r in (256, 128, 64, 32, 16, 8, 4, 2, 1):\n        if adapter_params(width, depth, r, placement, blocks) <= budget:\n"
      "            return r\n    return None"),
    m("ex06.prepare", "set_trainable, then return", TRAINABLE, 'at.set_trainable(model, "adapter_tune")\n    return model'),
    m("ex07.merge", "addmm", MERGE, "return torch.addmm(W, B, A, alpha=scale)"),
    m("ex07.verify", "item() of a max", VERIFY, "return torch.max(torch.abs(x @ W_merged.T + b - unmerged)).item()"),
    m("ex07.decide", "ttest_rel", HALF + "\n    if d.mean() - half > 0:\n        return \"a\"\n    if d.mean() + half < 0:\n        return \"b\"",
      "if stats.ttest_rel(a, b).pvalue < 0.05:\n        return \"a\" if d.mean() > 0 else \"b\""),
]

# Graded by the inline check only, so that the batch call stays at 4 notebooks of mistakes per exercise
# (35 notebooks in all): the verdicts are the same code in both, the batch adds the process boundary.
INLINE_ONLY = {"ex01.adapter:ReLU", "ex01.adapter:W_up not zeroed", "ex01.adapter:no biases", "ex03.backprop:W_up transposed",
               "ex03.init:swapped", "ex04.cka:rows centred", "ex04.cka:numerator not squared", "ex04.cka:Y not centred",
               "ex04.cls_cka:every token", "ex04.cls_cka:first block skipped", "ex06.count:blocks ignored", "ex06.count:no biases",
               "ex06.best_rank:0 for none", "ex07.decide:one-sided", "ex07.decide:n degrees of freedom",
               "ex07.decide:winner upside down", "ex01.adapter:nn.GELU module", "ex04.cka:Gram matrices (HSIC form)"}
UPSTREAM = {"ex04.cls_cka": "ex04.cka", "ex06.best_rank": "ex06.count"}  # a task graded through another's function
FUNCTION_ONLY = ["ex01.param_count", "ex03.backprop", "ex03.init", "ex05.elbow", "ex05.lora_scale", "ex06.best_rank",
                 "ex07.verify", "ex07.decide"]  # cheap: checked again on fresh inputs
REPEATS = 10


def solution(exercise: str) -> str:
    return next((ROOT / "solutions").glob(f"{exercise}_*.py")).read_text()


def apply(text: str, *edits: Edit) -> str:
    for edit in edits:
        for old, new in edit.edits:
            assert text.count(old) == 1, f"{edit.task} / {edit.name}: {old!r} is not in the solution exactly once"
            text = text.replace(old, new)
    return text


def definitions(text: str) -> dict:
    """What a student's notebook defines: its import, function and class cells run (checks and demos are not)."""
    namespace: dict = {}
    parts = re.split(r"^# %%(.*)$", text, flags=re.M)
    for header, body in zip(parts[1::2], parts[2::2]):
        if "[markdown]" not in header and "find_spec" not in body and body.lstrip().startswith(("def ", "class ", "import ", "from ")):
            exec(compile(body, "<notebook cell>", "exec"), namespace)
    return namespace


def inline(task_id: str, text: str):
    namespace = definitions(text)
    return check(task_id, *(namespace[name] for name in TASKS[task_id].needs))


def _id(edit: Edit) -> str:
    return f"{edit.task}:{edit.name}"


def test_every_task_of_every_exercise_has_mistakes_and_a_variant_in_the_batch_too():
    course = {t for t in TASKS if t.split(".")[0] in {f"ex0{i}" for i in range(1, 8)} and "hidden" not in t}
    for edits in (MISTAKES, VARIANTS):
        assert {e.task for e in edits} == {e.task for e in edits if _id(e) not in INLINE_ONLY} == course
    assert INLINE_ONLY <= {_id(e) for e in MISTAKES + VARIANTS}
    assert len({_id(e) for e in MISTAKES + VARIANTS}) == len(MISTAKES + VARIANTS)


# ----------------------------------------------------------------------------- the inline check
@pytest.mark.parametrize("edit", MISTAKES, ids=_id)
def test_a_mistake_loses_points_in_the_inline_check_and_its_hint_names_it(edit, capsys):
    grade = inline(edit.task, apply(solution(edit.exercise), edit))
    report = grade.report()
    assert grade.points < grade.max_points, f"{edit.name} kept full marks:\n{report}"
    if edit.says:
        assert edit.says in report, f"{edit.name}: the hint does not name it ({edit.says!r}):\n{report}"


@pytest.mark.parametrize("edit", VARIANTS, ids=_id)
def test_a_correct_variant_keeps_full_marks_in_the_inline_check(edit, capsys):
    grade = inline(edit.task, apply(solution(edit.exercise), edit))
    assert grade.status == "pass", grade.report()


@pytest.mark.parametrize("task_id", FUNCTION_ONLY)
def test_every_mistake_of_a_cheap_task_is_caught_on_fresh_inputs_every_time(task_id, capsys):
    """The separating inputs are built, not hoped for: a mistake that passed once in 20 would show here."""
    for edit in [e for e in MISTAKES if e.task == task_id]:
        namespace = definitions(apply(solution(edit.exercise), edit))
        objects = [namespace[name] for name in TASKS[task_id].needs]
        kept = [g.points for g in (check(task_id, *objects) for _ in range(REPEATS)) if g.points == g.max_points]
        assert not kept, f"{edit.name} kept full marks in {len(kept)} of {REPEATS} gradings"


# ----------------------------------------------------------------------------- the batch grader
def rounds(edits: list[Edit], upstream: dict[str, str]) -> list[list[Edit]]:
    """Edits grouped into notebooks: at most one per task, and (for mistakes) never a task with the task whose
    function it calls, which would lose points through the other's mistake."""
    groups: list[list[Edit]] = []
    for edit in edits:
        clash = lambda e: e.task == edit.task or upstream.get(e.task) == edit.task or upstream.get(edit.task) == e.task  # noqa: E731
        group = next((g for g in groups if g[0].exercise == edit.exercise and not any(clash(e) for e in g)), None)
        if group is None:
            groups.append(group := [])
        group.append(edit)
    return groups


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Every mistake and variant graded in one grader call; returns (rows by student and task, the groups)."""
    root = tmp_path_factory.mktemp("wrong_answers")
    batched = lambda edits: [e for e in edits if _id(e) not in INLINE_ONLY]  # noqa: E731
    groups = {f"{kind}{i:02d}_{g[0].exercise}": g for kind, edits, upstream in (("mistakes", batched(MISTAKES), UPSTREAM),
                                                                              ("variants", batched(VARIANTS), {}))
              for i, g in enumerate(rounds(edits, upstream))}
    for student, group in groups.items():
        name = next((ROOT / "solutions").glob(f"{group[0].exercise}_*.py")).stem
        (root / "subs" / student).mkdir(parents=True)
        (root / "subs" / student / f"{name}.ipynb").write_text(render(apply(solution(group[0].exercise), *group)))
    grader.grade(root / "subs", root / "grades.csv", timeout=60, progress=False)
    with open(root / "grades.csv", newline="") as fh:
        rows = {(r["student"], r["task"]): r for r in csv.DictReader(fh)}
    return rows, groups


@pytest.mark.slow
def test_in_the_batch_grader_every_mistake_loses_points_and_every_variant_keeps_them(batch):
    rows, groups = batch
    problems = []
    for student, group in groups.items():
        broken = {e.task: e for e in group if student.startswith("mistakes")}
        for (who, task_id), row in rows.items():
            if who != student:
                continue
            full = float(row["points"]) == float(row["max"]) and row["status"] == "pass"
            if task_id in broken and full:
                problems.append(f"{student}: {broken[task_id].name} kept full marks in {task_id}")
            elif task_id not in broken and UPSTREAM.get(task_id) not in broken and not full:
                problems.append(f"{student}: {task_id} lost points ({row['status']}: {row['reason']})")
    assert not problems, "\n".join(problems)
    assert {s for s, _ in rows} == set(groups) and len(rows) == sum(len(tasks_of(g[0].exercise)) for g in groups.values())
