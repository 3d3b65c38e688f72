"""Hiera: the hierarchical vision transformer trunk of SAM 2's image encoder.

A 7 x 7 stride-4 convolution turns the image into a token grid, to which a windowed absolute
position embedding is added (a coarse background embedding interpolated to the grid plus a
window-sized embedding tiled over it). Four stages of transformer blocks follow. Blocks attend
inside non-overlapping square windows, except a few global-attention blocks; the first block of
stages 2-4 max-pools its queries (and its projected shortcut) with stride 2, halving the grid and
doubling the width. The trunk returns the output of every stage, finest first.

Speed notes (this runs on every video frame, often on a CPU):

* Tokens stay channels-last, (B, H, W, C), so layer norms, linear layers and the MLP never need
  a permute.
* Between blocks the tokens are kept *window-partitioned* whenever the next block can use that
  layout directly: norms, linear layers, the MLP and residual sums are per token, pooling a
  2 x 2 neighbourhood stays inside an even-sided window, and global attention does not depend
  on token order. Partitioning and un-partitioning (full copies of the activations) then happen
  only where the window size changes, where a stage output is emitted, or where a window does
  not tile the grid (then the grid is zero-padded after ``norm1``, exactly as in Meta's model).
* Attention uses :func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels).
* In inference the interpolated position embedding is cached.

Parameter names match Meta's checkpoints (``patch_embed.proj``, ``pos_embed``,
``pos_embed_window``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.layers.{0,1},proj}``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP
from .config import HieraConfig

__all__ = ["DropPath", "Hiera", "HieraBlock", "MultiScaleAttention", "PatchEmbed"]

# A token layout: None for the plain grid (B, H, W, C), or (wh, ww) for windows
# (B * nh * nw, wh, ww, C) that tile the (H, W) grid exactly, ordered (B, nh, nw) row-major.
Layout = tuple[int, int] | None


def split_grid(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """A (B, nh, wh, nw, ww, C) view of a (B, H, W, C) grid (H, W multiples of wh, ww)."""
    b, h, w, c = x.shape
    wh, ww = window
    return x.view(b, h // wh, wh, w // ww, ww, c)


def partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Split a (B, H, W, C) grid into (B * nh * nw, wh, ww, C) windows (H, W divisible by them)."""
    x = split_grid(x, window).permute(0, 1, 3, 2, 4, 5)  # (B, nh, nw, wh, ww, C)
    return x.reshape(-1, *window, x.shape[-1])


def windows_as_grid(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """A (B, nh, wh, nw, ww, C) view of windows (B * nh * nw, wh, ww, C) tiling an (H, W) grid.

    Reshaping the result to (B, H, W, C) un-partitions the windows.
    """
    _, wh, ww, c = x.shape
    nh, nw = hw[0] // wh, hw[1] // ww
    return x.view(-1, nh, nw, wh, ww, c).permute(0, 1, 3, 2, 4, 5)


def to_grid(x: torch.Tensor, hw: tuple[int, int], layout: Layout) -> torch.Tensor:
    """Tokens in ``layout`` -> contiguous (B, H, W, C) grid."""
    if layout is None:
        return x
    g = windows_as_grid(x, hw)
    return g.reshape(g.shape[0], hw[0], hw[1], x.shape[-1])


def max_pool(x: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """Non-overlapping max pooling of (N, H, W, C) tokens; trailing rows/columns are dropped.

    Equal to ``nn.MaxPool2d(stride, stride)`` on the channels-first view. Taking the elementwise
    maximum of the sy * sx strided sub-grids is several times faster on a CPU than a reduction
    over the window axes, and needs no permute.

    Returns:
        (N, H // sy, W // sx, C) contiguous tokens.
    """
    sy, sx = stride
    h2, w2 = x.shape[1] // sy, x.shape[2] // sx
    out = None
    for dy in range(sy):
        for dx in range(sx):
            sub = x[:, dy : h2 * sy : sy, dx : w2 * sx : sx]  # (N, H // sy, W // sx, C) view
            out = sub if out is None else torch.maximum(out, sub)
    return out if out.is_contiguous() else out.contiguous()


class PatchEmbed(nn.Module):
    """Patchify an image with a strided convolution.

    Args:
        embed_dim: output channels.
        kernel_size / stride / padding: of the convolution (SAM 2: 7, 4, 3).
        in_chans: image channels.
    """

    def __init__(
        self,
        embed_dim: int,
        kernel_size: int = 7,
        stride: int = 4,
        padding: int = 3,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) image -> (B, S/4, S/4, C) tokens (a permuted view of the conv output)."""
        return self.proj(x).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention over token windows, optionally max-pooling the queries.

    Args:
        dim: input width.
        dim_out: width of queries, keys, values and output.
        num_heads: heads (dividing ``dim_out``).
        q_stride: pooling stride (y, x) of the queries, or None.
    """

    def __init__(
        self, dim: int, dim_out: int, num_heads: int, q_stride: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.dim_out = dim_out
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor, num_seqs: int) -> torch.Tensor:
        """Attend within groups of windows.

        Args:
            x: (N, h, w, C) tokens, N windows.
            num_seqs: number of attention sequences: N for windowed attention (each window
                attends to itself), B for global attention (the N / B consecutive windows of
                each image attend together).

        Returns:
            (N, h', w', C_out) tokens, (h', w') = (h, w) // q_stride when pooling.
        """
        n, h, w, _ = x.shape
        heads, d = self.num_heads, self.dim_out
        qkv = self.qkv(x)  # (N, h, w, 3 * C_out), channels ordered (q|k|v, head, c)
        q, k, v = qkv.view(n, h, w, 3, d).unbind(3)  # each (N, h, w, C_out), strided views
        if self.q_stride is not None:
            q = max_pool(q, self.q_stride)
            h, w = q.shape[1:3]

        def heads_first(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(num_seqs, -1, heads, d // heads).transpose(1, 2)  # (S, heads, L, c)

        out = F.scaled_dot_product_attention(heads_first(q), heads_first(k), heads_first(v))
        out = out.transpose(1, 2).reshape(n, h, w, d)  # heads back next to channels
        return self.proj(out)


class DropPath(nn.Module):
    """Stochastic depth: zero an image's residual branch with probability ``p`` while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, num_images: int) -> torch.Tensor:
        """Randomly zero (and rescale by 1 / keep) the branch of whole images.

        Args:
            x: (N, ...) residual branch; the N rows are ``num_images`` consecutive groups (one
                image, or the windows of one image).
            num_images: number of images B (dividing N).
        """
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(num_images).bernoulli_(keep).div_(keep)
        mask = mask.repeat_interleave(x.shape[0] // num_images)  # one value per row
        return x * mask.view((-1,) + (1,) * (x.ndim - 1))


class HieraBlock(nn.Module):
    """Pre-norm transformer block with windowed or global attention and optional query pooling.

    When the width changes (first block of a stage) the shortcut is ``proj(norm1(x))``, max-pooled
    like the queries.

    Args:
        dim: input width.
        dim_out: output width.
        num_heads: attention heads.
        window_size: attention window side in tokens; 0 for global attention.
        q_stride: query (and shortcut) pooling stride, or None.
        mlp_ratio: MLP hidden width / ``dim_out``.
        drop_path: stochastic-depth probability (training only; no module when 0).
    """

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        window_size: int = 0,
        q_stride: tuple[int, int] | None = None,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if window_size and q_stride and (window_size % q_stride[0] or window_size % q_stride[1]):
            raise ValueError(f"window {window_size} is not divisible by the q_stride {q_stride}")
        self.dim = dim
        self.dim_out = dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, 2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else None

    def _residual(self, x: torch.Tensor, branch: torch.Tensor, num_images: int) -> torch.Tensor:
        """``x + drop_path(branch)``, summed into ``branch`` when it is a fresh buffer.

        ``branch`` is the output of a linear layer (or of the drop-path product), which autograd
        does not keep, so the in-place sum saves an allocation even while training.
        """
        if self.drop_path is not None:
            branch = self.drop_path(branch, num_images)
        if branch.dtype == x.dtype and branch.shape == x.shape and branch.is_contiguous():
            return branch.add_(x)
        return x + branch

    def _shortcut(self, x: torch.Tensor, xn: torch.Tensor) -> torch.Tensor:
        if self.dim == self.dim_out:
            return x
        s = self.proj(xn)
        return max_pool(s, self.q_stride) if self.q_stride is not None else s

    def forward(
        self, x: torch.Tensor, hw: tuple[int, int], layout: Layout
    ) -> tuple[torch.Tensor, tuple[int, int], Layout]:
        """Run the block on tokens in any layout.

        Args:
            x: tokens in ``layout`` (see :data:`Layout`): (B, H, W, C) or windows.
            hw: token grid (H, W).
            layout: None (grid) or the window size of ``x``.

        Returns:
            ``(x, hw, layout)`` after the block: (H, W) and the windows shrink by ``q_stride``.
        """
        ws = self.window_size
        h, w = hw
        sy, sx = self.q_stride or (1, 1)
        hw_out = (h // sy, w // sx)
        if ws and (h % ws or w % ws):
            return self._forward_padded(to_grid(x, hw, layout), hw, hw_out)
        if ws and layout != (ws, ws):
            x, layout = partition(to_grid(x, hw, layout), (ws, ws)), (ws, ws)
        elif layout is not None and (layout[0] % sy or layout[1] % sx):
            # global attention with pooling, but the windows are too odd to pool inside
            x, layout = to_grid(x, hw, layout), None
        if layout is None:
            num_images, layout_out = x.shape[0], None
        else:
            num_images = x.shape[0] // ((h // layout[0]) * (w // layout[1]))
            layout_out = (layout[0] // sy, layout[1] // sx)

        xn = self.norm1(x)
        shortcut = self._shortcut(x, xn)
        attn = self.attn(xn, num_seqs=x.shape[0] if ws else num_images)
        x = self._residual(shortcut, attn, num_images)
        x = self._residual(x, self.mlp(self.norm2(x)), num_images)
        return x, hw_out, layout_out

    def _forward_padded(
        self, x: torch.Tensor, hw: tuple[int, int], hw_out: tuple[int, int]
    ) -> tuple[torch.Tensor, tuple[int, int], Layout]:
        """Windowed attention on a grid that the windows do not tile: zero-pad after ``norm1``."""
        ws = self.window_size
        s = self.q_stride or (1, 1)
        h, w = hw
        ph, pw = -h % ws, -w % ws
        xn = self.norm1(x)
        shortcut = self._shortcut(x, xn)
        xp = F.pad(xn, (0, 0, 0, pw, 0, ph))  # (B, H + ph, W + pw, C), zeros after the norm
        xw = partition(xp, (ws, ws))  # (B * nh * nw, ws, ws, C)
        a = self.attn(xw, num_seqs=xw.shape[0])
        padded_out = ((h + ph) // s[0], (w + pw) // s[1])
        a = to_grid(a, padded_out, a.shape[1:3])[:, : hw_out[0], : hw_out[1]]
        x = self._residual(shortcut, a, x.shape[0])
        x = self._residual(x, self.mlp(self.norm2(x)), x.shape[0])
        return x, hw_out, None


class Hiera(nn.Module):
    """The Hiera trunk.

    Args:
        cfg: trunk hyper-parameters.
    """

    def __init__(self, cfg: HieraConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n_stages = len(cfg.stages)
        if len(cfg.window_spec) != n_stages:
            raise ValueError("window_spec needs one window size per stage")
        if not 0 <= cfg.q_pool <= n_stages - 1:
            raise ValueError(f"q_pool must be in [0, {n_stages - 1}], got {cfg.q_pool}")
        depth = sum(cfg.stages)
        ends = [sum(cfg.stages[: i + 1]) - 1 for i in range(n_stages)]
        self.stage_ends = tuple(ends)
        pool_blocks = {e + 1 for e in ends[:-1][: cfg.q_pool]}

        self.patch_embed = PatchEmbed(cfg.embed_dim)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, cfg.embed_dim, *cfg.window_pos_embed_bkg_spatial_size)
        )
        w0 = cfg.window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, cfg.embed_dim, w0, w0))

        # stochastic-depth rate rising linearly from 0 to drop_path_rate over the blocks
        rates = [cfg.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        dim, heads, stage = cfg.embed_dim, cfg.num_heads, 0
        self.blocks = nn.ModuleList()
        for i in range(depth):
            # A stage's first block still uses the previous stage's window (it pools the queries
            # from the previous grid), then widens.
            window = 0 if i in cfg.global_att_blocks else cfg.window_spec[stage]
            dim_out = dim
            if i - 1 in ends:
                dim_out = int(dim * cfg.dim_mul)
                heads = int(heads * cfg.head_mul)
                stage += 1
            self.blocks.append(
                HieraBlock(
                    dim,
                    dim_out,
                    heads,
                    window_size=window,
                    q_stride=tuple(cfg.q_stride) if i in pool_blocks else None,
                    drop_path=rates[i],
                )
            )
            dim = dim_out
        self.channel_list = tuple(self.blocks[e].dim_out for e in ends)
        self._pos_cache: tuple[tuple, torch.Tensor] | None = None

    def _pos_embed_key(self, hw: tuple[int, int]) -> tuple:
        p, q = self.pos_embed, self.pos_embed_window
        return (hw, p.device, p.dtype, p.data_ptr(), p._version, q.data_ptr(), q._version)

    def _compute_pos_embed(self, hw: tuple[int, int]) -> torch.Tensor:
        h, w = hw
        win = self.pos_embed_window
        wh, ww = win.shape[-2:]
        if h % wh or w % ww:
            raise ValueError(
                f"token grid {hw} is not a multiple of the position-embedding window {(wh, ww)}"
            )
        c = win.shape[1]
        bkg = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")  # (1, C, H, W)
        # add the window embedding tiled over the grid, without materialising the tiling
        tiled = bkg.view(1, c, h // wh, wh, w // ww, ww) + win.view(1, c, 1, wh, 1, ww)
        return tiled.view(1, c, h, w).permute(0, 2, 3, 1).contiguous()  # (1, H, W, C)

    def position_embedding(self, hw: tuple[int, int]) -> torch.Tensor:
        """Absolute position embedding of an (H, W) token grid: (1, H, W, C).

        Cached while no gradient is being recorded; the cache is refreshed when the parameters
        change (in place, by loading or by moving).
        """
        # (inside a compiled graph the embedding is computed, and folded, instead of cached;
        # asked first: tracing stops at tensor.is_inference())
        if torch.compiler.is_compiling():
            return self._compute_pos_embed(hw)
        needs_grad = torch.is_grad_enabled() and (
            self.pos_embed.requires_grad or self.pos_embed_window.requires_grad
        )
        if needs_grad or self.pos_embed.is_inference():
            # (parameters created in inference mode have no version counter to key a cache on)
            return self._compute_pos_embed(hw)
        key = self._pos_embed_key(hw)
        if self._pos_cache is None or self._pos_cache[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                self._pos_cache = (key, self._compute_pos_embed(hw))
        return self._pos_cache[1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the trunk.

        Args:
            x: (B, 3, S, S) normalised image, S a multiple of 32 (a multiple of
                4 * ``window_spec[0]`` for the position embedding).

        Returns:
            The output of each stage, finest first: (B, C_i, S / 4 / 2^i, S / 4 / 2^i) with
            C_i = ``cfg.stage_dims[i]``; each is a channels-last (permuted) view.
        """
        tokens = self.patch_embed(x)  # (B, H, W, C) view of the conv output
        b, h, w, c = tokens.shape
        hw = (h, w)
        pos = self.position_embedding(hw).to(tokens.dtype)  # (1, H, W, C)
        ws = self.blocks[0].window_size
        layout: Layout = None
        if not ws or h % ws or w % ws:
            x = tokens + pos
        elif torch.compiler.is_compiling() or (
            torch.is_grad_enabled() and (tokens.requires_grad or pos.requires_grad)
        ):  # (a compiled graph fuses the add itself; it cannot trace a strided out=)
            layout = (ws, ws)
            x = partition(tokens + pos, layout)
        else:
            # add the position embedding and partition into the first block's windows at once
            layout = (ws, ws)
            shape6 = (b, h // ws, w // ws, ws, ws, c)
            x = torch.empty(shape6, dtype=tokens.dtype, device=tokens.device)
            torch.add(
                split_grid(tokens, layout),
                split_grid(pos, layout),
                out=x.permute(0, 1, 3, 2, 4, 5),  # the (B, nh, wh, nw, ww, C) grid view of x
            )
            x = x.view(-1, ws, ws, c)

        outputs = []
        for i, blk in enumerate(self.blocks):
            x, hw, layout = blk(x, hw, layout)
            if i in self.stage_ends:
                feats = to_grid(x, hw, layout)  # (B, H, W, C)
                outputs.append(feats.permute(0, 3, 1, 2))
        return outputs
