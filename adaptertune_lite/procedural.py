"""Procedurally generated images for pretraining the kit backbone offline.

Two families of classes, each class defined by a few random numbers drawn from a seed:

* **fractals** – the attractor of a random iterated function system (IFS) of 2–4 contractive
  affine maps, rendered by the chaos game. This is the formula-driven pretraining data of
  FractalDB (Kataoka et al., ACCV 2020), which Nakashima et al. (AAAI 2022) used to pretrain ViTs.
* **glyphs** – 1–3 random cubic Bézier strokes, like an invented alphabet; each instance is
  jittered, sheared, rotated, scaled and drawn with its own pen width and colours.

Instances of a class vary (perturbed parameters, placement, colours), so a network must learn
shapes rather than memorise pixels. Everything is vectorised in torch and deterministic given
the seed, and runs on the GPU when given a CUDA generator and device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GENERATOR_VERSION = "1"


def _uniform(g: torch.Generator, shape, lo: float, hi: float, device) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=device) * (hi - lo) + lo


class ProceduralImages:
    """A family of ``n_fractal + n_glyph`` procedural classes.

    Labels ``0..n_fractal-1`` are fractal classes, the rest glyph classes.

    >>> gen = ProceduralImages(n_fractal=4, n_glyph=4, img_size=32, seed=0)
    >>> x, y = gen.sample(8, torch.Generator().manual_seed(1))
    >>> x.shape, x.dtype, y.shape
    (torch.Size([8, 3, 32, 32]), torch.uint8, torch.Size([8]))
    """

    max_maps = 4
    strokes = 3
    points_per_stroke = 40

    def __init__(self, n_fractal: int = 256, n_glyph: int = 256, img_size: int = 32, seed: int = 0, device="cpu"):
        if n_fractal < 0 or n_glyph < 0 or n_fractal + n_glyph == 0:
            raise ValueError("Need at least one class: n_fractal and n_glyph are counts >= 0, not both 0.")
        self.n_fractal, self.n_glyph, self.img_size, self.seed = n_fractal, n_glyph, img_size, seed
        self.device = torch.device(device)
        g = torch.Generator(device=self.device).manual_seed(seed)
        self.ifs, self.ifs_probs = self._sample_ifs_classes(n_fractal, g)
        self.glyphs, self.glyph_mask = self._sample_glyph_classes(n_glyph, g)

    @property
    def num_classes(self) -> int:
        return self.n_fractal + self.n_glyph

    # ------------------------------------------------------------------ class definitions
    def _sample_ifs_classes(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """IFS per class: (n, max_maps, 6) affine params [a b c d e f] and (n, max_maps) probabilities."""
        kept_params = [torch.empty(0, self.max_maps, 6, device=self.device)]  # n = 0: glyph classes only
        kept_probs, have = [torch.empty(0, self.max_maps, device=self.device)], 0
        while have < n:  # rejection sampling in batches: contractive maps whose attractor fills the frame
            c = 256
            m = torch.randint(2, self.max_maps + 1, (c,), generator=g, device=self.device)
            used = torch.arange(self.max_maps, device=self.device)[None] < m[:, None]  # (c, M)
            cand = _uniform(g, (c, self.max_maps, 6), -1.0, 1.0, self.device) * used[..., None]
            lin = cand[..., :4].reshape(c, self.max_maps, 2, 2)
            contractive = torch.linalg.matrix_norm(lin, ord=2).amax(1) < 0.95
            det = (torch.linalg.det(lin).abs() + 1e-3) * used
            probs = det / det.sum(1, keepdim=True)
            place = torch.tensor([[1.0, 0.0, 0.0, 0.0]], device=self.device).expand(c, 4)
            fill = (self._render_ifs(cand, probs, place, g, size=32) > 0.05).float().mean((1, 2))
            ok = contractive & (fill >= 0.12)  # reject points and thin lines
            kept_params.append(cand[ok])
            kept_probs.append(probs[ok])
            have += int(ok.sum())
        return torch.cat(kept_params)[:n], torch.cat(kept_probs)[:n]

    def _sample_glyph_classes(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Bézier control points per class: (n, strokes, 4, 2) in [0.1, 0.9]^2 and a (n, strokes) stroke mask."""
        ctrl = _uniform(g, (n, self.strokes, 4, 2), 0.1, 0.9, self.device)
        n_strokes = torch.randint(1, self.strokes + 1, (n,), generator=g, device=self.device)
        mask = torch.arange(self.strokes, device=self.device)[None] < n_strokes[:, None]
        return ctrl, mask

    # ------------------------------------------------------------------ rendering
    def _render_ifs(
        self,
        params: torch.Tensor,
        probs: torch.Tensor,
        placement: torch.Tensor,
        g: torch.Generator,
        size: int,
        walkers: int = 96,
        steps: int = 40,
        burn_in: int = 8,
    ) -> torch.Tensor:
        """Chaos game for B systems at once. params (B, M, 6), probs (B, M), placement (B, 4) =
        [scale, dx, dy, unused]. Returns density images (B, size, size) in [0, 1]."""
        B = params.shape[0]
        dev = params.device
        xy = torch.zeros(B, walkers, 2, device=dev)
        pts = []
        cum = probs.cumsum(-1)  # (B, M)
        for t in range(steps):
            u = torch.rand(B, walkers, 1, generator=g, device=dev)
            k = (u > cum[:, None, :]).sum(-1).clamp_max(self.max_maps - 1)  # (B, W) chosen map
            p = torch.gather(params, 1, k[..., None].expand(-1, -1, 6))  # (B, W, 6)
            x, y = xy[..., 0], xy[..., 1]
            xy = torch.stack((p[..., 0] * x + p[..., 1] * y + p[..., 4], p[..., 2] * x + p[..., 3] * y + p[..., 5]), -1)
            if t >= burn_in:
                pts.append(xy)
        pts = torch.cat(pts, 1)  # (B, N, 2)
        lo, hi = pts.amin(1, keepdim=True), pts.amax(1, keepdim=True)
        span = (hi - lo).amax(-1, keepdim=True).clamp_min(1e-6)  # keep the aspect ratio
        unit = (pts - (lo + hi) / 2) / span  # centred, in [-0.5, 0.5]
        unit = unit * placement[:, None, :1] + placement[:, None, 1:3] + 0.5
        hi_res = 2 * size
        ij = (unit * hi_res).long().clamp(0, hi_res - 1)
        flat = ij[..., 1] * hi_res + ij[..., 0]
        counts = torch.zeros(B, hi_res * hi_res, device=dev)
        counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=counts.dtype))
        dens = (counts.view(B, 1, hi_res, hi_res) > 0).float()
        return F.avg_pool2d(dens, 2).view(B, size, size)  # 2x supersampled, anti-aliased

    def _render_glyphs(self, labels: torch.Tensor, g: torch.Generator, size: int) -> torch.Tensor:
        """Draw glyph classes ``labels`` (B,) as ink images (B, size, size) in [0, 1]."""
        B, dev = labels.shape[0], labels.device
        ctrl = self.glyphs[labels] + 0.04 * torch.randn(B, self.strokes, 4, 2, generator=g, device=dev)
        t = torch.linspace(0, 1, self.points_per_stroke, device=dev)[:, None]
        bern = torch.stack(((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3), 1)  # (P, 4, 1)
        curve = (bern[None, None] * ctrl[:, :, None]).sum(3)  # (B, S, P, 2)
        # a random affine per instance: rotation, anisotropic scale, shear, translation (around the centre)
        ang = _uniform(g, (B,), -0.35, 0.35, dev)
        sx, sy = _uniform(g, (B,), 0.7, 1.05, dev), _uniform(g, (B,), 0.7, 1.05, dev)
        sh = _uniform(g, (B,), -0.25, 0.25, dev)
        c, s = torch.cos(ang), torch.sin(ang)
        A = torch.stack((torch.stack((c * sx, -s * sy + sh * sx), -1), torch.stack((s * sx, c * sy), -1)), -2)
        shift = _uniform(g, (B, 1, 1, 2), -0.08, 0.08, dev)
        curve = torch.einsum("bij,bspj->bspi", A, curve - 0.5) + 0.5 + shift
        pts = curve.reshape(B, -1, 2) * size  # (B, S*P, 2) in pixels
        valid = self.glyph_mask[labels].repeat_interleave(self.points_per_stroke, 1)  # (B, S*P)
        grid = (torch.stack(torch.meshgrid(torch.arange(size, device=dev), torch.arange(size, device=dev), indexing="xy"), -1).reshape(-1, 2) + 0.5)
        width = _uniform(g, (B, 1, 1), 0.7, 1.5, dev) * size / 32
        d2 = torch.cdist(pts, grid.float()).pow(2)  # (B, S*P, size*size)
        d2 = d2.masked_fill(~valid[..., None], float("inf"))
        ink = torch.exp(-d2.amin(1) / (2 * width[:, 0] ** 2))  # (B, size*size)
        return ink.view(B, size, size)

    def render(self, labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Render one random instance of each class in ``labels`` (B,): uint8 images (B, 3, S, S)."""
        labels = labels.to(self.device)
        B, S, dev = labels.shape[0], self.img_size, self.device
        ink = torch.zeros(B, S, S, device=dev)
        is_fractal = labels < self.n_fractal
        if is_fractal.any():
            idx = labels[is_fractal]
            params = self.ifs[idx].clone()
            jitter = 1 + 0.1 * torch.randn(params[..., :4].shape, generator=g, device=dev)
            params[..., :4] = params[..., :4] * jitter  # intra-class variation
            n = idx.shape[0]
            placement = torch.stack(
                (_uniform(g, (n,), 0.65, 0.95, dev), _uniform(g, (n,), -0.06, 0.06, dev), _uniform(g, (n,), -0.06, 0.06, dev),
                 torch.zeros(n, device=dev)),
                -1,
            )
            ink[is_fractal] = self._render_ifs(params, self.ifs_probs[idx], placement, g, S)
            flip = torch.rand(n, generator=g, device=dev) < 0.5
            ink[is_fractal] = torch.where(flip[:, None, None], ink[is_fractal].flip(-1), ink[is_fractal])
        if (~is_fractal).any():
            ink[~is_fractal] = self._render_glyphs(labels[~is_fractal] - self.n_fractal, g, S)
        # colours: ink and background apart in brightness so shape is always visible
        fg = _uniform(g, (B, 3, 1, 1), 0.55, 1.0, dev)
        bg = _uniform(g, (B, 3, 1, 1), 0.0, 0.35, dev)
        swap = torch.rand(B, 1, 1, 1, generator=g, device=dev) < 0.2  # sometimes dark ink on light paper
        fg, bg = torch.where(swap, bg, fg), torch.where(swap, fg, bg)
        img = bg + (fg - bg) * ink[:, None]
        img = img + 0.03 * torch.randn(img.shape, generator=g, device=dev)
        return (img.clamp(0, 1) * 255).round().to(torch.uint8)

    def sample(self, batch_size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of uniformly drawn classes: ``(images uint8 (B, 3, S, S), labels int64 (B,))``."""
        labels = torch.randint(0, self.num_classes, (batch_size,), generator=g, device=self.device)
        return self.render(labels, g), labels

    def dataset(self, per_class: int, seed: int, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed set of ``per_class`` instances of every class, in class order, deterministic from ``seed``."""
        labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(per_class)
        g = torch.Generator(device=self.device).manual_seed(seed)
        images = torch.cat([self.render(labels[i : i + chunk], g) for i in range(0, len(labels), chunk)])
        return images.cpu(), labels.cpu()
