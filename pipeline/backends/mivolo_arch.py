"""The MiVOLO network (Kuprashevich & Tolstykh 2023): timm's VOLO with a two-stream patch embedding
whose face and body tokens are fused by cross attention.

Written against the current timm (``timm.models.volo.VOLO``) with keyword arguments, so it does not
depend on the authors' package (which pins an old timm and ultralytics). Module and parameter names
match the authors' ``mivolo/model/mivolo_model.py`` and ``cross_bottleneck_attn.py`` exactly, so their
published checkpoints (``model_imdb_cross_person_4.22_99.46.pth.tar``: a dict with ``state_dict``,
``min_age``, ``max_age``, ``avg_age``, ``no_gender`` ...) load with ``strict`` key checking.

Input: (B, 6, S, S) = face crop channels 0-2 and body crop channels 3-5 (a missing crop is a black
image, normalised), or (B, 3, S, S) for face-only checkpoints. Output: (B, 3) = 2 gender logits
(male, female) and the normalised age: ``age = out[:, 2] * (max_age - min_age) + avg_age``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn as nn
from timm.layers import Mlp, trunc_normal_
from timm.layers.bottleneck_attn import PosEmbedRel
from timm.layers.helpers import make_divisible
from timm.models.volo import VOLO

# VOLO-D1 (the published MiVOLO checkpoints): 4 Outlookers, a downsample, 4 + 8 + 2 Transformers.
D1 = dict(layers=(4, 4, 8, 2), embed_dims=(192, 384, 384, 384), num_heads=(6, 12, 12, 12),
          mlp_ratio=3.0, stem_hidden_dim=64)
HEAD_DIM = 32  # every VOLO variant uses 32 channels per attention head


class CrossBottleneckAttn(nn.Module):
    """Face<->body cross attention on the two token maps (relative position embedding)."""

    def __init__(self, dim, dim_out=None, feat_size=None, stride=1, num_heads=4, dim_head=None,
                 qk_ratio=1.0, qkv_bias=False, scale_pos_embed=False):
        super().__init__()
        assert feat_size is not None, "a concrete feature size (H, W) is required"
        dim_out = dim_out or dim
        assert dim_out % num_heads == 0
        self.num_heads = num_heads
        self.dim_head_qk = dim_head or make_divisible(dim_out * qk_ratio, divisor=8) // num_heads
        self.dim_head_v = dim_out // self.num_heads
        self.dim_out_qk = num_heads * self.dim_head_qk
        self.dim_out_v = num_heads * self.dim_head_v
        self.scale = self.dim_head_qk ** -0.5
        self.scale_pos_embed = scale_pos_embed

        self.qkv_f = nn.Conv2d(dim, self.dim_out_qk * 2 + self.dim_out_v, 1, bias=qkv_bias)
        self.qkv_p = nn.Conv2d(dim, self.dim_out_qk * 2 + self.dim_out_v, 1, bias=qkv_bias)
        self.pos_embed = PosEmbedRel(tuple(feat_size), dim_head=self.dim_head_qk, scale=self.scale)
        self.norm = nn.LayerNorm([self.dim_out_v * 2, *feat_size])
        self.mlp = Mlp(in_features=self.dim_out_v * 2, hidden_features=int(dim * 4),
                       act_layer=nn.GELU, out_features=dim_out, drop=0, use_conv=True)
        self.pool = nn.AvgPool2d(2, 2) if stride == 2 else nn.Identity()
        trunc_normal_(self.qkv_f.weight, std=self.qkv_f.weight.shape[1] ** -0.5)
        trunc_normal_(self.qkv_p.weight, std=self.qkv_p.weight.shape[1] ** -0.5)
        trunc_normal_(self.pos_embed.height_rel, std=self.scale)
        trunc_normal_(self.pos_embed.width_rel, std=self.scale)

    def _qkv(self, x, conv):
        b = x.shape[0]
        q, k, v = torch.split(conv(x), [self.dim_out_qk, self.dim_out_qk, self.dim_out_v], dim=1)
        q = q.reshape(b * self.num_heads, self.dim_head_qk, -1).transpose(-1, -2)
        k = k.reshape(b * self.num_heads, self.dim_head_qk, -1)
        v = v.reshape(b * self.num_heads, self.dim_head_v, -1).transpose(-1, -2)
        return q, k, v

    def _attend(self, q, k, v, b, h, w):
        if self.scale_pos_embed:
            attn = (q @ k + self.pos_embed(q)) * self.scale
        else:
            attn = (q @ k) * self.scale + self.pos_embed(q)
        attn = attn.softmax(dim=-1)
        return (attn @ v).transpose(-1, -2).reshape(b, self.dim_out_v, h, w)

    def forward(self, x):
        b, c, h, w = x.shape
        half = c // 2
        q_f, k_f, v_f = self._qkv(x[:, :half], self.qkv_f)
        q_p, k_p, v_p = self._qkv(x[:, half:], self.qkv_p)
        out_f = self._attend(q_f, k_p, v_p, b, h, w)  # face queries attend to the body
        out_p = self._attend(q_p, k_f, v_f, b, h, w)  # body queries attend to the face
        x = self.mlp(self.norm(torch.cat((out_f, out_p), dim=1)))
        return self.pool(x)


def _stem(stem_stride: int, in_chans: int, hidden_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chans, hidden_dim, kernel_size=7, stride=stem_stride, padding=3, bias=False),
        nn.BatchNorm2d(hidden_dim), nn.ReLU(inplace=True),
        nn.Conv2d(hidden_dim, hidden_dim, kernel_size=3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(hidden_dim), nn.ReLU(inplace=True),
        nn.Conv2d(hidden_dim, hidden_dim, kernel_size=3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(hidden_dim), nn.ReLU(inplace=True),
    )


class MiVOLOPatchEmbed(nn.Module):
    """Stem + patch projection; with 6 input channels, one stream per crop fused by cross attention."""

    def __init__(self, img_size=224, stem_stride=2, patch_size=8, in_chans=3, hidden_dim=64,
                 embed_dim=384):
        super().__init__()
        assert in_chans in (3, 6)
        self.with_persons_model = in_chans == 6
        k = patch_size // stem_stride
        if self.with_persons_model:
            self.conv1 = _stem(stem_stride, 3, hidden_dim)
            self.conv2 = _stem(stem_stride, 3, hidden_dim)
            self.proj1 = nn.Conv2d(hidden_dim, embed_dim, kernel_size=k, stride=k)
            self.proj2 = nn.Conv2d(hidden_dim, embed_dim, kernel_size=k, stride=k)
            feat = img_size // stem_stride // k
            self.map = CrossBottleneckAttn(embed_dim, dim_out=embed_dim, num_heads=1,
                                           feat_size=(feat, feat))
        else:
            self.conv = _stem(stem_stride, in_chans, hidden_dim)
            self.proj = nn.Conv2d(hidden_dim, embed_dim, kernel_size=k, stride=k)

    def forward(self, x):
        if self.with_persons_model:
            x1 = self.proj1(self.conv1(x[:, :3]))
            x2 = self.proj2(self.conv2(x[:, 3:]))
            return self.map(torch.cat([x1, x2], dim=1))
        return self.proj(self.conv(x))


class MiVOLOModel(VOLO):
    def __init__(self, layers, img_size=224, in_chans=3, num_classes=3, embed_dims=None,
                 num_heads=None, mlp_ratio=3.0, stem_hidden_dim=64, patch_size=8,
                 post_layers=("ca", "ca"), **kw):
        super().__init__(layers=list(layers), img_size=img_size, in_chans=3, num_classes=num_classes,
                         global_pool="token", patch_size=patch_size, stem_hidden_dim=stem_hidden_dim,
                         embed_dims=list(embed_dims), num_heads=list(num_heads), mlp_ratio=mlp_ratio,
                         post_layers=post_layers, use_aux_head=True, **kw)
        self.patch_embed = MiVOLOPatchEmbed(img_size=img_size, stem_stride=2, patch_size=patch_size,
                                            in_chans=in_chans, hidden_dim=stem_hidden_dim,
                                            embed_dim=embed_dims[0])
        trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)

    def forward_features(self, x):
        x = self.patch_embed(x).permute(0, 2, 3, 1)  # B,C,H,W -> B,H,W,C
        x = self.forward_tokens(x)
        if self.post_network is not None:
            x = self.forward_cls(x)
        return self.norm(x)

    def forward_head(self, x, pre_logits: bool = False):
        out = x[:, 0]
        if pre_logits:
            return out
        out = self.head(out)
        if self.aux_head is not None:
            out = out + 0.5 * self.aux_head(x[:, 1:]).max(1)[0]
        return out

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


@dataclass(frozen=True)
class MiVOLOArch:
    """Architecture read off a state dict (the published checkpoints are VOLO-D1 at 224)."""

    layers: tuple[int, ...]
    embed_dims: tuple[int, ...]
    num_heads: tuple[int, ...]
    mlp_ratio: float
    stem_hidden_dim: int
    img_size: int
    in_chans: int
    num_classes: int
    n_post: int

    def build(self) -> MiVOLOModel:
        return MiVOLOModel(layers=self.layers, img_size=self.img_size, in_chans=self.in_chans,
                           num_classes=self.num_classes, embed_dims=self.embed_dims,
                           num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                           stem_hidden_dim=self.stem_hidden_dim,
                           post_layers=("ca",) * self.n_post if self.n_post else None)


def arch_from_state_dict(sd: Mapping[str, torch.Tensor]) -> MiVOLOArch:
    """Infer depth/width from key names and shapes (raises KeyError on a foreign state dict)."""
    with_persons = "patch_embed.conv1.0.weight" in sd
    stem_w = sd["patch_embed.conv1.0.weight" if with_persons else "patch_embed.conv.0.weight"]
    blocks: dict[int, set[int]] = {}
    for k in sd:
        m = re.match(r"network\.(\d+)\.(\d+)\.", k)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    stages = sorted(blocks)  # network indices holding blocks (the others are Downsample)
    layers = tuple(len(blocks[i]) for i in stages)
    embed_dims = tuple(int(sd[f"network.{i}.0.norm1.weight"].shape[0]) for i in stages)
    # Outlooker heads: attn.attn is Linear(dim, kernel**4 * heads) with kernel 3.
    heads0 = int(sd[f"network.{stages[0]}.0.attn.attn.weight"].shape[0]) // 81
    num_heads = (heads0,) + tuple(max(1, d // HEAD_DIM) for d in embed_dims[1:])
    mlp_ratio = sd[f"network.{stages[0]}.0.mlp.fc1.weight"].shape[0] / embed_dims[0]
    n_post = len({int(m.group(1)) for k in sd if (m := re.match(r"post_network\.(\d+)\.", k))})
    return MiVOLOArch(
        layers=layers, embed_dims=embed_dims, num_heads=num_heads, mlp_ratio=float(mlp_ratio),
        stem_hidden_dim=int(stem_w.shape[0]), img_size=int(sd["pos_embed"].shape[1]) * 16,
        in_chans=6 if with_persons else 3, num_classes=int(sd["head.weight"].shape[0]),
        n_post=n_post,
    )
